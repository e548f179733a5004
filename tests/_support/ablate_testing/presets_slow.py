"""A slower fidelity preset for the fault and signal tests: a trial is still training when they strike."""

import shutil
from pathlib import Path

SLOW_FIDELITY = """
[slow]           # tests only: digits with a longer target budget
data = "digits"
width = 32
epochs = 30
source_epochs = 4
batch_size = 64
lr = 0.01
bnn_lr = 0.01
eval_samples = 4
"""


def slow_studies_dir(tmp_path: Path) -> Path:
    """A copy of the project's definitions whose fidelity file also holds the ``slow`` preset."""
    studies = tmp_path / "studies-slow"
    studies.mkdir()
    for toml in (Path(__file__).resolve().parents[3] / "studies").glob("*.toml"):
        shutil.copy(toml, studies / toml.name)
    with open(studies / "fidelity.toml", "a") as fh:
        fh.write(SLOW_FIDELITY)
    return studies
