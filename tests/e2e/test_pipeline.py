"""End to end: the real workflow, copied into a temporary git + DVC project with tiny params (e2e_project.py).

Runs Snakemake and DVC for real on real (cached or package-mirror) MNIST and Fashion-MNIST.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import yaml

from e2e_project import sh
from genpipe.pipeline.dagcheck import dvc_steps
from genpipe.pipeline.io import sha256_file

pytestmark = pytest.mark.e2e


def set_param(project: Path, dotted: str, value) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    node = params
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def out_mtimes(project: Path) -> dict[str, dict[str, int]]:
    return {s.instance: {o: (project / o).stat().st_mtime_ns for o in s.outs if (project / o).exists()} for s in dvc_steps(project)}


def changed(before, after) -> set[str]:
    return {stage for stage in after if after[stage] != before.get(stage)}


def dvc_ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_snakemake_builds_real_results(project):
    for ds in ("mnist", "fashion_mnist"):
        m = json.loads((project / f"results/train_classifier/{ds}/metrics.json").read_text())
        # 2,000 training images, every split scored on eval_limit = 200 of them
        assert (m["train"]["n"], m["val"]["n"], m["test"]["n"]) == (200, 200, 200)
        for split in ("train", "val", "test"):
            assert 0.3 < m[split]["accuracy"] <= 1.0, (ds, split, m[split])  # chance is 0.1
            assert m[split]["accuracy"] == m[split]["f1_micro"]
            assert 0.0 < m[split]["f1_macro"] <= 1.0
        curves = (project / f"results/train_classifier/{ds}/curves.tsv").read_text().splitlines()
        assert curves[0].split("\t") == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"] and len(curves) == 4
        for fig in ("curves", "confusion", "samples"):
            img = mpimg.imread(project / f"results/figures/{ds}/{fig}.png")
            assert img.ndim == 3 and min(img.shape[:2]) > 150 and img.std() > 0.05, (ds, fig, img.shape)
    study = json.loads((project / "results/aggregate_norm_study/metrics.json").read_text())
    assert set(study["norm_study"]) == {"bn", "bin"} and set(study["small_batch"]) == {"bn-8", "bn-32", "gn-8", "gn-32"}
    assert 0.0 <= study["bin_gate_mean"] <= 1.0
    assert study["norm_study"]["bn"]["test"]["accuracy_std"] == 0.0  # one seed
    best = json.loads((project / "results/gradcam/metrics.json").read_text())
    assert best["model"] in {"bn-0", "bin-0"}
    for fig in ("aggregate_norm_study/accuracy.png", "aggregate_norm_study/val_curves.png", "aggregate_norm_study/small_batch.png",
                "aggregate_norm_study/bin_gates.png", "gradcam/gradcam.png"):
        img = mpimg.imread(project / "results" / fig)
        assert img.ndim == 3 and min(img.shape[:2]) > 150 and img.std() > 0.05, fig
    report = (project / "results/report/report.md").read_text()
    assert "**Winner:**" in report and "Batch-Instance" in report and f"`{best['model']}`" in report
    acc = json.loads((project / "results/train_classifier/mnist/metrics.json").read_text())["test"]["accuracy"]
    assert f"| mnist | ResNet-8 (bn, width 8) | {100 * acc:.2f} % |" in report
    assert "../figures/fashion_mnist/confusion.png" in report


def test_snakemake_builds_the_ddpm_stages(project):
    res = project / "results"
    train = json.loads((res / "train_ddpm/metrics.json").read_text())
    assert train["steps"] == 8 and train["parameters"] > 1000 and 0 < train["final_loss"] < 1.5
    curve = (res / "train_ddpm/curves.tsv").read_text().splitlines()
    assert curve[0].split("\t") == ["step", "epoch", "loss"] and len(curve) == 1 + 4
    ck = project / "checkpoints/train_ddpm/state.pt"
    assert ck.is_file()  # resumable state, outside the declared outputs
    for s, nfe in (("ddpm", 50), ("ddim", 20), ("dpmpp", 10)):  # guidance: two network evaluations per step
        m = json.loads((res / f"sample_ddpm/{s}/metrics.json").read_text())
        assert m["nfe"] == nfe and m["n"] == 100 and m["seconds"] > 0 and m["precision"] == "bf16"  # params.yaml's default
        z = np.load(res / f"sample_ddpm/{s}/samples.npz")
        assert z["images"].shape == (100, 28, 28) and z["images"].dtype == np.uint8 and str(z["dataset"]) == "mnist"
        assert np.bincount(z["labels"]).tolist() == [10] * 10
        assert (np.load(res / f"sample_ddpm/{s}/unconditional.npz")["labels"] == -1).sum() == 70
        e = json.loads((res / f"evaluate_samples/ddpm_{s}/metrics.json").read_text())
        assert e["n_conditional"] == 100 and 0 <= e["generation_accuracy"] <= 1 and e["same_n"]["n"] == 70 and e["fid"] > 0
        assert set(e["generation_accuracy_per_class"]) == {str(c) for c in range(10)}
        for fig in ("grid", "grid_unconditional", "trajectory"):
            img = mpimg.imread(res / f"sample_ddpm/{s}/{fig}.png")
            assert img.ndim == 3 and min(img.shape[:2]) > 150 and img.std() > 0.02, (s, fig)
    cmp = json.loads((res / "compare_samplers/metrics.json").read_text())
    assert cmp["n_same"] == 70 and set(cmp["fid_ratio_to_ddpm"]) == {"ddim", "dpmpp"}
    assert cmp["speedup_over_ddpm"]["dpmpp"] > 1
    table = (res / "compare_samplers/samplers.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in table[1:]] == ["ddpm", "ddim", "dpmpp"]
    report = (res / "report/report.md").read_text()
    assert "### DDPM on MNIST" in report and f"{cmp['speedup_over_ddpm']['dpmpp']:.1f}" in report
    # issue 19: both feature spaces, both judges, the guidance sweep
    e = json.loads((res / "evaluate_samples/ddpm_dpmpp/metrics.json").read_text())
    assert e["prdc"]["n"] == 100 and e["dino"]["fid"] > 0 and 0 <= e["generation_accuracy_judge"] <= 1 and 0 <= e["judges_agree"] <= 1
    assert e["judge"] == "scene parser (train_scene_parser)"
    for space in ("classifier", "dino"):
        assert all(0 <= e["prdc"][space][k] <= 1 for k in ("precision", "recall", "coverage")), e["prdc"]
    g = json.loads((res / "evaluate_guidance/metrics.json").read_text())
    assert g["guidance"] == [1.0, 2.0] and g["n"] == {"ddim": 100, "dpmpp": 100}
    for s in ("ddim", "dpmpp"):
        z = np.load(res / f"sweep_guidance/{s}/samples/guidance_2.npz")
        assert z["images"].shape == (100, 28, 28) and np.bincount(z["labels"]).tolist() == [10] * 10
        assert g["best"][s]["fid"] in (1.0, 2.0) and g["samplers"][s]["1"]["fid"] > 0
    # the same seed, batch size and precision as sample_ddpm: the sweep at sample_ddpm's w repeats its samples exactly
    assert np.array_equal(np.load(res / "sweep_guidance/dpmpp/samples/guidance_2.npz")["images"], np.load(res / "sample_ddpm/dpmpp/samples.npz")["images"])
    assert (res / "evaluate_guidance/guidance.tsv").read_text().splitlines()[0].split("\t")[0] == "guidance"
    assert g["observations"][0] in report


def test_snakemake_builds_the_autoencoder_stages(project):
    res = project / "results"
    ae, vae = (json.loads((res / f"train_{k}/metrics.json").read_text())["test"] for k in ("ae", "vae"))
    assert ae["kl"] == 0 and vae["kl"] > 0 and ae["n"] == vae["n"] == 300
    assert vae["elbo"] == pytest.approx(-(vae["recon"] + vae["kl"]), abs=0.02)
    assert 0 < vae["recon"] < 28 * 28 * 0.7  # below an uninformed Bernoulli(0.5) per pixel
    for gen in ("vae", "ae_gaussian"):
        m = json.loads((res / f"evaluate_samples/{gen}/metrics.json").read_text())
        assert m["n"] == 300 and m["fid"] > 0 and m["generation_accuracy"] is None and m["floor"]["n"] == 300
        assert sum(m["predicted_class_histogram"]) == 300
    ref = json.loads((res / "reference_stats/fashion_mnist/metrics.json").read_text())
    assert ref["n_test"] == 10000 and ref["floor"]["fid"] >= 0
    for v in ("frozen", "finetune"):
        m = json.loads((res / f"train_latent_probe/{v}/metrics.json").read_text())
        assert m["test"]["n"] == 200 and 0.2 < m["test"]["accuracy"] <= 1.0, (v, m["test"])
    fgsm = json.loads((res / "attack_fgsm/metrics.json").read_text())
    assert fgsm["n"] == 200 and fgsm["eps"] == [0.0, 0.05, 0.2]
    for name in ("latent_frozen", "latent_finetune", "resnet"):
        acc = fgsm[name]["accuracy"]
        assert acc["0.0"] == pytest.approx(fgsm[name]["clean_accuracy"], abs=1e-6), name  # eps 0 = the clean test accuracy
        assert fgsm[name]["clean_n"] == fgsm["n"], name
        assert acc["0.0"] >= acc["0.05"] >= acc["0.2"], (name, acc)  # the budget curve cannot rise
        assert fgsm[name]["accuracy_single_step"]["0.0"] == acc["0.0"]
    curve = (res / "attack_fgsm/curves.tsv").read_text().splitlines()
    assert curve[0].split("\t") == ["eps"] + [c for n in ("latent_frozen", "latent_finetune", "resnet") for c in (n, f"{n}_step")]
    assert len(curve) == 4
    an = json.loads((res / "vae_anomaly/metrics.json").read_text())
    assert an["holdout_class"] == 8 and 0 < an["n_anomalous"] < an["n_test"] == 300
    assert 0.0 <= an["auc_neg_elbo"] <= 1.0 and 0.0 <= an["auc_recon"] <= 1.0
    assert len((res / "vae_anomaly/roc.tsv").read_text().splitlines()) == 102
    for fig in ("vae_figures/reconstructions.png", "vae_figures/traversal.png", "vae_figures/interpolation.png",
                "vae_figures/latent_pca.png", "vae_figures/loss_curves.png", "sample_vae/vae/samples.png",
                "attack_fgsm/curve.png", "attack_fgsm/examples.png", "vae_anomaly/roc.png", "vae_anomaly/scores.png"):
        img = mpimg.imread(res / fig)
        assert img.ndim == 3 and min(img.shape[:2]) > 150 and img.std() > 0.05, fig
    report = (res / "report/report.md").read_text()
    assert f"ROC-AUC {an['auc_neg_elbo']:.3f} by −ELBO" in report and "### Autoencoder and VAE" in report


def test_attacks_on_the_resnet_and_the_vit(project):
    res = project / "results"
    m = json.loads((res / "attack_classifiers/metrics.json").read_text())
    assert m["eps"] == [0.0, 0.05, 0.2] and m["n"] == {"fgsm": 200, "pgd": 100} and m["pgd"]["steps"] == 3
    for name, run in (("resnet", "train_classifier/fashion_mnist"), ("vit", "train_vit")):
        own = json.loads((res / run / "metrics.json").read_text())["test"]
        for a in ("fgsm", "pgd"):
            acc = m["models"][name][a]["accuracy"]
            assert acc["0.0"] >= acc["0.05"] >= acc["0.2"], (name, a, acc)  # a budget curve never rises
            assert m["clean_check"][name][a]["equal"], (name, a)
        assert m["models"][name]["fgsm"]["accuracy"]["0.0"] == pytest.approx(own["accuracy"], abs=1e-6), name  # all 200 scored images
        assert m["transfer"]["pgd"]["accuracy"][name][name] == m["models"][name]["pgd"]["accuracy_raw"]["0.05"]
    assert set(m["observation"]["transfers"]["pgd"]) == {"resnet_to_vit", "vit_to_resnet"}
    curve = (res / "attack_classifiers/curves.tsv").read_text().splitlines()
    assert curve[0].split("\t")[:3] == ["eps", "resnet_fgsm", "resnet_fgsm_raw"] and len(curve) == 4
    for fig in ("curves.png", "transfer.png", "examples.png"):
        img = mpimg.imread(res / "attack_classifiers" / fig)
        assert img.ndim == 3 and min(img.shape[:2]) > 150 and img.std() > 0.05, fig
    assert "### Adversarial robustness: ResNet vs ViT" in (res / "report/report.md").read_text()


def test_clip_attacked_and_defended(project):
    res = project / "results"
    m = json.loads((res / "attack_clip/metrics.json").read_text())
    d = json.loads((res / "defend_clip/metrics.json").read_text())
    own = json.loads((res / "evaluate_clip/plain/metrics.json").read_text())["all"]
    assert set(m["models"]) == {"plain", "tecoa", "prompt", "lora"} and m["defense_eps"] == d["eps"] == 0.05
    assert m["clean_check"]["equal"] and m["models"]["plain"]["clean_accuracy"] == own["digit_accuracy"]
    assert m["models"]["plain"]["clean_n"] == own["digit_accuracy_n"] == m["n"]["fgsm"] and m["n"]["pgd"] == 30
    for name, v in m["models"].items():
        for a in ("fgsm", "pgd"):
            acc = v[a]["accuracy"]
            assert acc["0.0"] >= acc["0.05"] >= acc["0.2"], (name, a, acc)
    # every defense had the same budget; what each trains, counted
    assert {s["images"] for s in d["defenses"].values()} == {48} and d["defenses"]["prompt"]["trainable_parameters"] == 3 * (64 * 64 - 56 * 56)
    assert d["defenses"]["lora"]["trainable_parameters"] < d["defenses"]["tecoa"]["trainable_parameters"]
    curves = (res / "defend_clip/curves.tsv").read_text().splitlines()
    assert curves[0].split("\t") == ["step"] + [f"{d}_{k}" for d in ("tecoa", "prompt", "lora") for k in ("adv_loss", "adv_train_accuracy")]
    assert [int(r.split("\t")[0]) for r in curves[1:]] == [1, 2, 3]  # log_every 1, 48 scenes in batches of 16
    for fig in ("curves.png", "examples.png"):
        img = mpimg.imread(res / "attack_clip" / fig)
        assert img.ndim == 3 and min(img.shape[:2]) > 150 and img.std() > 0.05, fig
    assert "### Adversarial robustness: CLIP's zero-shot classifier and three defenses" in (res / "report/report.md").read_text()


def test_dvc_agrees_after_snakemake(project):
    assert json.loads(sh("dvc status --json", project).strip() or "{}") == {}
    assert dvc_ran(sh("dvc repro", project)) == set()
    assert "Nothing to be done" in sh("snakemake -n", project)


def test_param_change_reruns_only_its_stage_and_descendants_under_snakemake(project):
    before = out_mtimes(project)
    set_param(project, "train_classifier.fashion_mnist.epochs", 4)
    sh("snakemake --cores 2", project)
    assert changed(before, out_mtimes(project)) == {
        "train_classifier@fashion_mnist", "figures@fashion_mnist", "reference_stats@fashion_mnist",  # and what reads the classifier:
        "evaluate_samples@vae", "evaluate_samples@ae_gaussian", "attack_fgsm", "attack_classifiers", "report"}
    assert json.loads(sh("dvc status --json", project).strip() or "{}") == {}


def test_param_change_reruns_only_its_stage_and_descendants_under_dvc(project):
    # train_vit: a classifier whose curves share DVC's loss / accuracy plots with the ResNets' and whose
    # readers are evaluate_dino, attack_classifiers, Fashion-MNIST's sample scores (it is their second judge) and the report
    # (the MNIST ResNet's seed, with 12 stages downstream, cost ~2 min here)
    sh("git add -A && git commit -qm 'state of the previous tests' && git checkout -q -b other-seed", project)
    set_param(project, "train_vit.seed", 1)
    judged = {"reference_stats@fashion_mnist", "evaluate_samples@vae", "evaluate_samples@ae_gaussian"}
    assert dvc_ran(sh("dvc repro", project)) == {"train_vit", "evaluate_dino", "attack_classifiers", "report", *judged}
    assert dvc_ran(sh("dvc repro", project)) == set()
    assert "Nothing to be done" in sh("snakemake -n", project)  # Snakemake catches up with DVC's run
    # the branch's metrics and curves compare with main's
    diff = json.loads(sh("dvc metrics diff main --json", project))
    vit = diff["results/train_vit/metrics.json"]
    assert vit["test.accuracy"]["old"] != vit["test.accuracy"]["new"] or vit["train.loss"]["old"] != vit["train.loss"]["new"]
    assert {"results/train_vit/metrics.json", "results/attack_classifiers/metrics.json", "results/evaluate_dino/metrics.json",
            "results/reference_stats/fashion_mnist/metrics.json"} <= set(diff)
    assert set(diff) <= {"results/train_vit/metrics.json", "results/attack_classifiers/metrics.json", "results/evaluate_dino/metrics.json",
                         "results/reference_stats/fashion_mnist/metrics.json", "results/evaluate_samples/vae/metrics.json",
                         "results/evaluate_samples/ae_gaussian/metrics.json"}
    plots = json.loads(sh("dvc plots diff main --json", project))["data"]
    for name, field in (("loss", "train_loss"), ("accuracy", "train_accuracy")):
        values = plots[name][0]["content"]["data"]["values"]
        # DVC labels each file by its path after the plot's common prefix ("train_vit/curves.tsv::train_loss")
        vit = [v for v in values if re.search(r"(^|/)train_vit/curves\.tsv::", v["filename::field"])]
        assert {v["rev"] for v in vit} == {"main", "workspace"}  # both curves, one per revision
        old = [v[field] for v in vit if v["rev"] == "main"]
        assert old and old != [v[field] for v in vit if v["rev"] == "workspace"]
        # the ResNets' curves, unchanged, are in the same plot
        assert any(re.search(r"(^|/)mnist/curves\.tsv::", v["filename::field"]) for v in values)


def test_adding_a_seed_runs_only_the_new_instances_and_what_reads_them(project):
    before = out_mtimes(project)
    set_param(project, "norm_study.seeds", [0, 1])
    sh("snakemake --cores 2", project)
    assert changed(before, out_mtimes(project)) == {"train_norm_study@bn-1", "train_norm_study@bin-1", "aggregate_norm_study", "gradcam", "report"}
    # the same through DVC's params-driven matrix, as an experiment
    out = sh("dvc exp run -S 'norm_study.seeds=[0,1,2]'", project)
    assert dvc_ran(out) == {"train_norm_study@bn-2", "train_norm_study@bin-2", "aggregate_norm_study", "gradcam", "report"}


def test_an_attack_param_reruns_only_the_attacks(project):
    # the attack section is read by the attacks alone: no model is retrained, no defense either (defend_clip has its own PGD)
    out = sh("dvc exp run -S attack.pgd.steps=4", project)
    assert dvc_ran(out) == {"attack_classifiers", "attack_clip", "report"}
    for stage in ("attack_classifiers", "attack_clip"):
        assert json.loads((project / f"results/{stage}/metrics.json").read_text())["pgd"]["steps"] == 4


def test_snakemake_trusts_outputs_after_dvc_checkout(project):
    # dvc checkout after deleting outputs: every restored file gets a fresh, arbitrary mtime.
    for s in dvc_steps(project):
        for o in s.outs:
            if not o.endswith((".json", ".tsv", ".md")):  # metrics, tables, report: git-tracked, not in the DVC cache
                path = project / o
                shutil.rmtree(path) if path.is_dir() else path.unlink()  # sweep_guidance's samples/ is a directory out
    sh("dvc checkout --quiet", project)
    dry = sh("snakemake -n", project)
    assert "Nothing to be done" in dry, dry[-3000:]
    # ...but a genuinely changed param is still rerun.
    set_param(project, "figures.samples_per_class", 3)
    dry = sh("snakemake -n", project)
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", dry, re.M))  # the "Job stats" table (the profile hides rule blocks)
    assert "figures" in jobs and "train_classifier" not in jobs, dry[-3000:]
    set_param(project, "figures.samples_per_class", 2)
    assert "Nothing to be done" in sh("snakemake -n", project)


def dry_run_jobs(output: str) -> dict[str, int]:
    """Snakemake's dry-run job table ("Job stats:"): {rule: count}, without the target rule and the total."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[0] not in ("all", "total")}


