"""Snakemake's HTML report (`snakemake --report results/report.html`) beside the markdown report."""

from __future__ import annotations

import base64
import json
import re

import pytest

from e2e_project import clone, sh

pytestmark = pytest.mark.e2e


def embedded(html: str, path: str) -> dict:
    """The report's record of ``path`` (its JSON object of results: name, caption, mime_type, data_uri ...)."""
    key = f'"{path}": {{'
    assert key in html, f"{path} is not in the HTML report"
    return json.JSONDecoder().raw_decode(html, html.index(key) + len(key) - 1)[0]


def test_html_report_holds_every_figure_of_the_markdown_report(project, tmp_path):
    d = clone(project, tmp_path / "clone")  # outputs from the DVC cache, no Snakemake metadata: as after `dvc pull`
    sh("snakemake --report results/report.html", d)
    html = (d / "results/report.html").read_text()
    figures = sorted(set(re.findall(r"!\[[^\]]*\]\(\.\./([^)]+\.png)\)", (d / "results/report/report.md").read_text())))
    assert len(figures) >= 30, figures
    for fig in figures:
        path = f"results/{fig}"
        entry = embedded(html, path)
        assert entry["mime_type"] == "image/png" and entry["caption"] and "{{" not in entry["caption"], (path, entry["caption"])
        head, data = entry["data_uri"].split("base64,", 1)  # data:image/png;charset=utf8;filename=<name>;base64,...
        assert head.startswith("data:image/png") and base64.b64decode(data) == (d / path).read_bytes(), f"{path}: other bytes embedded"
    for category in ("Classifiers", "Normalisation study", "Autoencoder and VAE", "DDPM", "Scenes", "CLIP"):
        assert f'"{category}"' in html, category
