# Adversarial robustness (issue 16): FGSM and PGD (L∞) on the Fashion-MNIST ResNet and the supervised
# ViT, budget curves and the transfer matrix (attack_classifiers); CLIP's zero-shot digit classifier
# defended three ways (defend_clip: TeCoA, visual prompt, LoRA) and attacked with the same grid (attack_clip).
DEFENSE_FILES = ["tecoa/model.safetensors", "tecoa/open_clip_config.json", "lora/model.safetensors", "lora/open_clip_config.json",
                 "lora/lora.safetensors", "prompt/prompt.safetensors"]


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


rule defend_clip:
    """TeCoA, a visual prompt and LoRA, each trained on PGD images of the one-object train scenes from the plain CLIP."""
    input:
        code=CODE["defend_clip"],
        clip=multiext("results/train_clip/plain/", *CLIP_MODEL),
        scenes="results/make_scenes/train.npz",
    output:
        expand("results/defend_clip/{f}", f=DEFENSE_FILES),
        multiext("results/defend_clip/", "curves.tsv", "metrics.json"),
    params:
        tracked=stage_params("defend_clip", "make_scenes.templates"),
    threads: 1
    # mem_mb: 1.5 x peak RSS 3,145 MB (over defend_clip and attack_clip) + 256; runtime: 2 x 3.2 min + margin (docs/robustness.md)
    resources:
        mem_mb=4992,
        runtime=12,
    conda:
        "../../environment.yml"
    log:
        "logs/defend_clip/defend_clip.log",
    shell:
        logged("python scripts/defend_clip.py --clip results/train_clip/plain --scenes results/make_scenes --out results/defend_clip")


rule attack_clip:
    """FGSM and PGD on CLIP's zero-shot digits, plain and each defense: budget curves, held-out pairs, the clean benchmark."""
    input:
        code=CODE["attack_clip"],
        clip=multiext("results/train_clip/plain/", *CLIP_MODEL),
        clip_metrics="results/evaluate_clip/plain/metrics.json",
        defenses=expand("results/defend_clip/{f}", f=DEFENSE_FILES),
        defense_metrics="results/defend_clip/metrics.json",
        scenes="results/make_scenes/test.npz",
    output:
        multiext("results/attack_clip/", "curves.tsv", "metrics.json"),
        report(multiext("results/attack_clip/", "curves.png", "examples.png"), caption="../report/attack_clip.rst", category="Adversarial robustness"),
    params:
        tracked=stage_params("attack", "attack_clip", "defend_clip.eps", "defend_clip.defenses", "evaluate_clip", "make_scenes.templates",
                             "make_scenes.held_out"),
    threads: 1
    # mem_mb as defend_clip's; runtime: 2 x 5.4 min + margin (docs/robustness.md)
    resources:
        mem_mb=4992,
        runtime=15,
    conda:
        "../../environment.yml"
    log:
        "logs/attack_clip/attack_clip.log",
    shell:
        logged("python scripts/attack_clip.py --clip results/train_clip/plain --clip-metrics results/evaluate_clip/plain/metrics.json"
               " --defenses results/defend_clip --scenes results/make_scenes --out results/attack_clip")
