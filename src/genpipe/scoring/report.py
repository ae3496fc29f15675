"""Report tables of sample scoring in two feature spaces and of the guidance sweep (issue 19).

Every ranking and every comparative word is computed from the metrics, never typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genpipe.pipeline.io import read_json

# evaluate_samples generators, in the report's order: (name, label, dataset)
GENERATORS = (("ddpm_ddpm", "DDPM 1000 steps", "mnist"), ("ddpm_ddim", "DDIM 50 steps", "mnist"), ("ddpm_dpmpp", "DPM-Solver++ 20 steps", "mnist"),
              ("ddpm_ddim_uncond", "DDIM, unconditional", "mnist"), ("ddpm_dpmpp_uncond", "DPM-Solver++, unconditional", "mnist"),
              ("vae", "VAE prior samples", "fashion_mnist"), ("ae_gaussian", "AE decoder on N(0, I)", "fashion_mnist"))
SAMPLER_LABELS = {"ddpm": "DDPM", "ddim": "DDIM", "dpmpp": "DPM-Solver++"}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _pr(m: dict[str, float]) -> str:
    return f"{m['precision']:.3f} / {m['recall']:.3f}"


def ranking(values: dict[str, float]) -> list[str]:
    """Names ordered from the lowest (best) distance to the highest."""
    return sorted(values, key=lambda k: (values[k], k))


def ranking_sentence(fid: dict[str, float], fd: dict[str, float], labels: dict[str, str]) -> str:
    """How the two feature spaces rank the same sample sets, and whether they agree."""
    a, b = ranking(fid), ranking(fd)
    fmt = lambda order, v: " < ".join(f"{labels[k]} ({v[k]:.2f})" for k in order)  # noqa: E731
    verdict = "The two spaces agree on the order." if a == b else (
        f"The two spaces rank them differently: the classifier's features put {labels[a[0]]} first, DINO's {labels[b[0]]}.")
    return f"By FID in the classifier's features: {fmt(a, fid)}. By the Fréchet distance in DINO features: {fmt(b, fd)}. {verdict}"


def _sample_rows(results: Path) -> tuple[list[str], dict[str, dict[str, Any]], list[str]]:
    """The two-space table of evaluate_samples' sets; sets scored before the two spaces existed are listed apart."""
    rows = ["| samples | N | FID, classifier | FD, DINO | precision / recall, classifier | precision / recall, DINO | "
            "density / coverage, DINO | accuracy: classifier / second judge | judges agree |", "|---|---|---|---|---|---|---|---|---|"]
    ev, stale = {}, []
    for name, label, _ in GENERATORS:
        path = results / "evaluate_samples" / name / "metrics.json"
        m = read_json(path) if path.is_file() else {}
        if "prdc" not in m:
            stale.append(label)
            continue
        ev[name] = m
        pr, d = m["prdc"], m["prdc"]["dino"]
        rows.append(f"| {label} | {m['n']:,} | {m['fid']:.2f} | {m['dino']['fid']:.2f} | {_pr(pr['classifier'])} | {_pr(d)} | "
                    f"{d['density']:.3f} / {d['coverage']:.3f} | {_pct(m['generation_accuracy'])} / {_pct(m['generation_accuracy_judge'])} | "
                    f"{_pct(m['judges_agree'])} |")
    for ds in ("mnist", "fashion_mnist"):
        ref = read_json(results / "reference_stats" / ds / "metrics.json")
        first = next((ev[name] for name, _, d in GENERATORS if d == ds and name in ev), None)  # its floor row
        if "dino" not in ref or first is None:
            continue
        fl = first["prdc"]["floor"]
        rows.append(f"| real vs real, {ds} ({ref['floor']['n']:,} training vs test; P/R at N = {first['prdc']['n']:,}) | – | "
                    f"{ref['floor']['fid']:.2f} | {ref['dino']['floor']['fid']:.2f} | {_pr(fl['classifier'])} | {_pr(fl['dino'])} | "
                    f"{fl['dino']['density']:.3f} / {fl['dino']['coverage']:.3f} | {_pct(ref['judges']['classifier_test_accuracy'])} / "
                    f"{_pct(ref['judges']['judge_test_accuracy'])} (test split) | {_pct(ref['judges']['agreement_on_test'])} |")
    return rows, ev, stale


