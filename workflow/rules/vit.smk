rule train_vit:
    """Train the Vision Transformer supervised on Fashion-MNIST, score it like train_classifier; resumable per epoch from checkpoints/train_vit/ (not an output)."""
    input:
        code=CODE["train_vit"],
        data=raw_paths("fashion_mnist"),
    output:
        model="results/train_vit/model.safetensors",
        config="results/train_vit/config.json",
        predictions="results/train_vit/predictions.npz",
        curves="results/train_vit/curves.tsv",
        metrics="results/train_vit/metrics.json",
    params:
        tracked=stage_params("train_vit"),
    # one thread: its bytes depend on the thread count, and two threads beside another job on the
    # 2 cores ran 5x slower than one (oversubscribed), not faster
    threads: 1
    # peak RSS 1,841 MB; 18 CPU-minutes, 32 min wall on cores shared with other jobs (docs/vit.md)
    resources:
        mem_mb=3072,
        runtime=70,
    conda:
        "../../environment.yml"
    log:
        "logs/train_vit/train_vit.log",
    shell:
        logged("python scripts/train_vit.py --data data/raw/fashion_mnist --out results/train_vit")
