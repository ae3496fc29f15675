import copy
import shutil
import subprocess
import sys

import pytest
import yaml

from genpipe.pipeline.params import ParamsError, load_params, load_schema, load_yaml, schema_path, validate


@pytest.fixture()
def doc():
    return load_yaml("params.yaml")


@pytest.fixture()
def schema():
    return load_schema(schema_path("params.yaml"))


def test_default_params_are_valid(doc, schema):
    validate(doc, schema)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["train_classifier"]["mnist"].update(epochs=0), "train_classifier.mnist.epochs: 0 is less than the minimum of 1"),
        (lambda d: d["train_classifier"]["mnist"].update(lr="fast"), "train_classifier.mnist.lr: 'fast' is not of type 'number'"),
        (lambda d: d["train_classifier"]["fashion_mnist"].update(norm="xn"), "train_classifier.fashion_mnist.norm: 'xn' is not one of"),
        (lambda d: d["train_classifier"]["mnist"].update(epoch=3), "train_classifier.mnist.epoch: unknown key"),
        (lambda d: d.update(trian_classifier={}), "trian_classifier: unknown key"),
        (lambda d: d["figures"].pop("seed"), "figures.seed: required key is missing"),
        (lambda d: d["figures"].update(samples_per_class=100), "figures.samples_per_class: 100 is greater than the maximum of 32"),
        (lambda d: d["sample_ddpm"]["samplers"]["dpmpp"].update(algorithm_type="sde"), "sample_ddpm.samplers.dpmpp.algorithm_type: 'sde' is not one of"),
        (lambda d: d["sample_ddpm"]["samplers"]["ddim"].update(use_karras_sigmas=True), "sample_ddpm.samplers.ddim.use_karras_sigmas: unknown key"),
        (lambda d: d["sample_ddpm"]["samplers"]["dpmpp"].pop("use_karras_sigmas"), "sample_ddpm.samplers.dpmpp.use_karras_sigmas: required key is missing"),
    ],
)
def test_rejections_name_the_key(doc, schema, edit, message):
    bad = copy.deepcopy(doc)
    edit(bad)
    with pytest.raises(ParamsError) as err:
        validate(bad, schema)
    assert message in str(err.value)


def test_section_validation_ignores_other_sections(doc, schema):
    bad = copy.deepcopy(doc)
    bad["figures"]["samples_per_class"] = 0
    validate(bad, schema, section="train_classifier.mnist")
    with pytest.raises(ParamsError, match="figures.samples_per_class"):
        validate(bad, schema, section="figures")


def test_section_missing_is_named(doc, schema):
    bad = copy.deepcopy(doc)
    del bad["train_classifier"]["mnist"]
    with pytest.raises(ParamsError, match="train_classifier.mnist: required key is missing"):
        validate(bad, schema, section="train_classifier.mnist")


def test_every_schema_key_has_a_description(schema):
    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            if "$ref" not in sub:
                assert sub.get("description"), f"{path}{key} has no description"
                walk(sub, f"{path}{key}.")

    walk(schema, "")
    for name, sub in schema["$defs"].items():
        walk(sub, f"$defs.{name}.")


