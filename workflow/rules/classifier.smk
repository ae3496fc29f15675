rule train_classifier:
    """Train and evaluate the ResNet-(6n+2) classifier of one dataset."""
    input:
        code=CODE["train_classifier"],
        data=raw_files,
    output:
        model="results/train_classifier/{dataset}/model.safetensors",
        config="results/train_classifier/{dataset}/config.json",
        predictions="results/train_classifier/{dataset}/predictions.npz",
        curves="results/train_classifier/{dataset}/curves.tsv",
        metrics="results/train_classifier/{dataset}/metrics.json",
    params:
        tracked=stage_params("train_classifier.{dataset}"),
    threads: workflow.cores
    resources:
        mem_mb=2816,
        runtime=20,
    conda:
        "../../environment.yml"
    log:
        "logs/train_classifier/{dataset}.log",
    shell:
        logged("python scripts/train_classifier.py --dataset {wildcards.dataset} --data data/raw/{wildcards.dataset}"
               " --out results/train_classifier/{wildcards.dataset}")
