# Scoring of generated images, shared by every generator of the project (VAE now, DDPM later).


rule reference_stats:
    """Real features of one dataset (test split + training subset) in its classifier's feature space."""
    input:
        code=CODE["reference_stats"],
        data=raw_files,
        classifier=multiext("results/train_classifier/{dataset}/", "model.safetensors", "config.json"),
    output:
        features="results/reference_stats/{dataset}/features.safetensors",
        metrics="results/reference_stats/{dataset}/metrics.json",
    params:
        tracked=stage_params(*(f"evaluate_samples.{k}" for k in ("floor_n", "inception_weights", "kid_subset_size", "kid_subsets", "seed"))),
    resources:
        mem_mb=2048,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/reference_stats/{dataset}.log",
    shell:
        logged("python scripts/reference_stats.py --dataset {wildcards.dataset} --data data/raw/{wildcards.dataset}"
               " --classifier results/train_classifier/{wildcards.dataset} --out results/reference_stats/{wildcards.dataset}")


rule evaluate_samples:
    """FID/KID against the test split, the real-vs-real floor and generation accuracy of one sample set."""
    input:
        code=CODE["evaluate_samples"],
        samples=generator_samples,
        classifier=generator_classifier,
        reference=generator_reference,
    output:
        "results/evaluate_samples/{generator}/metrics.json",
    params:
        tracked=stage_params(*(f"evaluate_samples.{k}" for k in ("inception_weights", "kid_subset_size", "kid_subsets", "same_n", "seed"))),
        dataset=generator_dataset,
    resources:
        mem_mb=2048,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/evaluate_samples/{generator}.log",
    shell:
        logged("python scripts/evaluate_samples.py --samples {input.samples} --classifier results/train_classifier/{params.dataset}"
               " --reference results/reference_stats/{params.dataset} --out results/evaluate_samples/{wildcards.generator}")