def test_editing_a_module_reruns_exactly_the_stages_that_import_it(project):
    module = project / "src/genpipe/classify/gradcam.py"  # imported by scripts/gradcam.py only
    original = module.read_text()
    module.write_text(original + "\n# an edit\n")
    try:
        assert dry_run_jobs(sh("snakemake -n", project)) == {"gradcam": 1, "report": 1}
        assert set(json.loads(sh("dvc status --json", project))) == {"gradcam"}
    finally:
        module.write_text(original)


def test_snakemake_builds_the_scene_stages(project):
    from genpipe.scenes.dataset import load_scenes

    res = project / "results"
    made = json.loads((res / "make_scenes/metrics.json").read_text())
    for split, n in (("train", 300), ("val", 60), ("test", 300), ("test_shifted", 300)):
        scenes = load_scenes(res / f"make_scenes/{split}.npz")
        assert len(scenes) == made["splits"][split]["n_scenes"] == n, split
        assert scenes.images.shape == (n, 64, 64, 3) and set(np.unique(scenes.n_objects)) <= {1, 2, 3}
        assert made["splits"][split]["sha256"] == sha256_file(res / f"make_scenes/{split}.npz")
    assert made["splits"]["train"]["held_out_objects"] == made["splits"]["val"]["held_out_objects"] == 0
    parser = json.loads((res / "evaluate_scene_parser/metrics.json").read_text())
    for block in ("test", "test_shifted"):
        assert parser[block]["objects"] > 300 and 0.0 <= parser[block]["object_accuracy"] <= 1.0, parser[block]
        assert 0.0 <= parser[block]["map_50"] <= 1.0
    for name in ("train_clip/plain", "train_clip/hardneg"):
        m = json.loads((res / f"{name}/metrics.json").read_text())
        assert m["steps"] == 4 and m["n_train"] == 64 and np.isfinite(m["final_train_loss"]), (name, m)
    assert json.loads((res / "train_clip/hardneg/metrics.json").read_text())["hard_negatives_per_batch"] > 0
    for v in ("plain", "hardneg"):
        e = json.loads((res / f"evaluate_clip/{v}/metrics.json").read_text())
        assert e["all"]["i2t_r1_n"] == 40 and 0.0 <= e["all"]["digit_accuracy"] <= 1.0 and e["all"]["binding_colour_n"] > 0, (v, e)
    assert json.loads((res / "evaluate_clip_pretrained/metrics.json").read_text())["configured"] is False
    cmp = json.loads((res / "compare_clip/metrics.json").read_text())
    assert "observation" in cmp and cmp["observation"]
    for fig in ("make_scenes/scenes.png", "evaluate_scene_parser/boxes.png", "evaluate_scene_parser/confusion.png",
                "evaluate_clip/plain/similarity.png", "evaluate_clip/hardneg/retrieval.png", "compare_clip/binding.png"):
        img = mpimg.imread(res / fig)
        assert img.ndim == 3 and min(img.shape[:2]) > 150 and img.std() > 0.02, fig
    report = (res / "report/report.md").read_text()
    assert "### Scenes" in report and "### Scene parser" in report and "### CLIP" in report


