import re

import yaml


def _pins(lines):
    return dict(re.match(r"\s*([A-Za-z0-9_.\-]+)==(\S+)", line).groups() for line in lines if "==" in line)


def test_requirements_and_environment_pin_the_same_versions(root):
    req = _pins(l for l in (root / "requirements.txt").read_text().splitlines() if not l.startswith("#"))
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert req == _pins(pip)
    assert req["torch"] == "2.14.1" and req["torchvision"] == "0.29.1"
    assert req["snakemake"].startswith("9.") and req["dvc"].startswith("3.")


def test_ci_runs_the_readme_test_command(root):
    readme = (root / "README.md").read_text()
    assert "make test" in readme.split("\n## ")[0] and "make run" in readme.split("\n## ")[0]
    assert "make test" in (root / ".ci" / "run").read_text()


def test_dvc_analytics_off(root):
    assert "analytics = false" in (root / ".dvc" / "config").read_text()
