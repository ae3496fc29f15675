import time
from pathlib import Path

from snakemake.exceptions import WorkflowError

from genpipe.pipeline import codedeps, dvcsync
from genpipe.data.datasets import DATASETS, FILES
from genpipe.pipeline.params import ParamsError, load_schema, validate

# Every rule's shell is logged("<its DVC stage's cmd>"): the command's output goes to {log}, and the
# terminal gets one line when the job starts and one when it ends (genpipe.pipeline.joblog).
from genpipe.pipeline.joblog import logged

RUN_STARTED = time.time()

# params.yaml is validated before any job starts; the message names the offending key.
try:
    validate(config, load_schema(Path(workflow.basedir) / "schemas" / "params.schema.yaml"))
except ParamsError as exc:
    raise WorkflowError(str(exc))

# Catch up with `dvc repro` / `dvc checkout` / `dvc pull` (fresh mtimes, params Snakemake has not seen).
# Only in the main process: a cluster job step parses this file again while other jobs write their
# outputs, and touching the project from there raced with them (a Slurm job failed on it).
if workflow.is_main_process:
    dvcsync.sync_snakemake(".")

DATASET_NAMES = list(DATASETS)

# Code each stage depends on (also its DVC deps, written by `make deps`): its script and the library
# modules in the script's import closure. An edit reruns exactly the stages that import the module.
CODE = codedeps.StageCode(Path(workflow.basedir).parent)

# Sample sets scored by evaluate_samples: name -> samples.npz and the dataset whose classifier scores it
# (dvc.yaml: vars.generators).
GENERATORS = {
    "vae": {"samples": "results/sample_vae/vae/samples.npz", "dataset": "fashion_mnist"},
    "ae_gaussian": {"samples": "results/sample_vae/ae_gaussian/samples.npz", "dataset": "fashion_mnist"},
}
SAMPLERS = ["ddpm", "ddim", "dpmpp"]  # genpipe.ddpm.diffusion.SAMPLERS
SAMPLE_KEYS = ["guidance_scale", "batch_size", "grid_per_class", "trajectory_points", "seed", "precision"]  # sample_ddpm's shared keys
for _s in SAMPLERS:
    GENERATORS[f"ddpm_{_s}"] = {"samples": f"results/sample_ddpm/{_s}/samples.npz", "dataset": "mnist"}
    GENERATORS[f"ddpm_{_s}_uncond"] = {"samples": f"results/sample_ddpm/{_s}/unconditional.npz", "dataset": "mnist"}
PROBE_VARIANTS = ["frozen", "finetune"]


wildcard_constraints:
    dataset="|".join(DATASET_NAMES),
    folder="|".join(spec.folder for spec in DATASETS.values()),
    norm="bn|in|bin|ln|gn",
    seed=r"\d+",
    batch=r"\d+",
    generator="|".join(GENERATORS),
    variant="|".join(PROBE_VARIANTS),
    sampler="|".join(SAMPLERS),


def raw_paths(dataset):
    """The verified IDX files of ``dataset`` (outputs of its download job)."""
    spec = DATASETS[dataset]
    return [f"data/raw/{spec.name}/{spec.folder}/raw/{f}" for f in FILES]


def raw_files(wildcards):
    return raw_paths(wildcards.dataset)


def generator_samples(wildcards):
    return GENERATORS[wildcards.generator]["samples"]


def generator_dataset(wildcards):
    return GENERATORS[wildcards.generator]["dataset"]


def generator_classifier(wildcards):
    return [f"results/train_classifier/{generator_dataset(wildcards)}/{f}" for f in ("model.safetensors", "config.json")]


# the second judge of each dataset's samples (genpipe.scoring.spaces.JUDGES; dvc.yaml: vars.datasets.*.judge)
JUDGE_DIRS = {"mnist": "results/train_scene_parser", "fashion_mnist": "results/train_vit"}


def judge_files(dataset):
    return [f"{JUDGE_DIRS[dataset]}/{f}" for f in ("model.safetensors", "config.json")]


def generator_dino(wildcards):
    return [f"results/train_dino/{generator_dataset(wildcards)}/{f}" for f in ("model.safetensors", "config.json")]


def generator_reference(wildcards):
    return [f"results/reference_stats/{generator_dataset(wildcards)}/{f}" for f in ("features.safetensors", "metrics.json")]


def stage_params(*keys):
    """A params function returning ``{key: value}`` for the params.yaml keys of a job.

    Keys may hold wildcards ("train_classifier.{dataset}"). Snakemake reruns a job when these
    values change, as DVC does for the same ``params:`` keys (compared by genpipe.pipeline.dagcheck).
    """

    def values(wildcards):
        out = {}
        for key in keys:
            dotted = key.format(**wildcards)
            node = config
            for part in dotted.split("."):
                node = node[part]
            out[dotted] = node
        return out

    values.__name__ = f"params_{keys[0].split('.')[0]}"
    return values


def record_in_dvc():
    """Record in dvc.lock what this run produced, so `dvc status` agrees with Snakemake."""
    dvcsync.commit(since=RUN_STARTED, root=".")
