"""TF_CONFIG read strictly, and a task counts as up only when it answers (issue 34 item 16)."""

from __future__ import annotations

import errno
import json
import socket
import threading
import time

import pytest

from edgeshop.errors import EdgeshopError
from edgeshop.train.cluster import Role, answers, read_tf_config, wait_for_cluster


def _config(index: object = 0, addresses: object = ("127.0.0.1:1", "127.0.0.1:2"), kind: object = "worker") -> str:
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": kind, "index": index}})


@pytest.mark.parametrize(("text", "expected"), [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"cluster": ' * 50_000 + "1" + "}" * 50_000, "nested too deeply"),
    (_config(addresses=["127.0.0.1:\u00b2"]), "is not host:port"),
    (_config(addresses=["127.0.0.1:\u0661\u0662"]), "is not host:port"),  # Arabic-Indic digits
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1e400}}', "task index inf is not"),
    (_config(index=1.0), "task index 1.0 is not a whole number"),
    (_config(index=True), "task index True is not a whole number"),
    (_config(index="0"), "task index '0' is not a whole number"),
    (_config(kind=0), "task type 0 is not a string"),
    (_config(addresses=[1, 2]), "is not a list of 'host:port' strings"),
    ('{"cluster": [], "task": {}}', "no 'cluster' and 'task' objects"),
    ("{not json", "not valid JSON"),
])
def test_a_crafted_tf_config_is_one_error(text, expected):
    with pytest.raises(EdgeshopError) as caught:
        read_tf_config(text)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_peer_that_accepts_and_hangs_is_not_up():
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(8)  # the kernel completes connections; nothing ever answers
    port = stuck.getsockname()[1]
    try:
        with pytest.raises(OSError, match="did not answer within 0.3 s"):
            answers("127.0.0.1", port, timeout=0.3)
        role = Role("worker", 0, {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{port}"]})
        started = time.monotonic()
        with pytest.raises(EdgeshopError, match=f"cannot reach worker-1 at 127.0.0.1:{port} \\(accepted the "
                                                "connection but did not answer"):
            wait_for_cluster(role, timeout=1.0, log=lambda _: None, interval=0.1)
        assert time.monotonic() - started < 5
    finally:
        stuck.close()


def test_two_tasks_find_each_other_and_listen_on_their_own_address_only():
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    errors: list[Exception] = []

    def task(index: int, delay: float) -> None:
        time.sleep(delay)
        try:
            wait_for_cluster(Role("worker", index, cluster), timeout=10, log=lambda _: None, interval=0.1)
        except Exception as exc:  # reported below
            errors.append(exc)

    late = threading.Thread(target=task, args=(1, 1.0))
    early = threading.Thread(target=task, args=(0, 0.0))
    early.start()
    late.start()
    time.sleep(0.5)
    # worker-0 listens on 127.0.0.1 only: another loopback address keeps its port free
    other = socket.socket()
    try:
        other.bind(("127.0.0.2", ports[0]))
    except OSError as exc:
        assert exc.errno != errno.EADDRINUSE, "the check listens on every interface"
        raise
    finally:
        other.close()
    early.join(15)
    late.join(15)
    assert errors == []


def test_tensorflows_grpc_server_counts_as_an_answer():
    grpc = pytest.importorskip("grpc")  # TensorFlow's own dependency: the server a started task runs
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        answers("127.0.0.1", port, timeout=2.0)
    finally:
        server.stop(0)


def test_an_address_not_of_this_machine_is_named():
    role = Role("worker", 0, {"worker": ["192.0.2.1:12345", "127.0.0.1:1"]})  # TEST-NET-1: nobody's address
    with pytest.raises(EdgeshopError, match="192.0.2.1 of this task .* is not an address of this machine"):
        wait_for_cluster(role, timeout=0.5, log=lambda _: None)
