import copy
import subprocess
import sys

import pytest
import yaml

from genpipe.pipeline.params import ParamsError, load_params, load_yaml, schema_path, validate


@pytest.fixture()
def doc():
    return load_yaml("params.yaml")


@pytest.fixture()
def schema():
    return load_yaml(schema_path("params.yaml"))


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


def test_script_stops_before_any_work_on_bad_params(tmp_path, doc):
    bad = copy.deepcopy(doc)
    bad["train_classifier"]["mnist"]["batch_size"] = -4
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(bad))
    (tmp_path / "workflow" / "schemas").mkdir(parents=True)
    (tmp_path / "workflow" / "schemas" / "params.schema.yaml").write_text(open(schema_path("params.yaml")).read())
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
