# Scoring of generated images, shared by every generator of the project (VAE, DDPM; issue 19: two feature spaces).
SCORING_KEYS = ["inception_weights", "kid_subset_size", "kid_subsets", "same_n", "prdc_n", "prdc_k", "seed"]


rule reference_stats:
    """Real features of one dataset (test split + training subset) in its classifier's and its DINO ViT's
    feature spaces, and the second judge (a linear probe on the DINO features)."""
    input:
        code=CODE["reference_stats"],
        data=raw_files,
        classifier=multiext("results/train_classifier/{dataset}/", "model.safetensors", "config.json"),
        dino=multiext("results/train_dino/{dataset}/", "model.safetensors", "config.json"),
        judge=lambda wc: judge_files(wc.dataset),
    output:
        features="results/reference_stats/{dataset}/features.safetensors",
        metrics="results/reference_stats/{dataset}/metrics.json",
    params:
        tracked=stage_params(*(f"evaluate_samples.{k}" for k in ("floor_n", "inception_weights", "kid_subset_size", "kid_subsets", "seed")),
                             "evaluate_dino.knn_k", "evaluate_dino.knn_temperature"),
        judge=lambda wc: JUDGE_DIRS[wc.dataset],
    resources:
        mem_mb=2048,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/reference_stats/{dataset}.log",
    shell:
        logged("python scripts/reference_stats.py --dataset {wildcards.dataset} --data data/raw/{wildcards.dataset}"
               " --classifier results/train_classifier/{wildcards.dataset} --dino results/train_dino/{wildcards.dataset}"
               " --judge {params.judge} --out results/reference_stats/{wildcards.dataset}")


rule evaluate_samples:
    """FID/KID and precision/recall/density/coverage in two spaces, the floors, and generation accuracy by two judges."""
    input:
        code=CODE["evaluate_samples"],
        samples=generator_samples,
        classifier=generator_classifier,
        dino=generator_dino,
        judge=lambda wc: judge_files(generator_dataset(wc)),
        reference=generator_reference,
    output:
        "results/evaluate_samples/{generator}/metrics.json",
    params:
        tracked=stage_params(*(f"evaluate_samples.{k}" for k in SCORING_KEYS)),
        dataset=generator_dataset,
        judge=lambda wc: JUDGE_DIRS[generator_dataset(wc)],
    resources:
        mem_mb=2048,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/evaluate_samples/{generator}.log",
    shell:
        logged("python scripts/evaluate_samples.py --samples {input.samples} --classifier results/train_classifier/{params.dataset}"
               " --dino results/train_dino/{params.dataset} --judge {params.judge} --reference results/reference_stats/{params.dataset} --out results/evaluate_samples/{wildcards.generator}")
