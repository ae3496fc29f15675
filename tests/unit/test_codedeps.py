"""Code deps derived from imports: the closure, the dvc.yaml rewrite, and the committed file being current."""

import ast
import textwrap
from pathlib import Path

import pytest

from genpipe.pipeline.codedeps import StageCode, rewrite_dvc_yaml, stage_code


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))


@pytest.fixture
def project(tmp_path):
    _write(tmp_path, {
        "src/genpipe/__init__.py": '"""doc"""\n',
        "src/genpipe/pipeline/__init__.py": '"""doc"""\n',
        "src/genpipe/pipeline/io.py": "import json\n",
        "src/genpipe/pipeline/params.py": "from genpipe.pipeline import io\n",
        "src/genpipe/pipeline/plots.py": "raise SystemExit('imported: the closure must be static')\n",
        "src/genpipe/models/__init__.py": '"""doc"""\n',
        "src/genpipe/models/net.py": "from genpipe.pipeline.io import json\n",
        "src/genpipe/exp/__init__.py": '"""doc"""\n',
        "src/genpipe/exp/train.py": """\
            from genpipe.models import net
            def figure():
                from genpipe.pipeline import plots  # inside a function: still a dep
            """,
        "src/genpipe/exp/unused.py": "",
        "scripts/train.py": "import genpipe.exp.train\nfrom genpipe.pipeline.params import load_params\n",
        "scripts/download.py": "import os\n",
    })
    return tmp_path


def test_the_closure_is_transitive_static_and_leaves_out_inits_and_params(project):
    assert stage_code("train", project) == [
        "scripts/train.py", "src/genpipe/exp/train.py", "src/genpipe/models/net.py",
        "src/genpipe/pipeline/io.py", "src/genpipe/pipeline/plots.py"]
    assert stage_code("download", project) == ["scripts/download.py"]
    assert dict(StageCode(project)) == {"download": ["scripts/download.py"], "train": stage_code("train", project)}
    with pytest.raises(FileNotFoundError, match="scripts/fit.py does not exist"):
        stage_code("fit", project)


DVC_YAML = """\
stages:
  train:
    foreach: ${datasets}
    do:
      cmd: python scripts/train.py
      deps:
        - scripts/train.py
        - src/genpipe/pipeline/io.py
        - data/raw/${key}
      outs:
        - model
  download:
    cmd: python scripts/download.py
    deps:
      - scripts/download.py
    outs:
      - data
"""


def test_the_rewrite_fills_in_each_stage_and_keeps_everything_else(project):
    text, changed = rewrite_dvc_yaml(DVC_YAML, StageCode(project))
    assert changed == ["train"]
    assert text == DVC_YAML.replace(
        "        - src/genpipe/pipeline/io.py\n",
        "        - src/genpipe/exp/train.py\n        - src/genpipe/models/net.py\n"
        "        - src/genpipe/pipeline/io.py\n        - src/genpipe/pipeline/plots.py\n")
    assert rewrite_dvc_yaml(text, StageCode(project)) == (text, [])  # idempotent


def test_the_committed_dvc_yaml_has_the_derived_code_deps(root):
    _, stale = rewrite_dvc_yaml((root / "dvc.yaml").read_text(), StageCode(root))
    assert stale == [], f"dvc.yaml's code deps are stale for {stale}: run `make deps`"


def test_package_inits_hold_only_a_docstring(root):
    """What lets the closure leave them out: importing a package runs nothing a result depends on."""
    for init in sorted((root / "src/genpipe").rglob("__init__.py")):
        body = ast.parse(init.read_text()).body
        assert body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), f"{init}: no docstring"
        rest = [ast.unparse(n) for n in body[1:]]
        assert rest in ([], ["__version__ = '0.1.0'"]), f"{init} holds code: {rest}"
