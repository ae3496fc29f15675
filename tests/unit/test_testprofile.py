"""The test profile: tiny params merged over params.yaml, .test/ as its own working directory."""

from pathlib import Path

import pytest
import yaml

from genpipe.pipeline.params import load_schema, validate
from genpipe.pipeline.testprofile import TEST_DIR, TINY_PARAMS, deep_merge, render, tiny_params


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2}
    assert deep_merge(base, {"a": {"y": [3]}, "c": 4}) == {"a": {"x": 1, "y": [3]}, "b": 2, "c": 4}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2}  # not modified


def test_an_override_naming_an_unknown_key_stops_with_its_name(tmp_path):
    (tmp_path / TINY_PARAMS).parent.mkdir(parents=True)
    (tmp_path / "params.yaml").write_text("train_vae: {epochs: 3}\n")
    (tmp_path / TINY_PARAMS).write_text("train_vae: {epoch: 1}\n")
    with pytest.raises(KeyError, match="train_vae.epoch is not a key"):
        tiny_params(tmp_path)


def test_committed_test_params_are_current_and_valid(root):
    assert (root / TEST_DIR / "params.yaml").read_text() == render(root), "stale .test/params.yaml: run `make test-params`"
    params = yaml.safe_load((root / TEST_DIR / "params.yaml").read_text())
    validate(params, load_schema(root / "workflow/schemas/params.schema.yaml"))
    assert params["train_classifier"]["mnist"]["train_limit"] == 2000 and params["train_ddpm"]["channels"] == 8


def test_test_dir_links_the_code_and_keeps_its_outputs_to_itself(root):
    test_dir = root / TEST_DIR
    for name in ("scripts", "src", "workflow", "dvc.yaml", "environment.yml"):
        link = test_dir / name
        assert link.is_symlink() and link.resolve() == (root / name).resolve(), name
    assert (test_dir / ".dvc/config").is_file()  # a DVC subproject: the root's dvc status never reads .test/dvc.yaml
    ignored = (test_dir / ".gitignore").read_text().split()
    assert {"/results/", "/data/", "/logs/", "/.snakemake/", "/dvc.lock"} <= set(ignored)
    profile = yaml.safe_load((root / "workflow/profiles/test/config.yaml").read_text())
    assert Path(profile["directory"]) == TEST_DIR
