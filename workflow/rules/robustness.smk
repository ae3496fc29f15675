# Adversarial robustness (issue 16): FGSM and PGD (L∞) on the Fashion-MNIST ResNet and the supervised
# ViT, budget curves and the transfer matrix (attack_classifiers). attack_clip / defend_clip: not yet.


rule attack_classifiers:
    """FGSM and PGD accuracy versus epsilon for the ResNet and the ViT, and the transfer matrix between them."""
    input:
        code=CODE["attack_classifiers"],
        data=raw_paths("fashion_mnist"),
        resnet=multiext("results/train_classifier/fashion_mnist/", "model.safetensors", "config.json", "predictions.npz", "metrics.json"),
        vit=multiext("results/train_vit/", "model.safetensors", "config.json", "predictions.npz", "metrics.json"),
    output:
        multiext("results/attack_classifiers/", "curves.tsv", "metrics.json"),
        report(
            multiext("results/attack_classifiers/", "curves.png", "transfer.png", "examples.png"),
            caption="../report/attack_classifiers.rst",
            category="Adversarial robustness",
        ),
    params:
        tracked=stage_params("attack"),
    # one thread: its bytes depend on the thread count, like train_vit's
    threads: 1
    # peak RSS 1,688 MB; 6.4 min wall (5.9 CPU-minutes) on one thread beside other jobs (docs/robustness.md)
    resources:
        mem_mb=2816,
        runtime=18,
    conda:
        "../../environment.yml"
    log:
        "logs/attack_classifiers/attack_classifiers.log",
    shell:
        logged("python scripts/attack_classifiers.py --model resnet=results/train_classifier/fashion_mnist --model vit=results/train_vit"
               " --data data/raw/fashion_mnist --out results/attack_classifiers")
