"""Training on several machines (``--strategy multi_worker``): which task this process is in
``TF_CONFIG``, and a check that every other task answers before TensorFlow is asked to join.

TensorFlow's ``MultiWorkerMirroredStrategy`` does the work (gRPC collectives, all-reduce);
this module only reads the same ``TF_CONFIG`` it reads. Why the check: the strategy waits
for missing workers for a long time and says little, so a typo in a host name looks like a
hang. Here each task listens on its own address while it connects to the others', retrying
for up to ``timeout`` seconds, then gives one error line naming the task, host and port.
A connect alone proves little (a stuck process's socket still completes it in the kernel), so
a task counts as up only when it answers: edgeshop's listener greets every connection, and a
task already past its check has TensorFlow's gRPC server on the port, which answers the HTTP/2
preface sent to it with its SETTINGS frame.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgeshop.errors import EdgeshopError

# Task types a MultiWorkerMirroredStrategy cluster has (ps and evaluator belong to other strategies).
TASK_TYPES = ("chief", "worker")
DEFAULT_CONNECT_TIMEOUT = 300.0  # seconds; a scheduler may start the tasks minutes apart
GREETING = b"edgeshop-cluster-check\n"  # what a task's listener sends to every connection
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + empty SETTINGS
ANSWER_TIMEOUT = 2.0  # seconds a connected task has to answer
_PORT = re.compile(r"[0-9]{1,5}")


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
    shape = "{'cluster': {type: ['host:port', ...]}, 'task': {'type': type, 'index': N}}"
    try:
        config = json.loads(text)
    except RecursionError:
        raise EdgeshopError(f"TF_CONFIG is nested too deeply to be {shape}") from None
    except ValueError as exc:
        raise EdgeshopError(f"TF_CONFIG is not valid JSON ({exc}); expected {shape}") from None
    cluster, task_type, index = _fields(config, shape)
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


def _fields(config: object, shape: str) -> tuple[dict[str, list[str]], str, int]:
    """(cluster, task type, task index) of parsed TF_CONFIG, each checked for its exact type:
    an index 1.0, true or "0" is refused rather than guessed at."""
    def refuse(what: str) -> EdgeshopError:
        return EdgeshopError(f"TF_CONFIG: {what}; expected {shape}")

    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) \
            or not isinstance(config.get("task"), dict):
        raise refuse("no 'cluster' and 'task' objects")
    cluster = {}
    for kind, addresses in config["cluster"].items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise refuse(f"cluster {kind!r} is not a list of 'host:port' strings")
        cluster[kind] = addresses
    task_type, index = config["task"].get("type"), config["task"].get("index")
    if not isinstance(task_type, str):
        raise refuse(f"task type {task_type!r} is not a string")
    if type(index) is not int:  # bool is an int subclass; floats and strings are refused too
        raise refuse(f"task index {index!r} is not a whole number")
    return cluster, task_type, index


def _split(address: str, kind: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not _PORT.fullmatch(port) or not 0 < int(port) < 65536:  # ASCII digits only: not "²"
        raise EdgeshopError(f"TF_CONFIG: {kind} address {address!r} is not host:port")
    return host.strip("[]"), int(port)


def wait_for_cluster(role: Role, timeout: float = DEFAULT_CONNECT_TIMEOUT, log: Callable[[str], object] = print,
                     interval: float = 0.5) -> None:
    """Return once every other task of ``role.cluster`` accepts a TCP connection; raise an
    ``EdgeshopError`` naming the ones that did not within ``timeout`` seconds."""
    own_host, own_port = _split(role.address, role.task_type)
    pending = dict(role.others())
    log(f"{role.name}: waiting up to {timeout:g} s for {len(pending)} other task(s) of TF_CONFIG")
    deadline = time.monotonic() + timeout
    last_error: dict[str, str] = {}
    with _listening(own_host, own_port, role):
        while pending:
            for name, address in list(pending.items()):
                try:
                    answers(*_split(address, name), timeout=max(0.1, min(ANSWER_TIMEOUT, timeout)))
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


def answers(host: str, port: int, timeout: float = ANSWER_TIMEOUT) -> None:
    """Return if the task at host:port answers (edgeshop's greeting, or an HTTP/2 SETTINGS frame
    from TensorFlow's gRPC server); raise OSError otherwise, a stuck peer included."""
    with socket.create_connection((host, port), timeout=timeout) as connection:
        with contextlib.suppress(OSError):  # edgeshop's listener may close before reading it
            connection.sendall(HTTP2_PREFACE)
        reply = b""
        deadline = time.monotonic() + timeout
        while not _is_answer(reply):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectionError(errno.ETIMEDOUT, f"accepted the connection but did not answer within "
                                                       f"{timeout:g} s")
            connection.settimeout(left)
            try:
                chunk = connection.recv(64)
            except TimeoutError:
                continue
            if not chunk:
                raise ConnectionError(errno.EPROTO, "accepted the connection and closed it without answering"
                                      if not reply else "answered, but not as an edgeshop or TensorFlow task")
            reply += chunk
            if len(reply) >= len(GREETING) and not _is_answer(reply):
                raise ConnectionError(errno.EPROTO, "answered, but not as an edgeshop or TensorFlow task")


def _is_answer(reply: bytes) -> bool:
    # edgeshop's greeting, or an HTTP/2 frame header (length: 3 bytes, type 4 = SETTINGS, ...)
    return reply.startswith(GREETING) or (len(reply) >= 9 and reply[3] == 4)


@contextlib.contextmanager
def _listening(host: str, port: int, role: Role):
    """Listen on this task's own address (not every interface) while checking the others, and
    greet each connection, so that tasks started together find each other; closed before
    TensorFlow's server binds the port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        server = socket.socket(family, kind, proto)
    except OSError as exc:
        raise EdgeshopError(f"TF_CONFIG: cannot listen on {role.address} ({role.name}): {_reason(exc)}") from None
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind(address)
    except OSError as exc:
        server.close()
        if exc.errno == errno.EADDRINUSE:
            raise EdgeshopError(f"TF_CONFIG: port {port} of this task ({role.name}, {role.address}) is in use; "
                                "pick a free port") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise EdgeshopError(f"TF_CONFIG: {host} of this task ({role.name}, {role.address}) is not an address "
                                "of this machine; check the task's index and its entry in the cluster") from None
        raise EdgeshopError(f"TF_CONFIG: cannot listen on {role.address} ({role.name}): {_reason(exc)}") from None
    server.listen(64)
    server.settimeout(0.2)
    stop = threading.Event()
    greeter = threading.Thread(target=_greet, args=(server, stop), name="edgeshop-cluster-greeter", daemon=True)
    greeter.start()
    try:
        yield
    finally:
        stop.set()
        greeter.join()
        server.close()


def _greet(server: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            connection, _ = server.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        with contextlib.suppress(OSError), connection:
            connection.settimeout(1.0)
            connection.sendall(GREETING)
            connection.shutdown(socket.SHUT_WR)
            # read what the other task sent until it closes: closing with its bytes unread would
            # reset the connection, and a reset can discard the greeting before it is read
            while connection.recv(256):
                pass


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return exc.strerror or type(exc).__name__
