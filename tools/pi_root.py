"""An emulated Raspberry Pi OS-like arm64 Debian root on an x86 host, for `make pi-check`.

Made once with debootstrap and kept outside the repository (``--cache``); every program
in it runs through qemu-user-static (binfmt_misc) inside tools/pi_chroot.sh, which mounts
/proc, /dev and a Pi-like /proc/cpuinfo in a private mount namespace. Needs root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from edgeshop import EdgeshopError

TOOLS = Path(__file__).resolve().parent
CHROOT = TOOLS / "pi_chroot.sh"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
HOST_PACKAGES = {"debootstrap": "debootstrap", "qemu-aarch64-static": "qemu-user-static",
                 "update-binfmts": "binfmt-support", "unshare": "util-linux", "chroot": "coreutils"}
ROOT_PACKAGES = "python3,python3-venv,ca-certificates"
STAMP = ".edgeshop-pi-root"  # written last: a root without it is an interrupted debootstrap
SRC, VENV, WORK = "/opt/edgeshop/src", "/opt/edgeshop/venv", "/opt/edgeshop/work"
HOST_CA = "/etc/ssl/certs/edgeshop-host-ca.crt"  # inside the root: pip trusts the host's (private) CA
# /proc/cpuinfo of the Raspberry Pi whose core each QEMU_CPU model emulates; other models get the Pi 4's.
PI_CPUS = {
    "cortex-a72": ("0x0", "0xd08", "3", "fp asimd evtstrm crc32 cpuid", "Raspberry Pi 4 Model B Rev 1.4"),
    "cortex-a76": ("0x4", "0xd0b", "1", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp "
                   "cpuid asimdrdm lrcpc dcpop asimddp", "Raspberry Pi 5 Model B Rev 1.0"),
}


def run(argv: list[str], log: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run a host command; with ``log``, its output goes there and a failure names the log."""
    if log is None:
        return subprocess.run(argv, check=True, **kwargs)
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if result.returncode:
        raise EdgeshopError(f"{argv[0]} failed (exit {result.returncode}); see {log}")
    return result


def ensure_host_tools() -> None:
    """Root, debootstrap, qemu-user-static and binfmt_misc ready for arm64 programs."""
    if os.geteuid() != 0:
        raise EdgeshopError("pi-check needs root (debootstrap, chroot, mounts): run it as root (sudo make pi-check)")
    missing = sorted({pkg for tool, pkg in HOST_PACKAGES.items() if shutil.which(tool) is None})
    if missing:
        if shutil.which("apt-get") is None:
            raise EdgeshopError(f"pi-check needs these Debian packages: {' '.join(missing)}")
        run(["apt-get", "update", "-q"])
        run(["apt-get", "install", "-y", "-q", *missing], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not (BINFMT / "register").exists():  # containers often start without it mounted
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists() or entry.read_text().splitlines()[0] != "enabled":
        run(["update-binfmts", "--enable", "qemu-aarch64"])
    lines = entry.read_text().splitlines() if entry.exists() else []
    if not lines or lines[0] != "enabled":
        raise EdgeshopError(f"{entry}: qemu-aarch64 is not enabled; run update-binfmts --enable qemu-aarch64")
    # F: the kernel opens qemu when registering, so the root needs no copy of qemu inside it
    if not any(line.startswith("flags:") and "F" in line.split(":", 1)[1] for line in lines):
        raise EdgeshopError(f"{entry}: registered without the F flag; reinstall qemu-user-static (Debian's sets it)")


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """One pi-check at a time per root: a second one would reinstall and clear it under the first."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EdgeshopError(f"{root}: another pi-check is using it; wait for it or pass another --cache") from None
        yield


def ensure_root(root: Path, suite: str, mirror: str, log: Path) -> None:
    """debootstrap an arm64 ``suite`` root at ``root`` unless a finished one is already there."""
    if (root / STAMP).is_file():
        return
    if root.exists() and any(root.iterdir()):
        if not (root / "debootstrap").is_dir():
            raise EdgeshopError(f"{root}: exists and is not a root made by pi-check; choose another --cache")
        shutil.rmtree(root)  # an interrupted debootstrap leaves its debootstrap/ folder behind
    root.parent.mkdir(parents=True, exist_ok=True)
    print(f"pi-check: debootstrap {suite} arm64 into {root} (emulated; tens of minutes), log {log}", flush=True)
    run(["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={ROOT_PACKAGES}", suite, str(root), mirror],
        log=log)
    (root / STAMP).write_text(f"{suite} arm64 {mirror} {datetime.now(timezone.utc).isoformat()}\n")


def cpuinfo_text(cpu: str, processors: int) -> str:
    """A /proc/cpuinfo like the Raspberry Pi with this core (the Pi 4's for other models)."""
    variant, part, revision, features, model = PI_CPUS.get(cpu, PI_CPUS["cortex-a72"])
    block = (f"BogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
             f"CPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n\n")
    return "".join(f"processor\t: {i}\n{block}" for i in range(processors)) + f"Model\t\t: {model}\n"


def root_env(cpu: str) -> dict[str, str]:
    """The whole environment of programs in the root (nothing leaks in from the host)."""
    return {"PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C.UTF-8", "QEMU_CPU": cpu, "PIP_CERT": HOST_CA,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_DEFAULT_TIMEOUT": "180", "TF_CPP_MIN_LOG_LEVEL": "2"}


def in_root(root: Path, cpu: str, argv: list[str], log: Path | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` in the root on the emulated ``cpu`` (a QEMU_CPU model); captures output unless ``log``."""
    cpuinfo = root.parent / f"cpuinfo-{cpu}"  # outside the root: bind-mounted over its /proc/cpuinfo
    cpuinfo.write_text(cpuinfo_text(cpu, os.cpu_count() or 4))
    env = root_env(cpu)
    # QEMU_CPU in the host environment for the first program, in env -i's list for its children
    command = [str(CHROOT), str(root), str(cpuinfo), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]
    host_env = {**os.environ, "QEMU_CPU": cpu}
    if log is not None:
        return run(command, log=log, env=host_env, timeout=timeout)
    return subprocess.run(command, capture_output=True, text=True, env=host_env, timeout=timeout)


def install_runtime(root: Path, repo: Path, ca_bundle: Path | None, log: Path, fresh_venv: bool) -> None:
    """Copy the working tree in and `pip install .` it into a venv, wheels only, as on a Pi."""
    src = root / SRC.lstrip("/")
    if src.exists():
        shutil.rmtree(src)
    for relative in tracked_files(repo):
        target = src / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / relative, target)
    shutil.copy2("/etc/resolv.conf", root / "etc/resolv.conf")
    if ca_bundle is not None:
        shutil.copy2(ca_bundle, root / HOST_CA.lstrip("/"))
    venv = root / VENV.lstrip("/")
    if fresh_venv and venv.exists():
        shutil.rmtree(venv)
    if not (venv / "bin/python").exists():
        in_root(root, "cortex-a72", ["python3", "-m", "venv", VENV], log=log)
    # --only-binary: a dependency without an aarch64 wheel fails here instead of compiling for an hour
    in_root(root, "cortex-a72", [f"{VENV}/bin/pip", "install", "--only-binary=:all:", SRC], log=log)


def tracked_files(repo: Path) -> list[str]:
    """The working tree as git sees it: tracked and new files, without ignored ones (.venv, runs)."""
    listing = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, text=True, check=True).stdout
    return [name for name in listing.split("\0") if name and (repo / name).is_file()]
