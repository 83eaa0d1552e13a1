"""Writing outputs: all-or-nothing files, file modes, and the one ``--force`` rule of every command.

The rule (docs/outputs-and-force.md says the same for users):
- An output never is, and never contains, one of the command's inputs.
- An existing output FILE is replaced only with ``force``, and only when it is a regular file
  of the kind the command writes (a .tflite is replaced by a model only if it is a model).
- An existing output FOLDER (a training run) is replaced only with ``force``, only when it is
  recognisably an edgeshop run (the marker file every run gets, or a run's own files from before
  the marker) and holds nothing but a run's own files; only those files are deleted.
Every refusal is one ``OutputError`` line, raised before anything is touched.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeshop.errors import OutputError, OverwriteError

# -- reading files that may be anything --------------------------------------------------


def open_regular(path: str | os.PathLike[str]) -> tuple[Any, int] | None:
    """``(binary file, size)`` for a regular file, None for anything else (a FIFO, device or
    folder is never read). Opened non-blocking, so a FIFO cannot hang the caller, and checked
    on the open descriptor, so a file swapped for a FIFO meanwhile is refused too. OSError when
    it cannot be opened at all."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb", buffering=0), info.st_size

PathLike = str | os.PathLike[str]

# -- atomic writes ---------------------------------------------------------------------

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read from /proc where possible: os.umask can only read it by setting
    it, which would hand other threads' new files a wrong mode for a moment."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """The mode of the file being replaced, else what ``open()`` would give a new file."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def write_failure(path: PathLike, exc: OSError) -> OutputError:
    """One line for an OSError met while writing ``path``: what happened and that nothing was replaced."""
    path = Path(path)
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        why = "is a folder; give a file name"
    elif isinstance(exc, (NotADirectoryError, FileExistsError)) or exc.errno == errno.ENOTDIR:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        why = f"cannot be created: {blocker} is a file, not a folder"
    elif exc.errno == errno.ENOSPC:
        why = "cannot be written: no space left on the device"
    elif exc.errno == errno.EFBIG:
        why = "cannot be written: file too large (the file system's or the process's file-size limit)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = f"cannot be written: {exc.strerror.lower()}"
    else:
        why = f"cannot be written: {exc.strerror or exc}"
    kept = " (the existing file is kept)" if path.is_file() else ""
    return OutputError(f"{path}: {why}; nothing was written{kept}")


def os_error_line(exc: OSError) -> str:
    """An OSError that escaped every specific check, as one line (the commands' last resort)."""
    if exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{exc.strerror or exc} (while writing or reading a temporary file); nothing was replaced"


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Write via a temp file in the same folder + fsync + rename: all or nothing. A new file gets
    the umask's mode, a replaced file keeps its own. Failures are one ``OutputError`` line."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = _mode_for(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)  # mkstemp makes 0600
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise write_failure(path, exc) from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: str | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_json_atomic(path: PathLike, data: Any, *, compact_lists: bool = False) -> None:
    """Indented JSON; with ``compact_lists`` a list of plain values stays on one line (a confusion
    matrix is one line per row, not one number per line)."""
    text = _dumps_compact(data, 0) if compact_lists else json.dumps(data, indent=2, sort_keys=True)
    write_bytes_atomic(path, (text + "\n").encode())


