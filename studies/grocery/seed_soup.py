"""Average the fine-tuned float weights of finished runs of one recipe (a uniform "model
soup", Wortsman et al. 2022) into a new run directory whose QAT and export then continue
from the average:

    python studies/grocery/seed_soup.py runs/grocery_h runs/grocery_seed1 runs/grocery_seed2 --out runs/grocery_soup
    python studies/grocery/grocery_recipe.py --config configs/grocery_round1.json --resume --out runs/grocery_soup \
        --models-dir runs/grocery_soup_models

The runs must share their configuration except the seed. The new run is the first run
branched after its fine-tune phase (edgeshop's RunDir.branch: its data, metadata and head
stage), with the average as that phase's weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import study_paths  # noqa: F401  (puts the repository root and tools/ on sys.path)

from edgeshop import EdgeshopError  # noqa: E402
from edgeshop.train import (  # noqa: E402
    RunDir,
    TrainConfig,
    read_arrays,
    write_arrays,
)

FLOAT_STAGE = "train"  # the fine-tuned weights; QAT starts from them


def _config(run: Path) -> dict:
    """The run's settings with today's defaults filled in (runs saved before a setting existed)."""
    try:
        return TrainConfig.from_saved(RunDir(run).read_config()).to_keys()
    except (OSError, ValueError, TypeError) as exc:
        raise EdgeshopError(f"{run}: not a finished training run ({exc})") from None


def _differences(a: dict, b: dict) -> list[str]:
    """Settings that differ between two runs, beyond the seed and the run directory."""
    ignored = {"runtime.seed", "runtime.out"}
    if not a["experimental.coarse_loss_weight"] and not b["experimental.coarse_loss_weight"]:
        ignored.add("data.hierarchy")  # read only by the coarse loss
    return sorted(k for k in a.keys() | b.keys() if k not in ignored and a.get(k) != b.get(k))


def make_soup(runs: list[Path], out: Path) -> int:
    """Write the soup run into ``out``; returns how many weight arrays differed between runs."""
    if len(runs) < 2:
        raise EdgeshopError("a soup needs at least two runs")
    if out.exists():
        raise EdgeshopError(f"{out} exists; choose another --out or delete it")
    reference = _config(runs[0])
    for run in runs[1:]:
        differing = _differences(reference, _config(run))
        if differing:
            raise EdgeshopError(f"{run}: its configuration differs from {runs[0]}'s beyond the seed "
                                f"({', '.join(differing)}); a soup averages runs of one recipe")
    weights = []
    for run in runs:
        stage = RunDir(run).stage_weights(FLOAT_STAGE)
        if not stage.is_file():
            raise EdgeshopError(f"{stage}: missing; is the run finished?")
        weights.append(read_arrays(stage)[0])
    if any(len(w) != len(weights[0]) for w in weights):
        raise EdgeshopError("the runs' weights do not line up (different architectures?)")
    aligned = list(zip(*weights, strict=True))
    soup = [np.mean(arrays, axis=0).astype(arrays[0].dtype) for arrays in aligned]
    differing = sum(any(not np.array_equal(arrays[0], a) for a in arrays[1:]) for arrays in aligned)

    soup_run = RunDir(runs[0]).branch(out, after=FLOAT_STAGE)
    write_arrays(soup_run.stage_weights(FLOAT_STAGE), soup)
    state = soup_run.read_state()
    state.update(phase=FLOAT_STAGE, soup_of=[str(r) for r in runs])
    state["seconds"] = {}  # the soup trained nothing yet: its figures must not show run 0's training times
    soup_run.write_state(state)
    return differing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories of one recipe")
    parser.add_argument("--out", required=True, type=Path, help="the new run directory (must not exist)")
    args = parser.parse_args()
    try:
        differing = make_soup(args.runs, args.out)
    except EdgeshopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: the mean of {len(args.runs)} runs' '{FLOAT_STAGE}' weights "
          f"({differing} arrays differed; frozen ones are shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
