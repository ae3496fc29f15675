# Class-conditional DDPM on MNIST: training, three samplers, and their comparison (issue 3).
# The samples are scored by evaluate_samples (rules/evaluate.smk) as generators ddpm_<sampler>
# (conditional, guided) and ddpm_<sampler>_uncond.
MNIST = raw_paths("mnist")
SAMPLE_FILES = ["samples.npz", "unconditional.npz", "metrics.json"]
SAMPLE_FIGURES = ["grid.png", "grid_unconditional.png", "trajectory.png"]


rule train_ddpm:
    """Our U-Net, epsilon-prediction, EMA; resumable from checkpoints/train_ddpm/ (not an output)."""
    input:
        code=CODE["train_ddpm"],
        data=MNIST,
    output:
        multiext("results/train_ddpm/", "model.safetensors", "config.json", "curves.tsv", "metrics.json"),
    params:
        tracked=stage_params("train_ddpm"),
    threads: 1  # a 2-thread job waits until both cores are free at once, which 1-thread jobs ending at different times can delay to the end
    priority: 10  # the longest chain: train_ddpm -> sample_ddpm (ddim, 10,000 samples): started first
    resources:
        mem_mb=2816,
        runtime=44,
    conda:
        "../../environment.yml"
    log:
        "logs/train_ddpm/train_ddpm.log",
    shell:
        logged("python scripts/train_ddpm.py --data data/raw/mnist --out results/train_ddpm")


rule sample_ddpm:
    """Guided conditional and unconditional samples of one sampler, grids, trajectory and timing."""
    input:
        code=CODE["sample_ddpm"],
        model=multiext("results/train_ddpm/", "model.safetensors", "config.json"),
    output:
        multiext("results/sample_ddpm/{sampler}/", *SAMPLE_FILES),
        report(multiext("results/sample_ddpm/{sampler}/", *SAMPLE_FIGURES), caption="../report/sample_ddpm.rst", category="DDPM", subcategory="{sampler}"),
    params:
        tracked=stage_params("sample_ddpm.samplers.{sampler}", *(f"sample_ddpm.{k}" for k in SAMPLE_KEYS)),
    threads: 1
    priority: 10
    resources:
        mem_mb=2304,
        runtime=63,
    conda:
        "../../environment.yml"
    log:
        "logs/sample_ddpm/{sampler}.log",
    shell:
        logged("python scripts/sample_ddpm.py --sampler {wildcards.sampler} --model results/train_ddpm"
               " --out results/sample_ddpm/{wildcards.sampler}")


rule compare_samplers:
    """Same-N FID, generation accuracy and time per sampler; loss curve and quality-vs-NFE figures."""
    input:
        code=CODE["compare_samplers"],
        curves="results/train_ddpm/curves.tsv",
        timing=expand("results/sample_ddpm/{sampler}/metrics.json", sampler=SAMPLERS),
        scores=expand("results/evaluate_samples/ddpm_{sampler}{kind}/metrics.json", sampler=SAMPLERS, kind=["", "_uncond"]),
    output:
        report(multiext("results/compare_samplers/", "samplers.tsv", "quality_vs_nfe.png", "loss.png"), caption="../report/compare_samplers.rst", category="DDPM"),
        "results/compare_samplers/metrics.json",
    resources:
        mem_mb=1792,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/compare_samplers/compare_samplers.log",
    shell:
        logged("python scripts/compare_samplers.py --train results/train_ddpm --samples results/sample_ddpm"
               " --scores results/evaluate_samples --out results/compare_samplers")
