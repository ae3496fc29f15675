"""Snakemake and DVC describe the same DAG: names, commands, deps, outs and params."""

import pytest

from genpipe.pipeline.dagcheck import Step, compare, dvc_steps, snakemake_steps


@pytest.fixture(scope="module")
def steps():
    return dvc_steps(), snakemake_steps()


def test_workflow_and_dvc_yaml_agree(steps):
    dvc, smk = steps
    assert compare(dvc, smk) == []
    assert {s.name for s in dvc} == {
        "download", "train_classifier", "figures", "train_norm_study", "train_small_batch", "aggregate_norm_study", "gradcam", "report",
        "reference_stats", "evaluate_samples", "train_ae", "train_vae", "sample_vae", "vae_figures", "train_latent_probe",
        "attack_fgsm", "vae_anomaly", "train_ddpm", "sample_ddpm", "compare_samplers",
        "make_scenes", "train_scene_parser", "evaluate_scene_parser", "train_clip", "evaluate_clip", "evaluate_clip_pretrained",
        "compare_clip", "train_vit", "train_dino", "evaluate_dino", "attack_classifiers", "train_grounding", "evaluate_grounding",
        "defend_clip", "attack_clip", "sweep_guidance", "evaluate_guidance",
    }
    # evaluate_samples: vae, ae_gaussian and 3 samplers x (conditional, unconditional); CLIP: plain and hardneg; train_vit;
    # DINO: 3 runs + 1 evaluation; attack_classifiers; grounding: 3 backbones + 1 evaluation; defend_clip, attack_clip;
    # the guidance sweep: 2 samplers + 1 evaluation
    assert len(dvc) == 2 + 2 + 2 + 5 * 3 + 2 * 4 + 3 + 2 + (2 + 6) + 5 + 2 + 1 + 1 + 3 + 1 + 3 + 2 * 2 + 2 + 1 + 3 + 1 + 1 + (3 + 1) + 2 + (2 + 1)


def test_each_step_has_one_script_of_its_name(steps, root):
    for s in steps[0]:
        assert s.cmd.startswith(f"python scripts/{s.name}.py"), s.cmd
        assert f"scripts/{s.name}.py" in s.deps
        assert (root / "scripts" / f"{s.name}.py").is_file()


def test_drift_is_reported(steps):
    dvc, smk = steps
    s = next(x for x in smk if x.cmd.startswith("python scripts/train_classifier.py --dataset mnist"))
    drifted = [x for x in smk if x is not s] + [
        Step(s.name, s.instance, s.cmd + " --epochs 9", s.deps - {"src/genpipe/classify/train.py"}, s.outs, "epochs: 1\n")
    ]
    problems = "\n".join(compare(dvc, drifted)).replace(s.instance, "train_classifier@mnist")
    assert "train_classifier@mnist: commands differ" in problems
    assert "deps only in dvc.yaml ['src/genpipe/classify/train.py']" in problems
    assert "train_classifier@mnist: params differ" in problems
    renamed = [x for x in smk if x is not s] + [Step("fit", s.instance, s.cmd, s.deps, s.outs, s.params)]
    assert "names differ" in "\n".join(compare(dvc, renamed))


def _snakemake(*args, cwd):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    return subprocess.run(["snakemake", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_snakemake_lint_is_clean(root):
    proc = _snakemake("--lint", cwd=root)
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_snakemake_rejects_bad_params_before_any_job(root, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train_classifier:\n  mnist:\n    epochs: 0\n    epoch: 3\n")
    proc = _snakemake("-n", "--configfile", str(bad), cwd=root)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "train_classifier.mnist.epochs: 0 is less than the minimum of 1" in out
    assert "train_classifier.mnist.epoch: unknown key" in out
    assert "Building DAG" not in out


def test_locked_stages_are_topological_with_directory_deps(tmp_path):
    from genpipe.pipeline.dvcsync import locked_stages

    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n"
        "  aggregate:\n    deps: [{path: runs}]\n    outs: [{path: table.csv}]\n"
        "  report:\n    deps: [{path: table.csv}]\n    outs: [{path: report.md}]\n"
        "  run@a:\n    deps: [{path: data}]\n    outs: [{path: runs/a/m.json}]\n"
        "  run@b:\n    deps: [{path: data}]\n    outs: [{path: runs/b/m.json}]\n"
    )
    order = [s.name for s in locked_stages(tmp_path)]
    assert order.index("run@a") < order.index("aggregate") and order.index("run@b") < order.index("aggregate")
    assert order.index("aggregate") < order.index("report")
