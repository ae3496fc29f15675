# Autoencoder and VAE on Fashion-MNIST: training, prior samples, latent-space figures, a latent
# classifier, FGSM attacks and anomaly detection (issue 4).
FASHION = raw_paths("fashion_mnist")
AE_FILES = ["model.safetensors", "config.json", "curves.tsv", "metrics.json"]


rule train_ae:
    """Convolutional autoencoder (deterministic code) on Fashion-MNIST."""
    input:
        code=CODE["train_ae"],
        data=FASHION,
    output:
        multiext("results/train_ae/", *AE_FILES),
    params:
        tracked=stage_params("train_ae"),
    threads: 1
    resources:
        mem_mb=2560,
        runtime=17,
    conda:
        "../../environment.yml"
    log:
        "logs/train_ae/train_ae.log",
    shell:
        logged("python scripts/train_ae.py --data data/raw/fashion_mnist --out results/train_ae")


rule train_vae:
    """VAE (reconstruction + beta * KL) on Fashion-MNIST."""
    input:
        code=CODE["train_vae"],
        data=FASHION,
    output:
        multiext("results/train_vae/", *AE_FILES),
    params:
        tracked=stage_params("train_vae"),
    threads: 1
    priority: 1  # on the critical path: train_vae -> train_latent_probe -> attack_fgsm
    resources:
        mem_mb=2304,
        runtime=12,
    conda:
        "../../environment.yml"
    log:
        "logs/train_vae/train_vae.log",
    shell:
        logged("python scripts/train_vae.py --data data/raw/fashion_mnist --out results/train_vae")


rule sample_vae:
    """Prior samples of the VAE and the AE-decoded-Gaussian baseline, as samples.npz."""
    input:
        code=CODE["sample_vae"],
        vae=multiext("results/train_vae/", "model.safetensors", "config.json"),
        ae=multiext("results/train_ae/", "model.safetensors", "config.json"),
    output:
        expand("results/sample_vae/{generator}/samples.npz", generator=["vae", "ae_gaussian"]),
        report(expand("results/sample_vae/{generator}/samples.png", generator=["vae", "ae_gaussian"]), caption="../report/sample_vae.rst", category="Autoencoder and VAE"),
    params:
        tracked=stage_params("sample_vae"),
    resources:
        mem_mb=1536,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/sample_vae/sample_vae.log",
    shell:
        logged("python scripts/sample_vae.py --vae results/train_vae --ae results/train_ae --out results/sample_vae")


rule vae_figures:
    """Reconstructions, latent traversals, interpolations, latent PCA and loss curves."""
    input:
        code=CODE["vae_figures"],
        data=FASHION,
        vae=multiext("results/train_vae/", "model.safetensors", "config.json", "curves.tsv"),
        ae=multiext("results/train_ae/", "model.safetensors", "config.json", "curves.tsv"),
    output:
        report(
            multiext("results/vae_figures/", "reconstructions.png", "traversal.png", "interpolation.png", "latent_pca.png", "loss_curves.png"),
            caption="../report/vae_figures.rst",
            category="Autoencoder and VAE",
        ),
    params:
        tracked=stage_params("vae_figures"),
    resources:
        mem_mb=2304,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/vae_figures/vae_figures.log",
    shell:
        logged("python scripts/vae_figures.py --ae results/train_ae --vae results/train_vae --data data/raw/fashion_mnist"
               " --out results/vae_figures")


rule train_latent_probe:
    """A classifier on the VAE encoder's mu: head only (frozen) or fine-tuned end to end."""
    input:
        code=CODE["train_latent_probe"],
        data=FASHION,
        vae=multiext("results/train_vae/", "model.safetensors", "config.json"),
    output:
        multiext("results/train_latent_probe/{variant}/", *AE_FILES),
    params:
        tracked=stage_params("train_latent_probe"),
    threads: 1
    priority: 1
    resources:
        mem_mb=2560,
        runtime=12,
    conda:
        "../../environment.yml"
    log:
        "logs/train_latent_probe/{variant}.log",
    shell:
        logged("python scripts/train_latent_probe.py --variant {wildcards.variant} --vae results/train_vae --data data/raw/fashion_mnist"
               " --out results/train_latent_probe/{wildcards.variant}")


rule attack_fgsm:
    """FGSM accuracy versus epsilon for both latent classifiers and the ResNet."""
    input:
        code=CODE["attack_fgsm"],
        data=FASHION,
        probes=expand("results/train_latent_probe/{variant}/{f}", variant=PROBE_VARIANTS, f=["model.safetensors", "config.json", "metrics.json"]),
        classifier=multiext("results/train_classifier/fashion_mnist/", "model.safetensors", "config.json", "metrics.json"),
    output:
        multiext("results/attack_fgsm/", "curves.tsv", "metrics.json"),
        report(multiext("results/attack_fgsm/", "curve.png", "examples.png"), caption="../report/attack_fgsm.rst", category="Autoencoder and VAE"),
    params:
        tracked=stage_params("attack_fgsm", "train_latent_probe.eval_limit"),
    resources:
        mem_mb=3840,
        runtime=11,
    conda:
        "../../environment.yml"
    log:
        "logs/attack_fgsm/attack_fgsm.log",
    shell:
        logged("python scripts/attack_fgsm.py --probe results/train_latent_probe --classifier results/train_classifier/fashion_mnist"
               " --data data/raw/fashion_mnist --out results/attack_fgsm")


rule vae_anomaly:
    """A VAE trained without one class; -ELBO and reconstruction NLL as anomaly scores (ROC-AUC)."""
    input:
        code=CODE["vae_anomaly"],
        data=FASHION,
    output:
        multiext("results/vae_anomaly/", *AE_FILES, "roc.tsv"),
        report(multiext("results/vae_anomaly/", "roc.png", "scores.png"), caption="../report/vae_anomaly.rst", category="Autoencoder and VAE"),
    params:
        tracked=stage_params("vae_anomaly"),
    threads: 1
    resources:
        mem_mb=2816,
        runtime=16,
    conda:
        "../../environment.yml"
    log:
        "logs/vae_anomaly/vae_anomaly.log",
    shell:
        logged("python scripts/vae_anomaly.py --data data/raw/fashion_mnist --out results/vae_anomaly")
