rule report:
    """results/report/report.md from every stage's metrics and figures."""
    input:
        code=CODE["report"],
        metrics=expand("results/train_classifier/{dataset}/metrics.json", dataset=DATASET_NAMES),
        configs=expand("results/train_classifier/{dataset}/config.json", dataset=DATASET_NAMES),
        figures=expand("results/figures/{dataset}/{fig}.png", dataset=DATASET_NAMES, fig=["curves", "confusion", "samples"]),
        norm_study=multiext(
            "results/aggregate_norm_study/", "summary.md", "accuracy.png", "val_curves.png", "small_batch.png", "bin_gates.png"
        ),
        gradcam=["results/gradcam/gradcam.png", "results/gradcam/metrics.json"],
    output:
        "results/report/report.md",
    conda:
        "../../environment.yml"
    log:
        "logs/report/report.log",
    shell:
        "python scripts/report.py --out results/report/report.md 2>&1 | tee {log}"
