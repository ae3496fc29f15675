import time
from pathlib import Path

from snakemake.exceptions import WorkflowError

from genpipe import dvcsync
from genpipe.data import DATASETS, FILES
from genpipe.params import ParamsError, load_yaml, validate

RUN_STARTED = time.time()

# params.yaml is validated before any job starts; the message names the offending key.
try:
    validate(config, load_yaml(Path(workflow.basedir) / "schemas" / "params.schema.yaml"))
except ParamsError as exc:
    raise WorkflowError(str(exc))

# Catch up with `dvc repro` / `dvc checkout` / `dvc pull` (fresh mtimes, params Snakemake has not seen).
dvcsync.sync_snakemake(".")

DATASET_NAMES = list(DATASETS)

# Code each stage depends on (also its DVC deps): an edit reruns that stage and its descendants.
CODE = {
    "download": ["scripts/download.py", "src/genpipe/data.py", "src/genpipe/io.py"],
    "train_classifier": [
        "scripts/train_classifier.py",
        "src/genpipe/data.py",
        "src/genpipe/io.py",
        "src/genpipe/metrics.py",
        "src/genpipe/models/norms.py",
        "src/genpipe/models/resnet.py",
        "src/genpipe/train.py",
    ],
    "figures": [
        "scripts/figures.py",
        "src/genpipe/data.py",
        "src/genpipe/io.py",
        "src/genpipe/metrics.py",
        "src/genpipe/plots.py",
    ],
    "report": ["scripts/report.py", "src/genpipe/data.py", "src/genpipe/io.py", "src/genpipe/report.py"],
}


wildcard_constraints:
    dataset="|".join(DATASET_NAMES),
    folder="|".join(spec.folder for spec in DATASETS.values()),


def raw_files(wildcards):
    """The verified IDX files of ``wildcards.dataset`` (outputs of its download job)."""
    spec = DATASETS[wildcards.dataset]
    return [f"data/raw/{spec.name}/{spec.folder}/raw/{f}" for f in FILES]


def stage_params(key):
    """A params function returning the params.yaml section ``key`` ("a.{dataset}") of a job.

    Snakemake reruns a job when these values change, as DVC does for the same ``params:`` key.
    """

    def section(wildcards):
        node = config
        for part in key.format(**wildcards).split("."):
            node = node[part]
        return node

    section.__name__ = f"params_{key.split('.')[0]}"
    return section


def record_in_dvc():
    """Record in dvc.lock what this run produced, so `dvc status` agrees with Snakemake."""
    dvcsync.commit(since=RUN_STARTED, root=".")
