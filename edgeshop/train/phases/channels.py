"""The channel-removal phase (--prune-channels / --target-latency-ratio): the trained
network's lowest-ranked channels removed, then the narrower network fine-tuned."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgeshop.train import channels
from edgeshop.train._keras import keras, tf
from edgeshop.train.phases.base import Phase
from edgeshop.train.run_model import build_model

if TYPE_CHECKING:
    from edgeshop.train.architectures import Architecture
    from edgeshop.train.config import TrainConfig
    from edgeshop.train.trainer import TrainingRun

CHANNEL_SCORE_IMAGES = 64  # representative images whose activations rank the channels
RECONSTRUCTION_IMAGES = 128  # representative images the projections are refitted on (--reconstruct-channels)


class Channels(Phase):
    name = "prune_channels"
    warmup = True

    @classmethod
    def from_config(cls, config: TrainConfig, arch: Architecture) -> Phase | None:
        if not (config.compression.prune_channels or config.compression.target_latency_ratio):
            return None
        return cls(config.compression.prune_channels_epochs, config.compression.prune_channels_lr, keep_best=False,
                   average_last=config.experimental.prune_channels_average_last_epochs)

    def check(self, run: TrainingRun, resume: bool) -> None:
        channels.require_groups(build_model(run.config, 2), run.arch.name)
        if run.config.compression.target_latency_ratio and not resume:
            from edgeshop.train import latency_target

            pixels = np.random.default_rng(0).uniform(0, 255, (4, run.image_size, run.image_size, 3))
            build = _builder(run)
            floor = latency_target.require_reachable(
                build,
                channels.find_groups(build(None)),
                run.config.compression.target_latency_ratio,
                pixels.astype(np.float32),
            )
            run.log(
                f"--target-latency-ratio {run.config.compression.target_latency_ratio:g}: reachable here "
                f"(the narrowest "
                f"allowed network runs at {floor:.2f}x)"
            )

    def start_widths(self, run: TrainingRun) -> dict[str, int] | None:
        return None  # it starts from the full-width weights and narrows them (reshape)

    def reshape(self, model: keras.Model, run: TrainingRun) -> keras.Model:
        """The trained full-width model with its lowest-ranked channels removed. The plan is
        written before fine-tuning starts and reused on resume (the checkpoints hold
        weights of the narrow model)."""
        groups = channels.require_groups(model, run.arch.name)
        plan = run.folder.read_channel_plan()
        if plan is None:
            sample = run.folder.representative_images(CHANNEL_SCORE_IMAGES)
            fraction, search = run.config.compression.prune_channels, None
            if run.config.compression.target_latency_ratio:
                fraction, search = self._allocate_for_latency(run, model, groups, sample)
            plan = channels.make_plan(model, groups, fraction, sample)
            if search is not None:
                plan["latency_target"] = search
            run.folder.write_channel_plan(plan)
        source = model
        # a resumed phase restores its checkpoint over these weights: no refit needed then
        resuming = tf.train.latest_checkpoint(str(run.folder.checkpoints(self.name))) is not None
        if run.config.experimental.reconstruct_channels and not resuming:
            source = self._refit(run, model, groups, plan)
        narrow = channels.prune_channels(source, groups, plan)
        info = channels.summary(plan)
        run.log(
            f"[{self.name}] kept {info['kept']} of {info['channels']} channels in {info['groups']} groups "
            f"(ranked by {info['criterion']}); parameters {model.count_params():,} -> "
            f"{narrow.count_params():,}"
        )
        return narrow

    def _refit(self, run: TrainingRun, model: keras.Model, groups, plan: dict) -> keras.Model:
        sample = run.folder.representative_images(RECONSTRUCTION_IMAGES)
        run.log(f"[{self.name}] refitting the projections on their kept channels ({len(sample)} images)")
        source, errors = channels.refitted_copy(model, groups, plan, sample)
        # projections' errors differ in scale by orders of magnitude: report the median ratio
        ratios = [e["after"] / e["before"] for e in errors.values() if e["refitted"] and e["before"] > 0]
        refitted = sum(e["refitted"] for e in errors.values())
        median = f", median held-out error ratio {float(np.median(ratios)):.3f}" if ratios else ""
        run.log(f"[{self.name}] least squares: {refitted} of {len(errors)} projections refitted{median}")
        plan["reconstruction"] = {"images": int(len(sample)), "projections": errors}
        run.folder.write_channel_plan(plan)
        return source

    def _allocate_for_latency(
        self, run: TrainingRun, model: keras.Model, groups, images: np.ndarray
    ) -> tuple[dict[str, float], dict[str, Any]]:
        from edgeshop.train import latency_target

        target = run.config.compression.target_latency_ratio
        run.log(f"[{self.name}] choosing per-group fractions for {target:g}x the int8 latency")
        return latency_target.allocate_for_latency(_builder(run), model, groups, target, images, run.log)


def _builder(run: TrainingRun):
    """The run's architecture at export size with ``widths`` (None: unpruned), as the latency search times it."""
    return lambda widths: build_model(run.config, len(run.class_names), widths=widths)
