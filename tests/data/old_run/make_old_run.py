"""How tests/data/old_run/run was made: edgeshop main at commit 3c8c35c (before split.json and
representative_images.npy), a tiny run stopped after its train phase, QAT still to do.

    mkdir /tmp/oldrun && cd /tmp/oldrun
    PYTHONPATH=<checkout at 3c8c35c> python <this file>
    cp -a run tests/data/old_run/run && rm -rf tests/data/old_run/run/{checkpoints,tensorboard,float_model.keras}

checkpoints/, tensorboard/ and float_model.keras were left out to keep the folder small: the
train phase is finished (resume needs none of them) and float_model.keras is rewritten at the end.
Its config names data="data": the test regenerates those images (tests/synthetic.py, seed 5) beside it.
"""

from pathlib import Path

from synthetic import make_dataset

from edgeshop.train.config import TrainConfig
from edgeshop.train.fit import TrainingRun

make_dataset(Path("data"), per_class=8, size=32, seed=5)
config = TrainConfig(data="data", out="run", arch="tiny", image_size=32, epochs=2, batch_size=8,
                     val_fraction=0.25, qat=True, qat_epochs=1, seed=3)
run = TrainingRun(config)
run.phases = run.phases[:1]  # stop after "train", as a run interrupted before QAT
print(run.run())