def _dumps_compact(value: Any, depth: int) -> str:
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = (f"{inner}{json.dumps(str(k))}: {_dumps_compact(v, depth + 1)}" for k, v in sorted(value.items()))
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        return "[\n" + ",\n".join(f"{inner}{_dumps_compact(v, depth + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value)


# -- what an output may replace ---------------------------------------------------------


def _sniff_tflite(head: bytes) -> bool:
    return head[4:8] == b"TFL3"  # the flatbuffer's file identifier (edgeshop's archive follows the model)


def _sniff_json(head: bytes) -> bool:
    return head.lstrip()[:1] in (b"{", b"[")


def _sniff_text(head: bytes) -> bool:
    return b"\x00" not in head


FILE_KINDS = {  # what an existing file must look like to be replaced by an output of that kind
    "model": (_sniff_tflite, "an edgeshop/TFLite model"),
    "json": (_sniff_json, "a JSON file"),
    "markdown": (_sniff_text, "a text file"),
    "png": (lambda head: head[:8] == b"\x89PNG\r\n\x1a\n", "a PNG image"),
    "csv": (_sniff_text, "a text file"),
    "jpeg": (lambda head: head[:2] == b"\xff\xd8", "a JPEG image"),
    "video": (lambda head: head[4:8] == b"ftyp" or head[:4] == b"RIFF", "an .mp4/.avi video"),
}


def _same_or_inside(outer: Path, inner: Path) -> bool:
    return outer == inner or outer in inner.parents


def _resolved(path: PathLike) -> Path:
    return Path(os.path.abspath(path)).resolve()


def check_inputs(out: PathLike, inputs: Iterable[PathLike | None], flag: str = "--out") -> None:
    """Refuse an output that is, or contains, one of the inputs (whatever ``force`` says)."""
    target = _resolved(out)
    for source in inputs:
        if source and _same_or_inside(target, _resolved(source)):
            what = "is" if target == _resolved(source) else "contains"
            raise OutputError(f"{out}: {flag} {what} the input {source}; write the output somewhere else")


def check_output_file(path: PathLike | None, *, force: bool, kind: str, inputs: Iterable[PathLike | None] = (),
                      flag: str = "--out") -> None:
    """Refuse, before any work, an output file that cannot be written or must not be replaced."""
    if not path:
        return
    path = Path(path)
    check_inputs(path, inputs, flag)
    if path.is_dir():
        raise OutputError(f"{path}: {flag} is a folder; give a file name")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputError(f"{path}: cannot be created: {blocker} is a file, not a folder")
    if not os.path.lexists(path):
        return
    if not force:
        raise OverwriteError(path)
    if path.is_symlink() or not path.is_file():
        raise OutputError(f"{path}: not a regular file; --force only replaces a file this command wrote")
    sniff, description = FILE_KINDS[kind]
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        raise OutputError(f"{path}: cannot be read to check it before replacing it ({exc.strerror})") from None
    if head and not sniff(head):
        raise OutputError(f"{path}: not {description}; --force only replaces a file this command writes "
                          "(move the file or choose another name)")


def check_outputs(outputs: Iterable[tuple[PathLike | None, str, str]], *, force: bool,
                  inputs: Iterable[PathLike | None] = ()) -> None:
    """``check_output_file`` for each (path, kind, flag) given, and no two naming the same file."""
    inputs = list(inputs)
    seen: dict[Path, str] = {}
    for path, kind, flag in outputs:
        if not path:
            continue
        check_output_file(path, force=force, kind=kind, inputs=inputs, flag=flag)
        key = _resolved(path)
        if key in seen:
            raise OutputError(f"{path}: {seen[key]} and {flag} name the same file; give each its own name")
        seen[key] = flag


# -- run folders --------------------------------------------------------------------------

RUN_MARKER = ".edgeshop-run"  # written first into every run folder: what --force may replace


@dataclass(frozen=True)
class FolderKind:
    """An edgeshop output folder: its marker, and the names of the entries it may hold."""

    name: str
    entries: tuple[str, ...]  # glob patterns of its own files and folders (top level)
    legacy: tuple[str, ...]  # files that identify such a folder written before the marker

    def owns(self, name: str) -> bool:
        return name == RUN_MARKER or any(fnmatch.fnmatchcase(name, pattern) for pattern in self.entries)


RUN_FOLDER = FolderKind(
    name="training run",
    entries=(
        "config.json", "card.json", "labels.txt", "data_report.json", "calibration.npy", "training_log.csv",
        "split.json", "representative_images.npy",
        "state.json", "checkpoints", "stages", "float_model.keras", "metrics.json", "channels.json",
        "teacher_logits*.npz", "tensorboard", "workers",
        # what the other commands write into a run by default (edgeshop-card, edgeshop-demo, exports)
        "MODEL_CARD.md", "figures.json", "demo_figures.json", "*.tflite",
        ".*.partial",  # an interrupted atomic write's leftover
    ),
    legacy=("config.json", "state.json"),
)


def check_output_folder(path: PathLike, *, force: bool, kind: FolderKind = RUN_FOLDER,
                        inputs: Iterable[PathLike | None] = (), keep: Iterable[str] = ()) -> list[Path]:
    """The entries a new output folder at ``path`` replaces (empty: nothing to replace), after
    refusing, before anything is touched, every folder ``--force`` must not empty."""
    path = Path(path)
    check_inputs(path, inputs)
    if os.path.lexists(path) and not path.is_dir():
        raise OutputError(f"{path}: --out is a file; give a folder for the {kind.name}")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputError(f"{path}: cannot be created: {blocker} is a file, not a folder")
    if not path.is_dir():
        return []
    keep = set(keep)
    try:
        entries = sorted(p for p in path.iterdir() if p.name not in keep)
    except OSError as exc:
        raise OutputError(f"{path}: cannot list it ({exc.strerror})") from None
    if not entries:
        return []
    if not force:
        raise OverwriteError(f"{path} (a previous run? use --resume to continue it)")
    names = {p.name for p in entries} | (keep & {p.name for p in path.iterdir()})
    if RUN_MARKER not in names and not set(kind.legacy) <= names:
        raise OutputError(f"{path}: not an edgeshop {kind.name} folder (no {RUN_MARKER}); --force only replaces "
                          "a folder edgeshop created: choose an empty or new --out")
    foreign = [p.name for p in entries if not kind.owns(p.name)]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(f"{path}: holds {shown}, which edgeshop did not write there; --force replaces only "
                          f"a {kind.name}'s own files: move them or choose another --out")
    return entries


def clear_output_folder(entries: Iterable[Path]) -> None:
    """Delete the entries ``check_output_folder`` returned (a symlink is removed, not followed)."""
    for entry in entries:
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            raise OutputError(f"{entry}: cannot be removed to start over ({exc.strerror})") from None


def mark_output_folder(path: PathLike, kind: FolderKind = RUN_FOLDER) -> None:
    """Create the folder and its marker: from now on it is recognisably edgeshop's."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failure(path / RUN_MARKER, exc) from None
    write_json_atomic(path / RUN_MARKER, {"written_by": "edgeshop", "kind": kind.name})