def guidance_rows(g: dict[str, Any]) -> list[str]:
    rows = ["| sampler | w | N | FID, classifier | FD, DINO | precision / recall, classifier | precision / recall, DINO | "
            "coverage, DINO | accuracy: classifier / second judge | ms / sample |", "|---|---|---|---|---|---|---|---|---|---|"]
    for sampler, by_w in g["samplers"].items():
        best = g["best"][sampler]
        for w, r in by_w.items():
            mark = lambda key, text: f"**{text}**" if best[key] == float(w) else text  # noqa: E731
            rows.append(f"| {SAMPLER_LABELS.get(sampler, sampler)} | {w} | {g['n'][sampler]:,} | {mark('fid', format(r['fid'], '.2f'))} | "
                        f"{mark('fd_dino', format(r['fd_dino'], '.2f'))} | {r['precision_classifier']:.3f} / {r['recall_classifier']:.3f} | "
                        f"{mark('precision_dino', format(r['precision_dino'], '.3f'))} / {mark('recall_dino', format(r['recall_dino'], '.3f'))} | "
                        f"{r['coverage_dino']:.3f} | {mark('accuracy', _pct(r['accuracy']))} / {mark('accuracy_judge', _pct(r['accuracy_judge']))} | "
                        f"{r['ms_per_sample']:.0f} |")
    return rows


def scoring_tables(results: Path) -> str:
    g = read_json(results / "evaluate_guidance" / "metrics.json")
    ref = read_json(results / "reference_stats" / "mnist" / "metrics.json")
    out = [f"Two feature spaces per dataset: the ResNet classifier's 64-d features and the class token of the DINO ViT trained on the "
           f"same dataset without labels ({ref['dino']['features']}, {ref['dino']['dim']}-d; its weighted k-NN recognises "
           f"{_pct(ref['dino']['knn_test_accuracy'])} of the MNIST test digits). Precision / recall (Kynkäänniemi et al. 2019) and "
           f"density / coverage (Naeem et al. 2020) use k = 3 neighbours on the first N samples and as many test images, and a "
           f"real-vs-real row at the same N. The second judge is an independently trained network: for MNIST the {g['judge']}, shown "
           f"each digit as a white object in an empty scene ({_pct(ref['judges']['judge_test_accuracy'])} of the real test digits, "
           f"the classifier {_pct(ref['judges']['classifier_test_accuracy'])}).", ""]
    w = f"{g['default_guidance']:g}"
    labels = {s: SAMPLER_LABELS.get(s, s) for s in g["samplers"]}
    if w in next(iter(g["samplers"].values())) and len(set(g["n"].values())) == 1:
        out += [ranking_sentence({s: r[w]["fid"] for s, r in g["samplers"].items()}, {s: r[w]["fd_dino"] for s, r in g["samplers"].items()},
                                 labels) + f" (guided at w = {w}, N = {next(iter(g['n'].values())):,} each, the same seeds.)", ""]
    out += [f"Classifier-free guidance sweep (sweep_guidance, evaluate_guidance; the same seeds at every w; bold: the best w per score):", ""]
    out += guidance_rows(g) + [""] + [f"- {line}" for line in g["observations"]]
    rows, _, stale = _sample_rows(results)
    if len(rows) > 2:
        out += ["", "Every sample set of evaluate_samples in both spaces:", ""] + rows
    if stale:
        out += ["", f"Not yet rescored in two spaces (their metrics predate them; the next `snakemake` run rescores them): {', '.join(stale)}."]
    return "\n".join(out)


def summary_row(results: Path) -> str:
    g = read_json(results / "evaluate_guidance" / "metrics.json")
    s = "dpmpp" if "dpmpp" in g["best"] else next(iter(g["best"]))
    b = g["best"][s]
    return (f"| classifier-free guidance sweep, {SAMPLER_LABELS.get(s, s)} on MNIST | best w by FID (classifier) / FD (DINO) / "
            f"recall (DINO) / accuracy | {b['fid']:g} / {b['fd_dino']:g} / {b['recall_dino']:g} / {b['accuracy']:g} | [DDPM](docs/ddpm.md) |")
