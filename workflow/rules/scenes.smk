# Colour scenes composed from real MNIST digits and the scene parser that judges images (issue 13).


rule make_scenes:
    """Train / val / test / test_shifted scenes of coloured MNIST digits with boxes, masks, captions."""
    input:
        code=CODE["make_scenes"],
        data=raw_paths("mnist"),
    output:
        multiext("results/make_scenes/", "train.npz", "val.npz", "test.npz", "test_shifted.npz", "metrics.json"),
        report("results/make_scenes/scenes.png", caption="../report/make_scenes.rst", category="Scenes"),
    params:
        tracked=stage_params("make_scenes"),
    threads: 1
    resources:
        mem_mb=3328,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/make_scenes/make_scenes.log",
    shell:
        logged("python scripts/make_scenes.py --data data/raw/mnist --out results/make_scenes")


rule train_scene_parser:
    """The scene parser: an anchor-free detector (centre heatmap, digit, colour, box) trained on the train scenes."""
    input:
        code=CODE["train_scene_parser"],
        scenes=multiext("results/make_scenes/", "train.npz", "val.npz"),
    output:
        multiext("results/train_scene_parser/", "model.safetensors", "config.json", "curves.tsv", "metrics.json"),
    params:
        tracked=stage_params("train_scene_parser"),
    threads: 1
    resources:
        mem_mb=4096,
        runtime=12,
    conda:
        "../../environment.yml"
    log:
        "logs/train_scene_parser/train_scene_parser.log",
    shell:
        logged("python scripts/train_scene_parser.py --scenes results/make_scenes --out results/train_scene_parser")


rule evaluate_scene_parser:
    """The parser on test, test_shifted, held-out pairs, blank and noise images; confusion and box figures."""
    input:
        code=CODE["evaluate_scene_parser"],
        scenes=multiext("results/make_scenes/", "test.npz", "test_shifted.npz"),
        model=multiext("results/train_scene_parser/", "model.safetensors", "config.json"),
    output:
        report(multiext("results/evaluate_scene_parser/", "per_class.tsv", "confusion.png", "boxes.png"), caption="../report/evaluate_scene_parser.rst", category="Scenes"),
        "results/evaluate_scene_parser/metrics.json",
    params:
        tracked=stage_params("evaluate_scene_parser", "make_scenes.held_out"),
    threads: 1
    resources:
        mem_mb=4352,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/evaluate_scene_parser/evaluate_scene_parser.log",
    shell:
        logged("python scripts/evaluate_scene_parser.py --scenes results/make_scenes --model results/train_scene_parser"
               " --out results/evaluate_scene_parser")
