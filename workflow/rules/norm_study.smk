STUDY = config["norm_study"]
SWEEP = STUDY["small_batch"]
RUN_FILES = ["model.safetensors", "config.json", "predictions.npz", "curves.tsv", "metrics.json"]


rule train_norm_study:
    """One Fashion-MNIST classifier of the normalisation study (norm x seed)."""
    input:
        code=CODE["train_norm_study"],
        data=raw_paths("fashion_mnist"),
    output:
        multiext("results/train_norm_study/{norm}-{seed}/", *RUN_FILES),
    params:
        tracked=stage_params("norm_study.training"),
    threads: 1
    priority: 1  # before the short small-batch runs, which then fill the last gaps
    resources:
        mem_mb=2816,
        runtime=17,
    conda:
        "../../environment.yml"
    log:
        "logs/train_norm_study/{norm}-{seed}.log",
    shell:
        logged("python scripts/train_norm_study.py --norm {wildcards.norm} --seed {wildcards.seed} --data data/raw/fashion_mnist"
               " --out results/train_norm_study/{wildcards.norm}-{wildcards.seed}")


rule train_small_batch:
    """One run of the small-batch sweep (norm x batch size)."""
    input:
        code=CODE["train_small_batch"],
        data=raw_paths("fashion_mnist"),
    output:
        multiext("results/train_small_batch/{norm}-{batch}/", *RUN_FILES),
    params:
        tracked=stage_params(
            "norm_study.training",
            "norm_study.small_batch.train_limit",
            "norm_study.small_batch.epochs",
            "norm_study.small_batch.lr_at_64",
            "norm_study.small_batch.seed",
        ),
    threads: 1
    resources:
        mem_mb=2304,
        runtime=9,
    conda:
        "../../environment.yml"
    log:
        "logs/train_small_batch/{norm}-{batch}.log",
    shell:
        logged("python scripts/train_small_batch.py --norm {wildcards.norm} --batch-size {wildcards.batch} --data data/raw/fashion_mnist"
               " --out results/train_small_batch/{wildcards.norm}-{wildcards.batch}")


rule aggregate_norm_study:
    """Mean ± std table, figures and observations of the study."""
    input:
        code=CODE["aggregate_norm_study"],
        runs=expand("results/train_norm_study/{norm}-{seed}/{f}", norm=STUDY["norms"], seed=STUDY["seeds"], f=RUN_FILES),
        small_batch=expand("results/train_small_batch/{norm}-{batch}/{f}", norm=SWEEP["norms"], batch=SWEEP["batch_sizes"], f=RUN_FILES),
    output:
        report(
            multiext("results/aggregate_norm_study/", "table.csv", "accuracy.png", "val_curves.png", "small_batch.png", "bin_gates.png"),
            caption="../report/aggregate_norm_study.rst",
            category="Normalisation study",
        ),
        multiext("results/aggregate_norm_study/", "metrics.json", "summary.md"),
    params:
        tracked=stage_params("norm_study.norms", "norm_study.seeds", "norm_study.small_batch.norms", "norm_study.small_batch.batch_sizes"),
    priority: 1  # the study's result as soon as its runs are done, before unrelated longer jobs
    resources:
        mem_mb=1280,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/aggregate_norm_study/aggregate_norm_study.log",
    shell:
        logged("python scripts/aggregate_norm_study.py --runs results/train_norm_study --small-batch results/train_small_batch"
               " --out results/aggregate_norm_study")


rule gradcam:
    """Grad-CAM overlays for the study's best model."""
    input:
        code=CODE["gradcam"],
        data=raw_paths("fashion_mnist"),
        runs=expand("results/train_norm_study/{norm}-{seed}/{f}", norm=STUDY["norms"], seed=STUDY["seeds"], f=RUN_FILES),
    output:
        report("results/gradcam/gradcam.png", caption="../report/gradcam.rst", category="Normalisation study"),
        "results/gradcam/metrics.json",
    params:
        tracked=stage_params("gradcam.seed", "norm_study.norms", "norm_study.seeds"),
    resources:
        mem_mb=2048,
        runtime=7,
    conda:
        "../../environment.yml"
    log:
        "logs/gradcam/gradcam.log",
    shell:
        logged("python scripts/gradcam.py --runs results/train_norm_study --data data/raw/fashion_mnist --out results/gradcam")
