"""Where a run trains: the tf.distribute strategy, and under multi_worker this task's role,
folder and share of the data.

With ``--strategy multi_worker`` every task trains the same replicated model (TensorFlow's
MultiWorkerMirroredStrategy); the chief writes the run folder, each other task the same
files into ``workers/TASK`` (all of them must take part in saving), and each task resumes
from its own folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeshop.train import cluster
from edgeshop.train._keras import tf
from edgeshop.train.run_dir import RunDir


def make_strategy(name: str, cpu_devices: int, log=print, role: cluster.Role | None = None):
    """The tf.distribute strategy: multi_worker over the machines of TF_CONFIG (checked
    reachable by the caller: cluster.wait_for_cluster), mirrored over GPUs (or logical
    CPUs), else default."""
    if name == "multi_worker":
        role = role or cluster.read_tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads the same TF_CONFIG
        log(f"MultiWorkerMirroredStrategy: {role.name} ({'chief' if role.chief else 'worker'}) of {role.size} "
            f"tasks, {strategy.num_replicas_in_sync} replicas")
        return strategy
    if cpu_devices > 1:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_devices)]
        )
    gpus = tf.config.list_physical_devices("GPU")
    log(f"devices: {len(gpus)} GPU(s)" + (f" {[g.name for g in gpus]}" if gpus else ", training on CPU"))
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = [d.name for d in tf.config.list_logical_devices("GPU" if gpus else "CPU")]
        log(f"MirroredStrategy over {devices}")
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def task_folder(out: Path, strategy: str | None) -> tuple[cluster.Role | None, Path]:
    """This process's task (multi_worker) and the folder it writes: the run folder for the
    chief and single-machine runs, ``workers/TASK`` in it for the other tasks. ``strategy``
    None (resuming, settings not read yet): a task with its own folder there is a worker."""
    if strategy is None:
        if not os.environ.get("TF_CONFIG"):
            return None, out
        role = cluster.read_tf_config()
        own = RunDir(out).worker(role.name)
        return (role, own.path) if not role.chief and own.has_state() else (None, out)
    if strategy != "multi_worker":
        return None, out
    role = cluster.read_tf_config()
    return role, out if role.chief else RunDir(out).worker(role.name).path


def resumed_role(out: Path, role: cluster.Role | None, strategy: str) -> tuple[cluster.Role | None, Path | None]:
    """(role, folder) of a resumed run once its saved strategy is known; folder None: keep the one found."""
    if strategy != "multi_worker":
        return None, out
    if role is None:
        role = cluster.read_tf_config()
        if not role.chief:
            from edgeshop.errors import EdgeshopError

            worker = RunDir(out).worker(role.name)
            raise EdgeshopError(f"{worker.path}: nothing to resume for task {role.name} (no state.json there); "
                                "restart every task without --resume")
    return role, None


def shard_of(role: cluster.Role | None) -> tuple[int, int] | None:
    """(tasks, this task's rank) under multi_worker: every task shuffles the list with the
    same seed and keeps every n-th image, so a streamed image is decoded by one task only."""
    if role is None or role.size < 2:
        return None
    order = [(kind, i) for kind in cluster.TASK_TYPES for i in range(len(role.cluster.get(kind, [])))]
    return role.size, order.index((role.task_type, role.index))


def join_cluster(role: cluster.Role | None, timeout: float, log=print) -> None:
    """Wait for every task of the cluster (before the run folder exists: an unreachable task leaves nothing behind)."""
    if role is not None:
        cluster.wait_for_cluster(role, timeout, log)
