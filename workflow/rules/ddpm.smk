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


# Classifier-free guidance sweep (issue 19): samples at each scale, scored in both feature spaces.
SWEEP_SAMPLERS = list(config["sweep_guidance"]["samplers"])  # params.yaml: sweep_guidance.samplers (dvc.yaml: foreach)


rule sweep_guidance:
    """The DDPM with one sampler at each guidance scale of sweep_guidance.guidance, from the same noise."""
    input:
        code=CODE["sweep_guidance"],
        model=multiext("results/train_ddpm/", "model.safetensors", "config.json"),
    output:
        directory("results/sweep_guidance/{sampler}/samples"),
        "results/sweep_guidance/{sampler}/metrics.json",
        report("results/sweep_guidance/{sampler}/grid.png", caption="../report/sweep_guidance.rst", category="DDPM", subcategory="guidance"),
    params:
        tracked=stage_params("sweep_guidance.guidance", "sweep_guidance.samplers.{sampler}", "sweep_guidance.seed",
                             "sample_ddpm.samplers.{sampler}", "sample_ddpm.batch_size", "sample_ddpm.precision"),
    threads: 1
    resources:
        mem_mb=2304,
        runtime=30,
    conda:
        "../../environment.yml"
    log:
        "logs/sweep_guidance/{sampler}.log",
    shell:
        logged("python scripts/sweep_guidance.py --sampler {wildcards.sampler} --model results/train_ddpm"
               " --out results/sweep_guidance/{wildcards.sampler}")


rule evaluate_guidance:
    """FID / Fréchet distance, precision / recall and accuracy by two judges per sampler and scale; the trade-off figure."""
    input:
        code=CODE["evaluate_guidance"],
        sweep=expand("results/sweep_guidance/{sampler}/{f}", sampler=SWEEP_SAMPLERS, f=["samples", "metrics.json"]),
        classifier=multiext("results/train_classifier/mnist/", "model.safetensors", "config.json"),
        dino=multiext("results/train_dino/mnist/", "model.safetensors", "config.json"),
        judge=judge_files("mnist"),
        reference=multiext("results/reference_stats/mnist/", "features.safetensors", "metrics.json"),
    output:
        "results/evaluate_guidance/metrics.json",
        "results/evaluate_guidance/guidance.tsv",
        report("results/evaluate_guidance/guidance.png", caption="../report/evaluate_guidance.rst", category="DDPM", subcategory="guidance"),
    params:
        tracked=stage_params("sweep_guidance.samplers", "sample_ddpm.guidance_scale", *(f"evaluate_samples.{k}" for k in SCORING_KEYS)),
    threads: 1
    resources:
        mem_mb=3072,
        runtime=20,
    conda:
        "../../environment.yml"
    log:
        "logs/evaluate_guidance/evaluate_guidance.log",
    shell:
        logged("python scripts/evaluate_guidance.py --sweep results/sweep_guidance --classifier results/train_classifier/mnist"
               " --dino results/train_dino/mnist --judge results/train_scene_parser --reference results/reference_stats/mnist"
               " --out results/evaluate_guidance")
