import time
from pathlib import Path

from snakemake.exceptions import WorkflowError

from genpipe.pipeline import dvcsync
from genpipe.data.datasets import DATASETS, FILES
from genpipe.pipeline.params import ParamsError, load_yaml, validate

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
    "download": ["scripts/download.py", "src/genpipe/data/datasets.py", "src/genpipe/pipeline/io.py"],
    "train_classifier": [
        "scripts/train_classifier.py",
        "src/genpipe/classify/classifier.py",
        "src/genpipe/data/datasets.py",
        "src/genpipe/pipeline/io.py",
        "src/genpipe/classify/metrics.py",
        "src/genpipe/models/norms.py",
        "src/genpipe/models/resnet.py",
        "src/genpipe/classify/train.py",
    ],
    "figures": [
        "scripts/figures.py",
        "src/genpipe/data/datasets.py",
        "src/genpipe/pipeline/io.py",
        "src/genpipe/classify/metrics.py",
        "src/genpipe/pipeline/plots.py",
    ],
    "train_norm_study": [],  # filled below: same library code as train_classifier
    "train_small_batch": [],
    "aggregate_norm_study": [
        "scripts/aggregate_norm_study.py",
        "src/genpipe/pipeline/io.py",
        "src/genpipe/classify/norm_study.py",
        "src/genpipe/pipeline/plots.py",
    ],
    "gradcam": [
        "scripts/gradcam.py",
        "src/genpipe/classify/classifier.py",
        "src/genpipe/data/datasets.py",
        "src/genpipe/classify/gradcam.py",
        "src/genpipe/pipeline/io.py",
        "src/genpipe/classify/metrics.py",
        "src/genpipe/models/norms.py",
        "src/genpipe/models/resnet.py",
        "src/genpipe/pipeline/plots.py",
        "src/genpipe/classify/train.py",
    ],
    "report": ["scripts/report.py", "src/genpipe/data/datasets.py", "src/genpipe/pipeline/io.py", "src/genpipe/pipeline/report.py"],
}

# Library modules of the classifier, the autoencoder and the sample scorer, as their scripts import them.
_RESNET = ["src/genpipe/classify/classifier.py", "src/genpipe/data/datasets.py", "src/genpipe/pipeline/io.py", "src/genpipe/classify/metrics.py",
           "src/genpipe/models/norms.py", "src/genpipe/models/resnet.py", "src/genpipe/classify/train.py"]
_AE = ["src/genpipe/vae/autoencoder.py", "src/genpipe/data/datasets.py", "src/genpipe/pipeline/io.py", "src/genpipe/classify/metrics.py",
       "src/genpipe/models/vae.py", "src/genpipe/classify/train.py"]
_PLOTS = ["src/genpipe/pipeline/plots.py", "src/genpipe/vae/plots.py"]
_DDPM = ["src/genpipe/data/datasets.py", "src/genpipe/ddpm/diffusion.py", "src/genpipe/pipeline/io.py", "src/genpipe/classify/metrics.py",
         "src/genpipe/models/unet.py", "src/genpipe/classify/train.py"]
_SAMPLING = sorted(_DDPM + _PLOTS + ["src/genpipe/ddpm/stages.py", "src/genpipe/ddpm/plots.py", "src/genpipe/scoring/samples.py"])
for _step, _mods in {
    "reference_stats": _RESNET + ["src/genpipe/scoring/evaluation.py", "src/genpipe/scoring/samples.py"],
    "evaluate_samples": _RESNET + ["src/genpipe/scoring/evaluation.py", "src/genpipe/scoring/samples.py"],
    "train_ae": _AE,
    "train_vae": _AE,
    "sample_vae": _AE + _PLOTS + ["src/genpipe/scoring/samples.py"],
    "vae_figures": _AE + _PLOTS,
    "train_latent_probe": _AE + ["src/genpipe/vae/latent_probe.py"],
    "attack_fgsm": sorted(set(_RESNET + _AE + _PLOTS)) + ["src/genpipe/robustness/adversarial.py", "src/genpipe/vae/latent_probe.py"],
    "vae_anomaly": _AE + _PLOTS + ["src/genpipe/vae/anomaly.py"],
    "train_ddpm": _DDPM,
    "sample_ddpm": _SAMPLING,
    "compare_samplers": _SAMPLING,
}.items():
    CODE[_step] = [f"scripts/{_step}.py"] + _mods

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

for _step in ("train_norm_study", "train_small_batch"):
    CODE[_step] = [f"scripts/{_step}.py"] + CODE["train_classifier"][1:]


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
