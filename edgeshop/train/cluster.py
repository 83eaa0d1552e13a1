"""Training on several machines (``--strategy multi_worker``): which task this process is in
``TF_CONFIG``, and a check that every other task answers before TensorFlow is asked to join.

TensorFlow's ``MultiWorkerMirroredStrategy`` does the work (gRPC collectives, all-reduce);
this module only reads the same ``TF_CONFIG`` it reads. Why the check: the strategy waits
for missing workers for a long time and says little, so a typo in a host name looks like a
hang. Here each task listens on its own port while it connects to the others' ports, retrying
for up to ``timeout`` seconds, then gives one error line naming the task, host and port.
No traffic is exchanged: the connect alone proves the host is up and the port open.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgeshop.errors import EdgeshopError

# Task types a MultiWorkerMirroredStrategy cluster has (ps and evaluator belong to other strategies).
TASK_TYPES = ("chief", "worker")
DEFAULT_CONNECT_TIMEOUT = 300.0  # seconds; a scheduler may start the tasks minutes apart


@dataclass(frozen=True)
class Role:
    """This process's task in the cluster."""

    task_type: str
    index: int
    cluster: dict[str, list[str]]  # task type -> "host:port" addresses, as in TF_CONFIG

    @property
    def chief(self) -> bool:
        """The task that writes the run folder: "chief", or worker 0 when there is no chief."""
        if "chief" in self.cluster:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.index == 0

    @property
    def name(self) -> str:
        return f"{self.task_type}-{self.index}"

    @property
    def address(self) -> str:
        return self.cluster[self.task_type][self.index]

    @property
    def size(self) -> int:
        return sum(len(addresses) for addresses in self.cluster.values())

    def others(self) -> list[tuple[str, str]]:
        """(task name, address) of every other task."""
        return [(f"{kind}-{i}", address) for kind, addresses in self.cluster.items()
                for i, address in enumerate(addresses) if (kind, i) != (self.task_type, self.index)]


def read_tf_config(text: str | None = None) -> Role:
    """The ``TF_CONFIG`` environment variable (or ``text``) as a Role, or one error naming the fix."""
    text = os.environ.get("TF_CONFIG") if text is None else text
    if not text:
        raise EdgeshopError('--strategy multi_worker needs TF_CONFIG, e.g. TF_CONFIG=\'{"cluster": {"worker": '
                            '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\'')
    try:
        config = json.loads(text)
        cluster = {str(kind): [str(a) for a in addresses] for kind, addresses in config["cluster"].items()}
        task_type, index = str(config["task"]["type"]), int(config["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EdgeshopError(f"TF_CONFIG is not {{'cluster': {{type: [host:port, ...]}}, 'task': {{'type': ..., "
                            f"'index': N}}}} ({type(exc).__name__}: {exc})") from None
    unsupported = sorted(set(cluster) - set(TASK_TYPES))
    if unsupported:
        raise EdgeshopError(f"TF_CONFIG: task type(s) {unsupported} are not used by MultiWorkerMirroredStrategy "
                            f"(only {', '.join(TASK_TYPES)})")
    if task_type not in cluster or not 0 <= index < len(cluster[task_type]):
        raise EdgeshopError(f"TF_CONFIG: this task ({task_type} {index}) is not in its cluster {cluster}")
    for kind, addresses in cluster.items():
        for address in addresses:
            _split(address, kind)
    return Role(task_type, index, cluster)


def _split(address: str, kind: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EdgeshopError(f"TF_CONFIG: {kind} address {address!r} is not host:port")
    return host.strip("[]"), int(port)


def wait_for_cluster(role: Role, timeout: float = DEFAULT_CONNECT_TIMEOUT, log: Callable[[str], object] = print,
                     interval: float = 0.5) -> None:
    """Return once every other task of ``role.cluster`` accepts a TCP connection; raise an
    ``EdgeshopError`` naming the ones that did not within ``timeout`` seconds."""
    _, own_port = _split(role.address, role.task_type)
    pending = dict(role.others())
    log(f"{role.name}: waiting up to {timeout:g} s for {len(pending)} other task(s) of TF_CONFIG")
    deadline = time.monotonic() + timeout
    last_error: dict[str, str] = {}
    with _listening(own_port, role):
        while pending:
            for name, address in list(pending.items()):
                host, port = _split(address, name)
                try:
                    with socket.create_connection((host, port), timeout=max(0.1, min(2.0, timeout))):
                        pass
                except OSError as exc:
                    last_error[name] = _reason(exc)
                else:
                    del pending[name]
            if not pending:
                break
            if time.monotonic() >= deadline:
                missing = ", ".join(f"{name} at {pending[name]} ({last_error.get(name, 'no answer')})"
                                    for name in sorted(pending))
                raise EdgeshopError(f"TF_CONFIG: cannot reach {missing} within {timeout:g} s; check the host "
                                    "and port, that the task was started with the same TF_CONFIG, and the "
                                    "firewall (--connect-timeout sets the wait)")
            time.sleep(interval)
    log(f"{role.name}: all {role.size} tasks answer")


@contextlib.contextmanager
def _listening(port: int, role: Role):
    """Listen on this task's own port while checking the others, so that tasks started
    together find each other; closed before TensorFlow's server binds the port."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind(("", port))
    except OSError as exc:
        server.close()
        if exc.errno == errno.EADDRINUSE:
            raise EdgeshopError(f"TF_CONFIG: port {port} of this task ({role.name}, {role.address}) is in use; "
                                "pick a free port") from None
        raise EdgeshopError(f"TF_CONFIG: cannot listen on {role.address} ({role.name}): {_reason(exc)}") from None
    server.listen(64)  # connections complete in the kernel's backlog; nothing is accepted
    try:
        yield
    finally:
        server.close()


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return exc.strerror or type(exc).__name__
