# The report takes a second: under a cluster profile it runs on the submit host rather than wait in a queue.
localrules:
    report,


rule report:
    """results/report/report.md from every stage's metrics and figures."""
    input:
        code=CODE["report"],
        metrics=expand("results/train_classifier/{dataset}/metrics.json", dataset=DATASET_NAMES),
        configs=expand("results/train_classifier/{dataset}/config.json", dataset=DATASET_NAMES),
        vit=["results/train_vit/metrics.json", "results/train_vit/config.json"],
        figures=expand("results/figures/{dataset}/{fig}.png", dataset=DATASET_NAMES, fig=["curves", "confusion", "samples"]),
        norm_study=multiext(
            "results/aggregate_norm_study/", "summary.md", "accuracy.png", "val_curves.png", "small_batch.png", "bin_gates.png"
        ),
        gradcam=["results/gradcam/gradcam.png", "results/gradcam/metrics.json"],
        references=expand("results/reference_stats/{dataset}/metrics.json", dataset=DATASET_NAMES),
        autoencoders=["results/train_ae/metrics.json", "results/train_vae/metrics.json", "results/train_vae/config.json"],
        samples=expand("results/evaluate_samples/{generator}/metrics.json", generator=GENERATORS),
        sample_figures=expand("results/sample_vae/{generator}/samples.png", generator=["vae", "ae_gaussian"]),
        vae_figures=multiext("results/vae_figures/", "reconstructions.png", "traversal.png", "interpolation.png", "latent_pca.png", "loss_curves.png"),
        probes=expand("results/train_latent_probe/{variant}/metrics.json", variant=PROBE_VARIANTS),
        fgsm=multiext("results/attack_fgsm/", "metrics.json", "curve.png", "examples.png"),
        anomaly=multiext("results/vae_anomaly/", "metrics.json", "roc.png", "scores.png"),
        ddpm=["results/train_ddpm/metrics.json", "results/train_ddpm/config.json"],
        samplers=multiext("results/compare_samplers/", "metrics.json", "samplers.tsv", "quality_vs_nfe.png", "loss.png"),
        sample_grids=expand("results/sample_ddpm/{sampler}/{fig}.png", sampler=SAMPLERS, fig=["grid", "grid_unconditional", "trajectory"]),
        guidance=multiext("results/evaluate_guidance/", "metrics.json", "guidance.png"),
        guidance_grids=expand("results/sweep_guidance/{sampler}/{f}", sampler=SWEEP_SAMPLERS, f=["grid.png", "metrics.json"]),
        scenes="results/make_scenes/metrics.json",
        scene_parser=multiext("results/train_scene_parser/", "metrics.json", "config.json"),
        scene_parser_eval=multiext("results/evaluate_scene_parser/", "metrics.json", "confusion.png", "boxes.png"),
        clip=multiext("results/compare_clip/", "metrics.json", "table.tsv", "binding.png"),
        clip_train=expand("results/train_clip/{v}/metrics.json", v=CLIP_VARIANTS),
        clip_figures=expand("results/evaluate_clip/{v}/{fig}.png", v=CLIP_VARIANTS, fig=["similarity", "retrieval"]),
        dino=multiext("results/evaluate_dino/", "metrics.json", "attention.png"),
        dino_train=expand("results/train_dino/{run}/metrics.json", run=DINO_RUNS),
        grounding=multiext("results/evaluate_grounding/", "metrics.json", "detections.png"),
        grounding_train=expand("results/train_grounding/{b}/metrics.json", b=GROUNDING_BACKBONES),
        robustness=multiext("results/attack_classifiers/", "metrics.json", "curves.png", "transfer.png", "examples.png"),
        clip_robustness=multiext("results/attack_clip/", "metrics.json", "curves.png", "examples.png"),
        defenses="results/defend_clip/metrics.json",
    output:
        report("results/report/report.md", caption="../report/report.rst", category="Report"),
    resources:
        mem_mb=1280,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/report/report.log",
    shell:
        logged("python scripts/report.py --out results/report/report.md")