def test_snakemake_builds_the_vit_stage(project):
    res = project / "results/train_vit"
    m = json.loads((res / "metrics.json").read_text())
    resnet = json.loads((project / "results/train_classifier/fashion_mnist/metrics.json").read_text())
    assert {k for k in m if k in ("train", "val", "test")} == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        assert set(m[split]) == set(resnet[split])  # the classifier's metrics, so dvc metrics diff shows both rows alike
        assert m[split]["n"] == 200 and 0.3 < m[split]["accuracy"] <= 1.0, (split, m[split])  # tiny: 58 % test; chance 10 %
    curves = (res / "curves.tsv").read_text().splitlines()
    assert curves[0].split("\t") == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"] and len(curves) == 4
    report = (project / "results/report/report.md").read_text()
    assert f"| fashion_mnist | ViT (dim 32, depth 2, 2 heads, patch 7; 0.02 M parameters) | {100 * m['test']['accuracy']:.2f} % |" in report


def test_snakemake_builds_the_dino_stages(project):
    res = project / "results"
    for run, n, steps in (("fashion_mnist", 256, 8), ("mnist", 256, 8), ("scenes", 64, 2)):  # tiny: limit 256 / 64 images, batch 32, 1 epoch
        m = json.loads((res / f"train_dino/{run}/metrics.json").read_text())
        assert (m["images"], m["steps"], m["local_crops"]) == (n, steps, 2) and np.isfinite(m["final_loss"]), (run, m)
        assert 0.0 <= m["teacher_entropy"] <= m["log_prototypes"] + 1e-6 and isinstance(m["collapsed"], bool)
        rows = (res / f"train_dino/{run}/curves.tsv").read_text().splitlines()
        assert rows[0].split("\t")[:5] == ["step", "epoch", "loss", "teacher_entropy", "kl_uniform"] and len(rows) == 1 + steps // 2
    e = json.loads((res / "evaluate_dino/metrics.json").read_text())
    f = e["fashion_mnist"]
    assert (f["n_train"], f["n_test"]) == (1000, 200)
    for name in ("raw_pixels", "random_vit", "supervised_vit", "dino"):
        assert 0.1 < f[name]["knn"] <= 1.0 and 0.0 <= f[name]["linear"] <= 1.0, (name, f[name])  # chance 10 %
    assert f["raw_pixels"]["dim"] == 784 and f["dino"]["dim"] == 16
    a = e["attention"]
    assert a["n_scenes"] == 50
    for name in ("dino_scenes", "random_vit", "dino_fashion_mnist", "supervised_vit", "pixel_threshold"):
        s = a[name]
        assert 0.0 <= s["best_head_jaccard"] <= 1.0 and s["best_head_jaccard"] == max(s["per_head"]), (name, s)
        assert min(s["per_head"]) <= s["mean_over_heads"] <= s["best_head_jaccard"]
    img = mpimg.imread(res / "evaluate_dino/attention.png")
    assert img.ndim == 3 and min(img.shape[:2]) > 150 and img.std() > 0.02
    report = (res / "report/report.md").read_text()
    assert "### DINO: features and attention" in report and f"| {100 * f['dino']['knn']:.2f} % |" in report


