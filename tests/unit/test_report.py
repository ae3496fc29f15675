import re

import pytest

from genpipe.pipeline.report import END, START, classifier_table, summary_table, update_readme


def _block(text):
    return re.search(re.escape(START) + ".*?" + re.escape(END), text, re.S).group(0)


def test_readme_results_table_is_the_reports(root):
    """docs/results.md holds the report's tables and the README their summary (make readme), not typed."""
    assert _block((root / "docs/results.md").read_text()) == _block((root / "results/report/report.md").read_text())
    assert _block((root / "README.md").read_text()) == f"{START}\n{summary_table(root / 'results')}\n{END}"


def test_update_readme_replaces_only_the_block(tmp_path):
    readme, report = tmp_path / "README.md", tmp_path / "report.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\noutro\n")
    report.write_text(f"# r\n{START}\n| new |\n{END}\n")
    update_readme(readme, report)
    assert readme.read_text() == f"intro\n{START}\n| new |\n{END}\noutro\n"
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="results markers"):
        update_readme(readme, report)


def test_update_readme_writes_summary_and_full_tables(tmp_path):
    readme, report, full = tmp_path / "README.md", tmp_path / "report.md", tmp_path / "results.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\noutro\n")
    full.write_text(f"# all\n{START}\n{END}\n")
    report.write_text(f"# r\n{START}\n| new |\n{END}\n")
    update_readme(readme, report, full, summary="| summary |\n")
    assert readme.read_text() == f"intro\n{START}\n| summary |\n{END}\noutro\n"
    assert full.read_text() == f"# all\n{START}\n| new |\n{END}\n"


def test_classifier_table_formats_percentages():
    split = {"accuracy": 0.99, "f1_micro": 0.99, "f1_macro": 0.985, "n": 10000}
    table = classifier_table({"mnist": {"test": split, "val": split, "train": split}}, {"mnist": {"depth_n": 3, "norm": "gn", "width": 16}})
    assert "| mnist | ResNet-20 (gn, width 16) | 99.00 % | 99.00 % | 98.50 % | 99.00 % | 99.00 % | 10000 |" in table


def test_classifier_table_has_the_vit_row_below_the_resnets():
    split = {"accuracy": 0.8824, "f1_micro": 0.8824, "f1_macro": 0.882062, "n": 10000}
    vit = ({"dataset": "fashion_mnist", "parameters": 205962, "test": split, "val": split, "train": split},
           {"dim": 64, "depth": 6, "heads": 4, "patch_size": 4})
    rows = classifier_table({"fashion_mnist": {"test": split, "val": split, "train": split}},
                            {"fashion_mnist": {"depth_n": 1, "norm": "bn", "width": 16}}, vit).splitlines()
    assert rows[2].startswith("| fashion_mnist | ResNet-8 (bn, width 16) |")
    assert rows[3] == ("| fashion_mnist | ViT (dim 64, depth 6, 4 heads, patch 4; 0.21 M parameters) | 88.24 % | 88.24 % | 88.21 % "
                       "| 88.24 % | 88.24 % | 10000 |")