def _params_file(tmp_path, doc):
    """``doc`` as tmp_path/params.yaml, with the project's schema files beside it, as a script expects."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(doc))
    shutil.copytree(schema_path("params.yaml").parent, tmp_path / "workflow" / "schemas")
    return params


def test_script_stops_before_any_work_on_bad_params(tmp_path, doc):
    bad = copy.deepcopy(doc)
    bad["train_classifier"]["mnist"]["batch_size"] = -4
    params = _params_file(tmp_path, bad)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "scripts/train_classifier.py", "--dataset", "mnist", "--data", str(tmp_path / "nodata"), "--out", str(out), "--params", str(params)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "train_classifier.mnist.batch_size: -4 is less than the minimum of 1" in proc.stderr
    assert not out.exists()


def test_load_params_returns_the_section():
    p = load_params("train_classifier.mnist")
    assert p["norm"] in {"bn", "in", "bin", "ln", "gn"}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["evaluate_samples"].update(same_n=200),
         "evaluate_samples.same_n: 200 is more than sample_ddpm.samplers.ddpm.n: 100 (compare_samplers scores every sampler's"),
        (lambda d: d["sample_ddpm"].update(grid_per_class=15),
         "sample_ddpm.grid_per_class: 15 is more than sample_ddpm.samplers.ddpm.n: 100 / 10 (grid.png shows grid_per_class"),
        (lambda d: d["sample_vae"].update(n=50),
         "sample_vae.n: 50 is not more than 4 x train_classifier.fashion_mnist.width: 16 (FID needs more samples"),
        (lambda d: d["train_classifier"]["mnist"].update(width=32),
         "sample_ddpm.samplers.ddpm.n_unconditional: 100 is not more than 4 x train_classifier.mnist.width: 32"),
        (lambda d: d["train_classifier"]["fashion_mnist"].update(width=32),
         "evaluate_samples.same_n: 100 is not more than 4 x train_classifier.fashion_mnist.width: 32"),
    ],
)
def test_cross_key_rejections_name_both_keys(doc, schema, edit, message):
    bad = copy.deepcopy(doc)
    edit(bad)
    with pytest.raises(ParamsError, match="contradict each other") as err:
        validate(bad, schema)
    assert message in str(err.value)


def test_cross_key_rules_allow_what_the_code_allows(doc, schema):
    ok = copy.deepcopy(doc)
    # docs/ddpm.md's 1000-sample comparison: n_unconditional stays 100, as unconditional sets are not compared at same_n
    ok["sample_ddpm"]["samplers"]["ddpm"]["n"] = 1000
    ok["evaluate_samples"]["same_n"] = 1000
    validate(ok, schema)
    ok["sample_ddpm"]["grid_per_class"] = 20  # 10 x 20 = 200 <= every n
    ok["sample_ddpm"]["samplers"]["ddpm"]["n"] = 200
    ok["evaluate_samples"]["same_n"] = 200
    validate(ok, schema)


def test_section_validation_runs_the_cross_key_rules_naming_it(doc, schema):
    """A script checks the rules that name a key of its section, against the whole file it read."""
    bad = copy.deepcopy(doc)
    bad["evaluate_samples"]["same_n"] = 200
    for section in ("evaluate_samples", "sample_ddpm"):
        with pytest.raises(ParamsError, match="evaluate_samples.same_n: 200 is more than sample_ddpm.samplers.ddpm.n: 100"):
            validate(bad, schema, section=section)
    for section in ("figures", "train_classifier.mnist", "sample_vae"):
        validate(bad, schema, section=section)
    # another section's key that is missing or mistyped is that section's problem: the rule is skipped
    del bad["sample_ddpm"]
    validate(bad, schema, section="evaluate_samples")


def test_reference_stats_script_stops_on_contradicting_params(tmp_path, doc):
    """DVC runs scripts directly: the first stage reading evaluate_samples refuses same_n > a sampler's n."""
    bad = copy.deepcopy(doc)
    bad["evaluate_samples"]["same_n"] = 200
    params = _params_file(tmp_path, bad)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "scripts/reference_stats.py", "--dataset", "mnist", "--data", str(tmp_path / "nodata"),
         "--classifier", str(tmp_path / "noclassifier"), "--dino", str(tmp_path / "nodino"), "--judge", str(tmp_path / "nojudge"),
         "--out", str(out), "--params", str(params)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "evaluate_samples.same_n: 200 is more than sample_ddpm.samplers.ddpm.n: 100" in proc.stderr
    assert not out.exists()


def test_snakemake_rejects_contradicting_params_before_the_dag(root, tmp_path):
    import os

    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluate_samples:\n  same_n: 200\n")  # merged over params.yaml: valid for the schema
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    proc = subprocess.run(["snakemake", "-n", "--configfile", str(bad)], cwd=root, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "evaluate_samples.same_n: 200 is more than sample_ddpm.samplers.ddpm.n: 100" in out
    assert "Building DAG" not in out
