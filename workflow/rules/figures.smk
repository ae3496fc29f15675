rule figures:
    """Training curves, test confusion matrix and real samples per class of one dataset."""
    input:
        code=CODE["figures"],
        data=raw_files,
        curves="results/train_classifier/{dataset}/curves.tsv",
        predictions="results/train_classifier/{dataset}/predictions.npz",
    output:
        curves=report("results/figures/{dataset}/curves.png", caption="../report/figures.rst", category="Classifiers", subcategory="{dataset}"),
        confusion=report("results/figures/{dataset}/confusion.png", caption="../report/figures.rst", category="Classifiers", subcategory="{dataset}"),
        samples=report("results/figures/{dataset}/samples.png", caption="../report/figures.rst", category="Classifiers", subcategory="{dataset}"),
    params:
        tracked=stage_params("figures"),
    resources:
        mem_mb=1792,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/figures/{dataset}.log",
    shell:
        logged("python scripts/figures.py --dataset {wildcards.dataset} --data data/raw/{wildcards.dataset}"
               " --classifier results/train_classifier/{wildcards.dataset} --out results/figures/{wildcards.dataset}")