def test_dvc_experiment_without_local_crops_reruns_only_dino_and_its_readers(project):
    # the question "what are local crops worth?" as one DVC experiment
    out = sh("dvc exp run -S dino.local_crops=0", project)
    # the grounding stages read the scenes' DINO backbone, and every sample score (and compare_samplers, which reads the DDPM's)
    # the datasets' DINO features: DVC runs them again too
    scores = {f"evaluate_samples@{g}" for g in ("vae", "ae_gaussian", *(f"ddpm_{s}{k}" for s in ("ddpm", "ddim", "dpmpp") for k in ("", "_uncond")))}
    assert dvc_ran(out) == {"train_dino@fashion_mnist", "train_dino@mnist", "train_dino@scenes", "evaluate_dino", "report", "train_grounding@dino",
                            "train_grounding@random", "train_grounding@supervised", "evaluate_grounding", "reference_stats@mnist",
                            "reference_stats@fashion_mnist", "evaluate_guidance", "compare_samplers", *scores}
    m = json.loads((project / "results/train_dino/fashion_mnist/metrics.json").read_text())
    assert m["local_crops"] == 0 and m["steps"] == 8
    # dvc metrics diff shows what they were worth: the evaluation's numbers against the committed run's
    diff = json.loads(sh("dvc metrics diff --json", project))
    assert diff["results/train_dino/fashion_mnist/metrics.json"]["local_crops"] == {"old": 2, "new": 0, "diff": -2}
    assert "results/evaluate_dino/metrics.json" in diff
    g = json.loads((project / "results/evaluate_grounding/metrics.json").read_text())["backbones"]
    assert set(g) == {"dino", "random", "supervised"} and g["dino"]["train"]["steps"] == 4


