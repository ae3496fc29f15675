# CLIP trained with open_clip on the scenes, with and without hard negatives (issue 13).
# An open_clip checkpoint named in evaluate_clip.pretrained is scored on the same benchmark by
# evaluate_clip_pretrained, which always runs (writing "not configured" when the param is null), so
# both runners have the same fixed DAG whatever the param says.
CLIP_VARIANTS = ["plain", "hardneg"]  # params.yaml: train_clip.variants (dvc.yaml: foreach)
CLIP_TRAIN_KEYS = ["model", "batch_size", "epochs", "lr", "weight_decay", "warmup_steps", "n_train", "n_val", "precision", "seed"]
CLIP_MODEL = ["model.safetensors", "open_clip_config.json"]


wildcard_constraints:
    clip_variant="|".join(CLIP_VARIANTS),


rule train_clip:
    """open_clip's CLIP on (scene, random-template caption) pairs; hardneg adds NegCLIP text negatives."""
    input:
        code=CODE["train_clip"],
        scenes=multiext("results/make_scenes/", "train.npz", "val.npz"),
    output:
        multiext("results/train_clip/{clip_variant}/", *CLIP_MODEL, "curves.tsv", "metrics.json"),
    params:
        tracked=stage_params("train_clip.variants.{clip_variant}", *(f"train_clip.{k}" for k in CLIP_TRAIN_KEYS), "make_scenes.templates"),
    threads: 1  # the two variants train side by side on two cores
    # the longest jobs after make_scenes (~9-12 min each): started first, the parser fills in beside them
    priority: 10
    # mem_mb: 1.5 x peak RSS 3,065 MB + 256 (ResNet tower, bf16, sampled through a whole default run); runtime: 2 x 12 min + 5
    resources:
        mem_mb=4864,
        runtime=29,
    conda:
        "../../environment.yml"
    log:
        "logs/train_clip/{clip_variant}.log",
    shell:
        logged("python scripts/train_clip.py --variant {wildcards.clip_variant} --scenes results/make_scenes"
               " --out results/train_clip/{wildcards.clip_variant}")


rule evaluate_clip:
    """Retrieval, zero-shot digit/colour and binding accuracy of one variant on the test scenes."""
    input:
        code=CODE["evaluate_clip"],
        model=multiext("results/train_clip/{clip_variant}/", *CLIP_MODEL),
        scenes="results/make_scenes/test.npz",
    output:
        "results/evaluate_clip/{clip_variant}/metrics.json",
        report(multiext("results/evaluate_clip/{clip_variant}/", "similarity.png", "retrieval.png"), caption="../report/evaluate_clip.rst", category="CLIP", subcategory="{clip_variant}"),
    params:
        tracked=stage_params("evaluate_clip.n_retrieval", "evaluate_clip.similarity_k", "evaluate_clip.batch_size",
                             "make_scenes.templates", "make_scenes.held_out"),
    threads: 1
    resources:
        mem_mb=2304,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/evaluate_clip/{clip_variant}.log",
    shell:
        logged("python scripts/evaluate_clip.py --variant {wildcards.clip_variant} --model results/train_clip/{wildcards.clip_variant}"
               " --scenes results/make_scenes --out results/evaluate_clip/{wildcards.clip_variant}")


rule evaluate_clip_pretrained:
    """The same benchmark for the open_clip checkpoint in evaluate_clip.pretrained (null: says so)."""
    input:
        code=CODE["evaluate_clip_pretrained"],
        scenes="results/make_scenes/test.npz",
    output:
        "results/evaluate_clip_pretrained/metrics.json",
    params:
        tracked=stage_params("evaluate_clip.pretrained", "evaluate_clip.n_retrieval", "evaluate_clip.batch_size",
                             "make_scenes.templates", "make_scenes.held_out"),
    threads: 1
    resources:
        mem_mb=1536,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/evaluate_clip_pretrained/evaluate_clip_pretrained.log",
    shell:
        logged("python scripts/evaluate_clip_pretrained.py --scenes results/make_scenes --out results/evaluate_clip_pretrained")


rule compare_clip:
    """Plain vs hard negatives side by side: table, binding figure, targets and the observation."""
    input:
        code=CODE["compare_clip"],
        train=expand("results/train_clip/{v}/metrics.json", v=CLIP_VARIANTS),
        evals=expand("results/evaluate_clip/{v}/metrics.json", v=CLIP_VARIANTS),
        pretrained="results/evaluate_clip_pretrained/metrics.json",
    output:
        report(multiext("results/compare_clip/", "table.tsv", "binding.png"), caption="../report/compare_clip.rst", category="CLIP"),
        "results/compare_clip/metrics.json",
    threads: 1
    resources:
        mem_mb=1536,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/compare_clip/compare_clip.log",
    shell:
        logged("python scripts/compare_clip.py --train results/train_clip --evals results/evaluate_clip"
               " --pretrained results/evaluate_clip_pretrained --out results/compare_clip")
