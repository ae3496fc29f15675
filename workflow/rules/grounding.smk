# Grounded detection (issue 15): a small Grounding DINO on frozen scene-ViT tokens and frozen CLIP text states.
GROUNDING_BACKBONES = ["dino", "random", "supervised"]  # genpipe.grounding.backbones.BACKBONES (dvc.yaml: foreach)
GROUNDING_RUN = ["model.safetensors", "config.json", "backbone.safetensors", "backbone.json"]
GROUNDING_TEXT = ["results/train_clip/plain/model.safetensors", "results/train_clip/plain/open_clip_config.json"]


wildcard_constraints:
    grounding_backbone="|".join(GROUNDING_BACKBONES),


rule train_grounding:
    """The detector head on one frozen backbone (dino, random, supervised) and the frozen CLIP text tower; the ablation's rows."""
    input:
        code=CODE["train_grounding"],
        scenes="results/make_scenes/train.npz",
        dino=expand("results/train_dino/scenes/{f}", f=DINO_MODEL),
        clip=GROUNDING_TEXT,
    output:
        multiext("results/train_grounding/{grounding_backbone}/", *GROUNDING_RUN, "curves.tsv", "metrics.json"),
    params:
        tracked=stage_params("grounding", "dino.seed", "make_scenes.held_out"),
    # one thread: its bytes depend on the thread count; the three runs share the 2 cores.
    # mem_mb: 1.5 x the 2.76 GB peak RSS (supervised) + 256; runtime: 2 x its 17.9 min wall on shared cores + 5 (docs/grounding.md)
    threads: 1
    resources:
        mem_mb=4400,
        runtime=41,
    conda:
        "../../environment.yml"
    log:
        "logs/train_grounding/{grounding_backbone}.log",
    shell:
        logged("python scripts/train_grounding.py --backbone {wildcards.grounding_backbone} --scenes results/make_scenes/train.npz"
               " --dino results/train_dino/scenes --clip results/train_clip/plain --out results/train_grounding/{wildcards.grounding_backbone}")


rule evaluate_grounding:
    """mAP per query kind, held-out pairs and absent-query false positives of each backbone's detector; detections.png."""
    input:
        code=CODE["evaluate_grounding"],
        scenes="results/make_scenes/test.npz",
        runs=expand("results/train_grounding/{b}/{f}", b=GROUNDING_BACKBONES, f=GROUNDING_RUN + ["metrics.json"]),
        clip=GROUNDING_TEXT,
    output:
        "results/evaluate_grounding/metrics.json",
        report("results/evaluate_grounding/detections.png", caption="../report/evaluate_grounding.rst", category="DINO"),
    params:
        tracked=stage_params("evaluate_grounding", "make_scenes.held_out"),
    # mem_mb: 1.5 x its 1.61 GB peak RSS + 256; runtime: 2 x its 2.5 min wall + 5
    threads: 1
    resources:
        mem_mb=2670,
        runtime=10,
    conda:
        "../../environment.yml"
    log:
        "logs/evaluate_grounding/evaluate_grounding.log",
    shell:
        logged("python scripts/evaluate_grounding.py --scenes results/make_scenes/test.npz --runs results/train_grounding"
               " --clip results/train_clip/plain --out results/evaluate_grounding")
