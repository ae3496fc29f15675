# DINO self-distillation on Fashion-MNIST, MNIST and the scenes, and its evaluation (issue 15); the MNIST run is
# evaluate_samples' second feature space (issue 19).
DINO_RUNS = ["fashion_mnist", "mnist", "scenes"]  # params.yaml: dino.runs (dvc.yaml: foreach)
DINO_SHARED_KEYS = ["vit", "head", "local_crops", "global_scale", "local_scale", "jitter", "student_temp", "teacher_temp",
                    "warmup_teacher_temp", "teacher_temp_warmup_epochs", "center_momentum", "momentum", "lr", "min_lr",
                    "warmup_epochs", "weight_decay", "grad_clip", "batch_size", "seed", "log_every", "checkpoint_every"]
# what each run reads: the dataset's training images file (never its labels), the train scenes
DINO_SOURCE = {"fashion_mnist": raw_paths("fashion_mnist")[0], "mnist": raw_paths("mnist")[0], "scenes": "results/make_scenes/train.npz"}
DINO_EVALUATED = ["fashion_mnist", "scenes"]  # the runs evaluate_dino judges
DINO_MODEL = ["model.safetensors", "config.json"]


wildcard_constraints:
    dino_run="|".join(DINO_RUNS),


rule train_dino:
    """DINO (student + EMA teacher ViTs, multi-crop) on one image set without labels; resumable from checkpoints/train_dino/."""
    input:
        code=CODE["train_dino"],
        data=lambda wc: DINO_SOURCE[wc.dino_run],
    output:
        multiext("results/train_dino/{dino_run}/", *DINO_MODEL, "curves.tsv", "metrics.json"),
    params:
        tracked=stage_params("dino.runs.{dino_run}", *(f"dino.{k}" for k in DINO_SHARED_KEYS)),
    # one thread: its bytes depend on the thread count; the two runs train side by side on the 2 cores.
    # mem_mb: 1.5 x the 5.6 GB peak RSS of the 3-job run (train_dino x 2, evaluate_dino; not attributed per job) + 256; runtime: 2 x 27 min (fashion_mnist on shared cores) + 5
    threads: 1
    resources:
        mem_mb=8704,
        runtime=60,
    conda:
        "../../environment.yml"
    log:
        "logs/train_dino/{dino_run}.log",
    shell:
        logged("python scripts/train_dino.py --run {wildcards.dino_run} --source {input.data} --out results/train_dino/{wildcards.dino_run}")


rule evaluate_dino:
    """k-NN / linear probe vs raw pixels, random and supervised ViT; attention Jaccard on the test scenes; attention.png."""
    input:
        code=CODE["evaluate_dino"],
        data=raw_paths("fashion_mnist"),
        scenes="results/make_scenes/test.npz",
        dino=expand("results/train_dino/{run}/{f}", run=DINO_EVALUATED, f=DINO_MODEL + ["metrics.json"]),
        vit=["results/train_vit/model.safetensors", "results/train_vit/config.json"],
    output:
        "results/evaluate_dino/metrics.json",
        report("results/evaluate_dino/attention.png", caption="../report/evaluate_dino.rst", category="DINO"),
    params:
        tracked=stage_params("evaluate_dino", "dino.seed"),
    threads: 1
    resources:
        mem_mb=8704,
        runtime=15,
    conda:
        "../../environment.yml"
    log:
        "logs/evaluate_dino/evaluate_dino.log",
    shell:
        logged("python scripts/evaluate_dino.py --data data/raw/fashion_mnist --scenes results/make_scenes --dino results/train_dino"
               " --vit results/train_vit --out results/evaluate_dino")
