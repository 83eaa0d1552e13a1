"""edgeshop-train: train (and optionally prune and QAT) a classifier on a folder of images."""

from __future__ import annotations

import argparse
import json
import os
import sys

from edgeshop.cli._common import parse, run_command, show_warnings
from edgeshop.tflite.modelcard import INTERPOLATIONS
from edgeshop.train.config import HEADS, INPUT_PIPELINES, STRATEGIES, print_config

HIDDEN = argparse.SUPPRESS


class _PrintConfig(argparse.Action):
    """--print-config: every key of a config file, then exit (before TensorFlow is imported)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print_config()
        parser.exit()


class _DeprecatedPrune(argparse.Action):
    """--prune: the old name of --sparsity, which says what it sets (pruning channels is another option)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: --prune is deprecated: use --sparsity (magnitude sparsity)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeshop-train",
        description="Train an image classifier: head, fine-tune, optional channel pruning and int8 QAT. "
        "Writes the model, resolved config and training log into --out.",
        epilog="Every other setting (learning rates, augmentation, distillation temperature, ...) is a key of "
        "--config FILE; edgeshop-train --print-config lists them all with type, default and meaning.",
    )
    data = p.add_argument_group("data")
    data.add_argument("--data", help="folder of class folders, a split .txt (with classes.csv) or a path,label .csv")
    data.add_argument("--val", help="validation folder/split file/manifest (default: a stratified --val-fraction)")
    data.add_argument("--val-fraction", type=float, help="held-out fraction of each class (default 0.1)")

    model = p.add_argument_group("model")
    model.add_argument("--arch", help="efficientnet_lite0 (default), efficientnet_lite1, efficientnet_lite2 (a "
                                      "teacher: weights from make backbone-lite2), seed_cnn, or tiny: a few-layer "
                                      "network that trains in seconds to check the pipeline (data, export, devices); "
                                      "it is not a model to deploy and often learns next to nothing")
    model.add_argument("--image-size", type=int, help="input side in pixels (default: the architecture's)")
    model.add_argument("--head", choices=HEADS,
                       help="classifier head: linear (default) or cosine (normalised embedding and rows: scores are "
                            "scale x cosine, so edgeshop-enroll adds products on the same footing as trained ones)")

    schedule = p.add_argument_group("schedule")
    schedule.add_argument("--epochs", type=int, help="epochs of the main phase (default 10)")
    schedule.add_argument("--batch-size", type=int, help="images per training step (default 32)")

    compression = p.add_argument_group("compression")
    compression.add_argument("--qat", action="store_const", const=True,
                             help="int8 quantization-aware training (last phase)")
    compression.add_argument("--prune-channels", type=float, metavar="FRACTION",
                             help="structured pruning: remove this fraction of the channels of every expansion "
                                  "(conv -> depthwise -> conv) and fine-tune the narrower, faster network, e.g. 0.3")
    compression.add_argument("--target-latency-ratio", type=float, metavar="RATIO",
                             help="instead of a fraction: remove as many channels as make the int8 model RATIO x as "
                                  "slow as the unpruned one (e.g. 0.7), timed on this machine")
    compression.add_argument("--sparsity", dest="experimental.sparsity", type=float, metavar="S",
                             help="experimental: magnitude pruning, zero a fraction S of the weights (e.g. 0.5); "
                                  "the int8 file is no smaller or faster, only better compressed by gzip")
    compression.add_argument("--prune", dest="experimental.sparsity", type=float, action=_DeprecatedPrune,
                             help=HIDDEN)

    distillation = p.add_argument_group("distillation")
    distillation.add_argument("--teacher", metavar="RUN_DIR_OR_MODEL", action="append",
                              help="distil from this teacher: an edgeshop run directory (or its float_model.keras) "
                                   "or an edgeshop .tflite model trained on the same classes; its logits are cached "
                                   "in --out. Repeat it for an ensemble teacher (softened probabilities averaged)")

    run = p.add_argument_group("run")
    run.add_argument("--out", help="run directory to create")
    run.add_argument("--config", metavar="FILE",
                     help="JSON or YAML file of settings (nested by group, e.g. schedule: {lr: 0.001}); "
                          "flags override it")
    run.add_argument("--print-config", action=_PrintConfig, nargs=0,
                     help="list every key of a config file with its type, default and meaning, and exit")
    run.add_argument("--seed", type=int, help="random seed of the split, augmentation and initial weights (default 0)")
    run.add_argument("--input-pipeline", choices=INPUT_PIPELINES,
                     help="auto (default): memory when the decoded images fit the memory budget, else stream; "
                          "memory: decode all images before training; stream: decode files as batches need them "
                          "(memory does not grow with the dataset). The run log says which was used and why")
    run.add_argument("--init-from", metavar="RUN",
                     help="start a new run in --out from RUN's phases up to --after (weights, state, data files) and "
                          "train the phases after it; the settings given here replace RUN's")
    run.add_argument("--after", metavar="PHASE",
                     help="with --init-from: the last phase of RUN to keep: head, train (or finetune), "
                          "prune_channels (or channels), prune (or sparsity), qat")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    run.add_argument("--force", action="store_true", help="replace an earlier edgeshop run in --out (only a run's "
                     "own files are deleted; any other folder is refused, see docs/outputs-and-force.md)")
    _add_config_file_flags(p)
    return p