def test_snakemake_builds_the_grounding_stages(project):
    res = project / "results"
    for b in ("dino", "random", "supervised"):  # tiny: 64 scenes x 2 queries, batch 16, 1 epoch
        m = json.loads((res / f"train_grounding/{b}/metrics.json").read_text())
        assert (m["backbone"], m["scenes"], m["pairs_seen"], m["steps"]) == (b, 64, 128, 4) and m["threads"] >= 1, m
        assert np.isfinite(m["final_loss"]) and 0 <= m["final_giou"] <= 2 and m["peak_rss_mb"] > 0
        assert ("supervised" in m) == (b == "supervised")
        rows = (res / f"train_grounding/{b}/curves.tsv").read_text().splitlines()
        assert rows[0].split("\t")[:5] == ["step", "epoch", "match", "l1", "giou"] and len(rows) == 1 + 2
        assert json.loads((res / f"train_grounding/{b}/backbone.json").read_text())["patch_size"] == 16  # the tiny DINO's shape
    e = json.loads((res / "evaluate_grounding/metrics.json").read_text())
    assert e["n_scenes"] == 50 and e["queries"] > 50 * 4 and set(e["backbones"]) == {"dino", "random", "supervised"}
    for b, s in e["backbones"].items():
        for kind in ("digit_colour", "colour", "digit", "position", "digit_colour_seen"):
            assert s[kind]["queries"] > 0 and 0.0 <= s[kind]["map"] <= s[kind]["map_50"] <= 1.0, (b, kind, s[kind])
        assert s["absent"]["queries"] == 50 * 4 and 0.0 <= s["absent"]["false_positive_share"] <= 1.0
    img = mpimg.imread(res / "evaluate_grounding/detections.png")
    assert img.ndim == 3 and min(img.shape[:2]) > 150 and img.std() > 0.02
    report = (res / "report/report.md").read_text()
    d = e["backbones"]["dino"]["digit_colour"]
    assert "### Grounded detection" in report and f"| {d['map_50']:.3f} / {d['map']:.3f} |" in report
