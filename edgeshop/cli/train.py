"""edgeshop-train: train (and optionally prune and QAT) a classifier on a folder of images."""

from __future__ import annotations

import argparse
import json
import os
import sys

from edgeshop.cli._common import parse, run_command
from edgeshop.runtime.modelcard import INTERPOLATIONS
from edgeshop.train.config import HEADS, INPUT_PIPELINES, STRATEGIES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeshop-train",
        description="Train an image classifier: head, fine-tune, optional pruning and int8 QAT. "
        "Writes the model, resolved config and training log into --out.",
    )
    p.add_argument("--data", help="folder of class folders, a split .txt (with classes.csv) or a path,label .csv")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--config", help="JSON or YAML file of settings; flags override it")
    p.add_argument("--val", help="validation folder/split file/manifest (default: a stratified --val-fraction)")
    p.add_argument("--val-fraction", type=float, help="held-out fraction of each class (default 0.1)")
    p.add_argument("--val-grouping", choices=("none", "file_order", "similarity"),
                   help="draw --val-fraction in whole bursts of consecutive files per class: file_order "
                        "(blocks of --val-group-size) or similarity (runs of look-alike neighbours); default none")
    p.add_argument("--val-group-size", type=int, metavar="N",
                   help="files per block for --val-grouping file_order (default 10)")
    p.add_argument("--classes", help="classes.csv for split files (default: beside the split file)")
    p.add_argument("--hierarchy", metavar="CLASSES_CSV",
                   help="fine -> coarse classes (name, id, coarse name), for --coarse-loss-weight")
    p.add_argument("--coarse-loss-weight", type=float, metavar="W",
                   help="add W x the coarse-class cross-entropy, to keep mistakes within a coarse class "
                        "(default 0: off)")
    p.add_argument("--arch", help="efficientnet_lite0 (default), efficientnet_lite1, efficientnet_lite2 (a teacher: "
                                  "weights from make backbone-lite2), seed_cnn, or tiny: a few-layer network that "
                                  "trains in seconds to check the pipeline (data, export, devices); it is not a "
                                  "model to deploy and often learns next to nothing")
    p.add_argument("--head", choices=HEADS,
                   help="classifier head: linear (default) or cosine (normalised embedding and rows: scores are "
                        "scale x cosine, so edgeshop-enroll adds products on the same footing as trained ones)")
    p.add_argument("--cosine-scale", type=float, metavar="S", help="the cosine head's logit scale (default 16)")
    p.add_argument("--image-size", type=int, help="input side in pixels (default: the architecture's)")
    p.add_argument("--train-image-size", type=int, metavar="PX",
                   help="train the float phases at this side, QAT and export at --image-size (default: the same)")
    p.add_argument("--interpolation", choices=INTERPOLATIONS,
                   help="resize rule (training and device): linear (default, fast) or area (exact box filter)")
    p.add_argument("--epochs", type=int, help="epochs of the main phase (default 10)")
    p.add_argument("--head-epochs", type=int, help="epochs training only the new head first (default 2)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate of the head phase / from-scratch training")
    p.add_argument("--fine-tune-lr", type=float, help="learning rate of the whole-network fine-tune")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (main phase)")
    p.add_argument("--keep-last-epoch", dest="select_best_epoch", action="store_const", const=False,
                   help="fixed schedule: keep the last epoch instead of the best on val, no early stopping")
    p.add_argument("--average-last-epochs", type=int, metavar="N",
                   help="keep the mean of the main phase's last N epochs' weights (needs --keep-last-epoch)")
    p.add_argument("--no-pretrained", dest="pretrained", action="store_const", const=False,
                   help="start from random weights instead of ImageNet")
    p.add_argument("--pretrained-weights", metavar="DIR_OR_NPZ",
                   help="ImageNet weights from this folder (holding the release files, checked by sha256) or .npz "
                        "file; default: $EDGESHOP_WEIGHTS_DIR, a checkout's models/, else downloaded once into "
                        "$EDGESHOP_CACHE (~/.cache/edgeshop)")
    p.add_argument("--no-augment", dest="augment", action="store_const", const=False)
    p.add_argument("--mix", type=float, metavar="P",
                   help="probability per batch of CutMix or MixUp, e.g. 0.5 (default 0: off)")
    p.add_argument("--freeze-bn", action="store_const", const=True,
                   help="keep BatchNorm in inference mode when fine-tuning (small datasets)")
    p.add_argument("--teacher", metavar="RUN_DIR_OR_MODEL", action="append",
                   help="distil from this teacher: an edgeshop run directory (or its float_model.keras) or an "
                        "edgeshop .tflite model trained on the same classes; its logits are cached in --out. "
                        "Repeat it for an ensemble teacher (the teachers' softened probabilities averaged)")
    p.add_argument("--distill-temperature", type=float, metavar="T",
                   help="softening temperature of teacher and student (default 4)")
    p.add_argument("--distill-weight", type=float, metavar="W",
                   help="weight of the teacher's soft targets; 1 - W goes to the hard labels (default 0.5)")
    p.add_argument("--prune-channels", type=float, metavar="FRACTION",
                   help="structured pruning: remove this fraction of the channels of every expansion "
                        "(conv -> depthwise -> conv) and fine-tune the narrower, faster network, e.g. 0.3")
    p.add_argument("--target-latency-ratio", type=float, metavar="RATIO",
                   help="instead of a fraction: remove as many channels as make the int8 model RATIO x as slow as "
                        "the unpruned one (e.g. 0.7), timed on this machine")
    p.add_argument("--reconstruct-channels", action="store_const", const=True,
                   help="after removing channels, refit each projection on the kept ones by least squares "
                        "(He et al. 2017), so fine-tuning starts close to the unpruned network")
    p.add_argument("--prune-channels-epochs", type=int, help="fine-tuning epochs after removing channels (default 4)")
    p.add_argument("--prune-channels-lr", type=float, help="their peak learning rate (default 3e-4)")
    p.add_argument("--prune-channels-average-last-epochs", type=int, metavar="N",
                   help="keep the mean weights of the channel fine-tune's last N epochs instead of its last "
                        "epoch's (stochastic weight averaging; N <= --prune-channels-epochs; default 0: off)")
    p.add_argument("--prune", type=float, metavar="SPARSITY", help="magnitude-prune to this sparsity, e.g. 0.5")
    p.add_argument("--prune-epochs", type=int)
    p.add_argument("--qat", action="store_const", const=True, help="int8 quantization-aware training (last phase)")
    p.add_argument("--qat-epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--deterministic", action="store_const", const=True,
                   help="deterministic kernels: a rerun on this machine gives identical weights (slower)")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="tf.distribute strategy; auto mirrors over 2+ GPUs; multi_worker trains on the machines "
                        "of TF_CONFIG (MultiWorkerMirroredStrategy)")
    p.add_argument("--connect-timeout", type=float, metavar="SECONDS",
                   help="multi_worker: wait this long for every task of TF_CONFIG to answer (default 300)")
    p.add_argument("--input-pipeline", choices=INPUT_PIPELINES,
                   help="auto (default): memory when the decoded images fit --memory-budget, else stream; memory: "
                        "decode all images before training; stream: decode files as batches need them (memory "
                        "does not grow with the dataset). The run log says which was used and why")
    p.add_argument("--memory-budget", dest="memory_budget_mb", type=float, metavar="MB",
                   help="auto: hold the decoded images in memory up to this many MB (default: 1/16 of the RAM "
                        "available at the start)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="stream: keep the decoded images in DIR after the first epoch (re-read, not re-decoded)")
    p.add_argument("--cpu-devices", type=int, help="split the CPU into N logical devices (for mirrored on CPU)")
    p.add_argument("--workers", type=int, help="image decoding threads")
    p.add_argument("--init-from", metavar="RUN",
                   help="start a new run in --out from RUN's phases up to --after (weights, state, data files) and "
                        "train the phases after it; the settings given here replace RUN's")
    p.add_argument("--after", metavar="PHASE",
                   help="with --init-from: the last phase of RUN to keep: head, train (or finetune), prune_channels "
                        "(or channels), prune (or sparsity), qat")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--force", action="store_true", help="replace an earlier edgeshop run in --out (only a run's own "
                   "files are deleted; any other folder is refused, see docs/outputs-and-force.md)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)

    def body() -> int:
        from edgeshop.errors import EdgeshopError

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
    skip = ("config", "resume", "force", "verbose", "init_from", "after", "out")
    settings.update({k: v for k, v in vars(args).items() if k not in skip and v is not None})
    new = RunDir(args.init_from).branch(args.out, after=args.after, force=args.force, **settings)
    from edgeshop.train.fit import resume

    print(f"{new.path}: {args.init_from}'s phases up to {args.after} kept; training the ones after it")
    return resume(new.path)


def checked_config(args: argparse.Namespace):
    """The run's settings from flags and --config, refused here when they, the data or --out
    cannot work: TensorFlow takes seconds to import, a typo should not wait for it."""
    from edgeshop._io import check_output_folder
    from edgeshop.datasets import discover
    from edgeshop.errors import EdgeshopError
    from edgeshop.train.config import TrainConfig, read_config_file

    flags = {k: v for k, v in vars(args).items() if k not in ("config", "resume", "force", "verbose")}
    if flags["teacher"] and len(flags["teacher"]) == 1:  # one teacher: saved as before, a string
        flags["teacher"] = flags["teacher"][0]
    file_values = read_config_file(args.config) if args.config else {}
    config = TrainConfig.from_sources(file_values, flags)
    config.validate()
    for teacher in config.teachers():
        if not os.path.exists(teacher):
            raise EdgeshopError(f"--teacher {teacher}: expected an edgeshop run directory, its float_model.keras, "
                                "or an edgeshop .tflite model (nothing is at this path)")
    if config.strategy != "multi_worker":  # a multi_worker task's folder depends on TF_CONFIG: checked by the run
        check_output_folder(config.out, force=args.force, inputs=[*config.inputs(), args.config])
    discover(config.data, config.classes)
    if config.val:
        discover(config.val, config.classes)
    return config


if __name__ == "__main__":
    sys.exit(main())