def _add_config_file_flags(p: argparse.ArgumentParser) -> None:
    """Flags for keys that belong in --config FILE, accepted so existing scripts keep working but
    not shown by --help (--print-config lists the keys)."""
    p.add_argument("--val-grouping", choices=("none", "file_order", "similarity"), help=HIDDEN)
    p.add_argument("--val-group-size", type=int, help=HIDDEN)
    p.add_argument("--classes", help=HIDDEN)
    p.add_argument("--hierarchy", help=HIDDEN)
    p.add_argument("--coarse-loss-weight", type=float, help=HIDDEN)
    p.add_argument("--cosine-scale", type=float, help=HIDDEN)
    p.add_argument("--train-image-size", type=int, help=HIDDEN)
    p.add_argument("--interpolation", choices=INTERPOLATIONS, help=HIDDEN)
    p.add_argument("--head-epochs", type=int, help=HIDDEN)
    p.add_argument("--lr", type=float, help=HIDDEN)
    p.add_argument("--fine-tune-lr", type=float, help=HIDDEN)
    p.add_argument("--patience", type=int, help=HIDDEN)
    p.add_argument("--keep-last-epoch", dest="select_best_epoch", action="store_const", const=False, help=HIDDEN)
    p.add_argument("--average-last-epochs", type=int, help=HIDDEN)
    p.add_argument("--no-pretrained", dest="pretrained", action="store_const", const=False, help=HIDDEN)
    p.add_argument("--pretrained-weights", help=HIDDEN)
    p.add_argument("--no-augment", dest="augment", action="store_const", const=False, help=HIDDEN)
    p.add_argument("--mix", type=float, help=HIDDEN)
    p.add_argument("--freeze-bn", action="store_const", const=True, help=HIDDEN)
    p.add_argument("--distill-temperature", type=float, help=HIDDEN)
    p.add_argument("--distill-weight", type=float, help=HIDDEN)
    p.add_argument("--reconstruct-channels", action="store_const", const=True, help=HIDDEN)
    p.add_argument("--prune-channels-epochs", type=int, help=HIDDEN)
    p.add_argument("--prune-channels-lr", type=float, help=HIDDEN)
    p.add_argument("--prune-channels-average-last-epochs", type=int, help=HIDDEN)
    p.add_argument("--prune-epochs", dest="experimental.sparsity_epochs", type=int, help=HIDDEN)
    p.add_argument("--qat-epochs", type=int, help=HIDDEN)
    p.add_argument("--deterministic", action="store_const", const=True, help=HIDDEN)
    p.add_argument("--strategy", choices=STRATEGIES, help=HIDDEN)
    p.add_argument("--connect-timeout", type=float, help=HIDDEN)
    p.add_argument("--memory-budget", dest="memory_budget_mb", type=float, help=HIDDEN)
    p.add_argument("--cache-dir", help=HIDDEN)
    p.add_argument("--cpu-devices", type=int, help=HIDDEN)
    p.add_argument("--workers", type=int, help=HIDDEN)


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)

    def body() -> int:
        from edgeshop.errors import EdgeshopError

        show_warnings("edgeshop-train")  # experimental settings are warned about

        if args.init_from or args.after:
            metrics = branched_run(args)
        elif args.resume:
            if not args.out:
                raise EdgeshopError("--resume needs --out RUN_DIR (the run to continue, with its saved settings)")
            from edgeshop.train.fit import resume

            metrics = resume(args.out)
        else:
            config = checked_config(args)  # every refusal before TensorFlow is imported (seconds)
            from edgeshop.train.fit import train

            metrics = train(config, force=args.force)
        print(json.dumps(metrics, indent=2))
        return 0

    return run_command("edgeshop-train", body)


