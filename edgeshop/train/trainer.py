"""A training run: its phases (train/phases/) in order, with the strategy, data,
checkpoints and resume around them. The run folder's files are named by train/run_dir.py."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeshop._io import check_output_folder
from edgeshop.errors import EdgeshopError
from edgeshop.report.metrics import did_not_learn, top_k_accuracy
from edgeshop.train import channels, cluster, distill, distribute, tf_data
from edgeshop.train._keras import keras, tf
from edgeshop.train.architectures import find_pretrained_weights, get_architecture, load_weights_npz
from edgeshop.train.averaging import WeightAverage
from edgeshop.train.config import TrainConfig
from edgeshop.train.epoch_end import EpochEnd
from edgeshop.train.losses import make_loss
from edgeshop.train.model_io import load_weights, save_model, save_weights
from edgeshop.train.phases import Phase, plan_phases
from edgeshop.train.run_card import input_spec, run_card
from edgeshop.train.run_data import RunData
from edgeshop.train.run_dir import WORKERS, RunDir
from edgeshop.train.run_model import build_model, load_run_model


class TrainingRun:
    def __init__(self, config: TrainConfig, resume: bool = False, force: bool = False, log=print) -> None:
        self.out = Path(config.runtime.out)
        self.log = log
        # multi_worker: this task's place in TF_CONFIG; a non-chief task writes its own folder.
        self.role, run_dir = distribute.task_folder(self.out, None if resume else config.runtime.strategy)
        if resume:
            log(f"resuming {run_dir} with its saved configuration")
            config = saved_config(run_dir)
            self.role, folder = distribute.resumed_role(self.out, self.role, config.runtime.strategy)
            run_dir = folder or run_dir
        else:
            self._replaced = check_run_folder(config, run_dir, force, self.role)
        self.folder = RunDir(run_dir)
        # Everything that can refuse the command runs before the run folder is created:
        # a refused command must leave nothing behind that blocks the corrected one.
        config.validate()
        self.config = config
        self.arch = get_architecture(config.model.arch)
        self.image_size = config.model.image_size or self.arch.default_image_size
        self.train_image_size = config.model.train_image_size or self.image_size
        if self.train_image_size != self.image_size and not self.arch.any_resolution:
            raise EdgeshopError(f"--train-image-size needs an architecture that runs at any input size; "
                                f"{self.arch.name} has a fixed-size layer (drop --train-image-size)")
        self.phases = plan_phases(config, self.arch)
        self.spec = input_spec(config, self.arch, self.image_size)
        self.data = RunData(config, self.folder, self.spec, log, resume=resume)
        for phase in self.phases:
            phase.check(self, resume)
        self.teachers = distill.load_teachers(config.teachers(), self.class_names)
        distribute.join_cluster(self.role, config.runtime.connect_timeout, log)
        if not resume:
            self.folder.create(self._replaced, config.to_dict())
        if self.folder.read_split() is None:  # runs made before split.json get one now
            self.folder.write_split(self.data.train_samples, self.data.val_samples)
        self.state = self.folder.read_state()

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    @property
    def class_names(self) -> list[str]:
        return self.data.class_names

    def save_state(self) -> None:
        self.folder.write_state(self.state)

    # -- data --------------------------------------------------------------------------
    def _load_data(self) -> None:
        self.data.load(needs_memory="--teacher" if self.teachers else "")
        if self.teachers:
            self.data.load_teacher_targets(self.teachers)

    def _shard(self) -> tuple[int, int] | None:
        return distribute.shard_of(self.role)

    def _train_dataset(self, size: int):
        return tf_data.train_batches(self.data, self.config, self.image_size, size, self._shard(),
                                     bool(self.teachers))

    def _val_dataset(self):
        return tf_data.val_batches(self.data, self.config, self._shard(), bool(self.teachers))

    def _write_metadata(self) -> None:
        card = run_card(self.out.name, self.config, self.arch, self.spec, self.class_names,
                        [p.name for p in self.phases], self.data.n_train, self.train_image_size, self.teachers)
        if not hasattr(self, "representative"):
            self.representative = self.data.representative_pixels()
        self.folder.write_metadata(card, self.representative)

    # -- models ------------------------------------------------------------------------
    def _previous_stage(self, phase: Phase) -> Path | None:
        """The weights of the last float phase planned before ``phase``."""
        before = self.phases[: self.phases.index(phase)]
        floats = [p for p in before if p.float_stage]
        return self.folder.stage_weights(floats[-1].name) if floats else None

    def _phase_model(self, phase: Phase, steps_per_epoch: int) -> keras.Model:
        # A float phase training at another size than it validates at needs free H and W.
        any_size = phase.image_size(self) != self.image_size
        model = build_model(self.config, len(self.class_names), any_size=any_size, widths=phase.start_widths(self))
        previous = self._previous_stage(phase)
        if previous is not None:
            load_weights(model, previous)
        elif self.arch.pretrained_weights and self.config.model.pretrained:
            source = find_pretrained_weights(self.arch, self.config.model.pretrained_weights)
            fresh = load_weights_npz(model, source)
            self.log(f"initialised from ImageNet weights ({source}); new layers: {', '.join(fresh)}")
        return phase.prepare(model, self, steps_per_epoch)

    def _compile(self, model: keras.Model, phase: Phase, steps_per_epoch: int) -> None:
        total = max(1, phase.epochs * steps_per_epoch)
        warmup = min(steps_per_epoch, total // 10) if phase.warmup else 0
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=phase.lr if warmup == 0 else phase.lr * 0.1,
            decay_steps=total - warmup,
            alpha=0.01,
            warmup_target=phase.lr if warmup else None,
            warmup_steps=warmup,
        )
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=self.config.schedule.weight_decay)
        n_classes = len(self.class_names)
        k = min(5, n_classes)
        loss = make_loss(self.config.schedule.label_smoothing, self.data.coarse_of,
                         self.config.experimental.coarse_loss_weight)
        metrics = ["accuracy", keras.metrics.TopKCategoricalAccuracy(k=k, name="top5")]
        if self.teachers:
            loss = distill.DistillationLoss(
                n_classes, self.config.distillation.distill_temperature, self.config.distillation.distill_weight, loss
            )
            metrics = [distill.HardAccuracy(n_classes), distill.HardTopK(n_classes, k)]
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)

    # -- one phase ---------------------------------------------------------------------
    def _run_phase(self, phase: Phase, strategy, train_ds, val_ds, steps: int) -> None:
        with strategy.scope():
            model = self._phase_model(phase, steps)
            self._compile(model, phase, steps)
            epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch)
            manager = tf.train.CheckpointManager(checkpoint, str(self.folder.checkpoints(phase.name)), max_to_keep=2)
            if manager.latest_checkpoint:
                checkpoint.restore(manager.latest_checkpoint).expect_partial()
                self.log(f"[{phase.name}] resumed from {manager.latest_checkpoint} (epoch {int(epoch.numpy())})")
            else:
                self.state.update(phase=phase.name, best=None, best_epoch=None, wait=0)
                self.save_state()
        initial_epoch = int(epoch.numpy())
        average = WeightAverage(self.folder.average_weights(phase.name)) if phase.average_last else None
        if initial_epoch < phase.epochs and not self._stopped_early(phase):
            callbacks = [
                EpochEnd(self, phase, manager, epoch, val_ds is not None, average),
                keras.callbacks.TensorBoard(str(self.folder.tensorboard(phase.name)), profile_batch=0),
                *phase.callbacks(),
            ]
            self.log(f"[{phase.name}] {phase.epochs} epoch(s), lr {phase.lr:g}, {steps} steps/epoch")
            started = time.time()
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=phase.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps if self._shard() is not None else None,  # multi_worker: endless stream
                callbacks=callbacks,
                verbose=1 if sys.stdout.isatty() else 2,
            )
            seconds = self.state["seconds"]
            seconds[phase.name] = seconds.get(phase.name, 0.0) + time.time() - started
        best = self.folder.best_weights(phase.name)
        if phase.keep_best and best.is_file():
            load_weights(model, best)
            self.log(f"[{phase.name}] kept epoch {self.state['best_epoch']} (val accuracy {self.state['best']:.4f})")
        if average is not None:
            self._use_average(phase, model, average, val_ds)
        self._finish_phase(phase, model)

    def _use_average(self, phase: Phase, model: keras.Model, average: WeightAverage, val_ds) -> None:
        model.set_weights(average.weights(model.get_weights()))
        first = average.last_epoch - average.count + 1
        message = f"[{phase.name}] kept the mean weights of epochs {first}-{average.last_epoch}"
        if val_ds is not None:
            # Reported, not used to choose anything: the recipe fixes N in advance.
            accuracy = model.evaluate(val_ds, verbose=0, return_dict=True)["accuracy"]
            self.state[phase.averaged_state_key] = float(accuracy)
            message += f" (val accuracy {accuracy:.4f})"
        self.log(message)

    def _stopped_early(self, phase: Phase) -> bool:
        return phase.patience is not None and self.state.get("wait", 0) >= phase.patience

    def _finish_phase(self, phase: Phase, model: keras.Model) -> None:
        model = phase.finish(model, self)
        stage = self.folder.stage_weights(phase.name)
        stage.parent.mkdir(exist_ok=True)
        save_weights(model, stage)
        self.state["completed"].append(phase.name)
        self.save_state()

    # -- the whole run -----------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.time()
        strategy = distribute.make_strategy(
            self.config.runtime.strategy, self.config.runtime.cpu_devices, self.log, self.role
        )
        keras.utils.set_random_seed(self.config.runtime.seed)
        if self.config.runtime.deterministic:
            tf.config.experimental.enable_op_determinism()
        self._load_data()
        self._write_metadata()
        val_ds = self._val_dataset()
        steps = math.ceil(
            self.data.n_train / self.config.schedule.batch_size
        )  # streamed: files listed minus known unreadable
        for phase in self.phases:
            if phase.name in self.state["completed"]:
                self.log(f"[{phase.name}] already done, skipping")
                continue
            size = phase.image_size(self)
            if size != self.image_size:
                self.log(f"[{phase.name}] training at {size} px, validating at {self.image_size} px")
            # tf.data pipelines are lazy: building one per phase costs nothing.
            self._run_phase(phase, strategy, self._train_dataset(size), val_ds, steps)
        metrics = self._finalise(val_ds)
        metrics["wall_seconds_this_invocation"] = round(time.time() - started, 1)
        self.folder.write_json(self.folder.metrics_file, metrics)
        return metrics

    def _finalise(self, val_ds) -> dict[str, Any]:
        if self.data.streamed():  # the counts are known now: every file has been met
            self.data.write_streamed_report()
            self._write_metadata()
        float_model = load_run_model(self.run_dir, final=False)
        save_model(float_model, self.folder.float_model_file)
        metrics: dict[str, Any] = {
            "arch": self.arch.name,
            "image_size": self.image_size,
            "classes": len(self.class_names),
            "phases": self.state["completed"],
            "train_seconds_per_phase": {k: round(v, 1) for k, v in self.state["seconds"].items()},
            "sparsity_after_strip": self.state.get("sparsity_after_strip"),
        }
        plan = self.folder.read_channel_plan()
        if plan is not None:
            metrics["channels"] = channels.summary(plan)
        for phase in self.phases:
            if phase.averaged_state_key in self.state:
                metrics[phase.averaged_metric] = self.state[phase.averaged_state_key]
        if val_ds is not None:
            final = load_run_model(self.run_dir, final=True) if self.config.compression.qat else float_model
            for name, model in (("float", float_model), ("final", final)):
                truth, probs = self._val_predictions(model, val_ds)
                # the evaluation's own top-k (ties: lowest index first), so training and edgeshop-eval agree
                metrics[f"val_top1_{name}"] = top_k_accuracy(truth, probs, 1)
                metrics[f"val_top5_{name}"] = top_k_accuracy(truth, probs, 5)
            self.log(f"validation top-1: float {metrics['val_top1_float']:.4f}, final {metrics['val_top1_final']:.4f}")
            metrics["warnings"] = did_not_learn(truth, probs, self.class_names)  # of the final model
            for warning in metrics["warnings"]:
                self.log(
                    f"warning: {warning}; train longer or on more/clearer photos (--arch tiny only checks the pipeline)"
                )
        return metrics

    def _val_predictions(self, model: keras.Model, val_ds) -> tuple[np.ndarray, np.ndarray]:
        """(true index, scores) of every readable validation image."""
        if not self.data.streamed():
            val = self.data.val
            return val.labels, model.predict(val.pixels.astype(np.float32), batch_size=64, verbose=0)
        truth, probs = [], []
        for images, targets in val_ds:  # streamed batch by batch: memory does not grow with val
            probs.append(model(images, training=False).numpy())
            truth.append(np.argmax(targets.numpy(), axis=1))
        if not probs:
            return np.zeros(0, np.int32), np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate(truth), np.concatenate(probs)


def saved_config(run_dir: str | Path) -> TrainConfig:
    """The configuration a run was started with (config.json), for resuming it."""
    folder = RunDir(run_dir)
    if not folder.has_state():
        raise EdgeshopError(f"{folder.path}: nothing to resume (no state.json); start without --resume")
    return TrainConfig.from_saved(folder.read_config())


def check_run_folder(config: TrainConfig, run_dir: Path, force: bool, role: cluster.Role | None = None) -> list[Path]:
    """What starting a run in ``run_dir`` replaces, after refusing (nothing touched) a folder that
    holds an input or anything but a run's own files (edgeshop/_io.py). A chief's ``workers/``
    belongs to the other tasks: each replaces its own."""
    keep = (WORKERS,) if role is not None and role.chief else ()
    return check_output_folder(run_dir, force=force, inputs=config.inputs(), keep=keep)
