rule figures:
    """Training curves, test confusion matrix and real samples per class of one dataset."""
    input:
        code=CODE["figures"],
        data=raw_files,
        curves="results/train_classifier/{dataset}/curves.tsv",
        predictions="results/train_classifier/{dataset}/predictions.npz",
    output:
        curves="results/figures/{dataset}/curves.png",
        confusion="results/figures/{dataset}/confusion.png",
        samples="results/figures/{dataset}/samples.png",
    params:
        tracked=stage_params("figures"),
    conda:
        "../../environment.yml"
    log:
        "logs/figures/{dataset}.log",
    shell:
        logged("python scripts/figures.py --dataset {wildcards.dataset} --data data/raw/{wildcards.dataset}"
               " --classifier results/train_classifier/{wildcards.dataset} --out results/figures/{wildcards.dataset}")