def branched_run(args: argparse.Namespace) -> dict:
    """``--init-from RUN --after PHASE``: the new run folder written (every refusal before
    TensorFlow is imported), then trained from there like a resumed run."""
    from edgeshop.errors import EdgeshopError
    from edgeshop.train.config import read_config_file
    from edgeshop.train.run_dir import RunDir

    if not (args.init_from and args.after and args.out):
        raise EdgeshopError("--init-from RUN and --after PHASE go together, with --out NEW_RUN_DIR")
    if args.resume:
        raise EdgeshopError("--init-from starts a new run in --out; drop --resume (resume that run later with it)")
    settings = read_config_file(args.config) if args.config else {}
    skip = ("config", "resume", "force", "verbose", "print_config", "init_from", "after", "out")
    settings.update({k: v for k, v in vars(args).items() if k not in skip and v is not None})
    new = RunDir(args.init_from).branch(args.out, after=args.after, force=args.force, **settings)
    from edgeshop.train.fit import resume

    print(f"{new.path}: {args.init_from}'s phases up to {args.after} kept; training the ones after it")
    return resume(new.path)


def checked_config(args: argparse.Namespace):
    """The run's settings from flags and --config, refused here when they, the data or --out
    cannot work: TensorFlow takes seconds to import, a typo should not wait for it."""
    from edgeshop._io import check_output_folder
    from edgeshop.data import discover
    from edgeshop.errors import EdgeshopError
    from edgeshop.train.config import TrainConfig, read_config_file

    flags = {k: v for k, v in vars(args).items()
             if k not in ("config", "resume", "force", "verbose", "print_config", "init_from", "after")}
    if flags["teacher"] and len(flags["teacher"]) == 1:  # one teacher: saved as before, a string
        flags["teacher"] = flags["teacher"][0]
    file_values = read_config_file(args.config) if args.config else {}
    config = TrainConfig.from_sources(file_values, flags, source=args.config or "config file")
    config.validate()
    for teacher in config.teachers():
        if not os.path.exists(teacher):
            raise EdgeshopError(f"--teacher {teacher}: expected an edgeshop run directory, its float_model.keras, "
                                "or an edgeshop .tflite model (nothing is at this path)")
    # a multi_worker task's folder depends on TF_CONFIG: checked by the run
    if config.runtime.strategy != "multi_worker":
        check_output_folder(config.runtime.out, force=args.force, inputs=[*config.inputs(), args.config])
    discover(config.data.path, config.data.classes)
    if config.data.val:
        discover(config.data.val, config.data.classes)
    return config


if __name__ == "__main__":
    sys.exit(main())
