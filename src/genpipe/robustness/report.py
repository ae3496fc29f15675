"""The report's tables of attack_classifiers (called by genpipe.pipeline.report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genpipe.pipeline.io import read_json

NAMES = {"resnet": "ResNet", "vit": "ViT"}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def _name(m: str) -> str:
    return NAMES.get(m, m)


def robustness_tables(results: Path) -> str:
    """Budget curves (FGSM / PGD per model), the transfer matrix and the observation, each with its N."""
    m = read_json(results / "attack_classifiers" / "metrics.json")
    models, q, eps = m["models"], m["pgd"], m["transfer_eps"]
    cols = [(name, a) for name in models for a in ("fgsm", "pgd")]
    out = [" ".join(f"**{_name(k)}**: {v['label']}, clean test accuracy {_pct(v['clean_accuracy'])} (N = {v['clean_n']:,})."
                    for k, v in models.items()),
           "",
           f"Accuracy under an L∞ budget ε (pixels in [0, 1]; correct under the attack at every grid ε' ≤ ε). FGSM on the first "
           f"{m['n']['fgsm']:,} test images, PGD ({q['steps']} steps, α = {q['alpha_ratio']:g}·ε/{q['steps']}, "
           f"{'one shared random start' if q['random_start'] else 'no random start'}) on the first {m['n']['pgd']:,}:",
           "",
           "| ε | " + " | ".join(f"{_name(n)} {a.upper()}" for n, a in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for e in map(str, m["eps"]):
        out.append(f"| {e} | " + " | ".join(_pct(models[n][a]["accuracy"][e]) for n, a in cols) + " |")
    rises = [f"{_name(n)} {a.upper()} (+{100 * models[n][a]['raw_max_increase']:.2f} points)" for n, a in cols
             if models[n][a]["raw_max_increase"] > 0]
    out += ["", "The raw curves (the attack at exactly ε) " + ("never rise." if not rises else "rise for " + ", ".join(rises)
            + ": a large step overshoots; the budget curve above takes the worst case over the grid.")]

    for a in ("fgsm", "pgd"):
        tr = m["transfer"][a]
        targets = list(tr["accuracy"])
        out += ["", f"Transfer, {a.upper()} at ε = {eps:g} (N = {tr['n']:,}): accuracy of the target (columns) on images made on the source (rows).", "",
                "| images | " + " | ".join(_name(t) for t in targets) + " |", "|---" * (len(targets) + 1) + "|",
                "| clean | " + " | ".join(_pct(tr["clean"][t]) for t in targets) + " |",
                f"| random sign noise ±{eps:g} | " + " | ".join(_pct(tr["noise"][t]) for t in targets) + " |"]
        out += [f"| {a.upper()} on {_name(s)} | " + " | ".join(_pct(tr["accuracy"][s][t]) + (" (white-box)" if s == t else "") for t in targets) + " |"
                for s in targets]
    out += ["", observation_text(m)]
    return "\n".join(out)


def observation_text(m: dict[str, Any]) -> str:
    """The observation in words, from metrics.json's ``observation`` (computed from the numbers)."""
    obs, models = m["observation"], m["models"]
    e = obs["eps"]
    parts = []
    for a in ("pgd", "fgsm"):
        winner = obs["more_robust"][a]
        area = ", ".join(f"{_name(k)} {_pct(v[a])}" for k, v in obs["mean_accuracy_over_eps"].items())
        half = ", ".join(f"{_name(k)} {'> ' + str(m['eps'][-1]) if v[a] is None else f'{v[a]:.3f}'}"
                         for k, v in obs["eps_at_half_accuracy"].items())
        at = obs["at_eps"][a]
        accs = ", ".join(f"{_name(k)} {_pct(v[a]['accuracy'][str(e)])}" for k, v in models.items())
        at_text = (f"at ε = {e:g} the {_name(at['more_robust'])} is ahead ({accs})" if at["more_robust"] != "tie"
                   else f"at ε = {e:g} the two are within twice the standard error ({accs})")
        parts.append(f"under {a.upper()} " + (f"the {_name(winner)} holds more accuracy over the ε grid" if winner != "tie" else "neither holds more accuracy")
                     + f" (mean accuracy over ε {area}; half the clean accuracy is lost at ε {half}), and {at_text}")
    transfers = []
    for a in ("fgsm", "pgd"):
        for pair, ok in obs["transfers"][a].items():
            s, t = pair.split("_to_")
            got = m["transfer"][a]["accuracy"][s][t]
            transfers.append(f"{a.upper()} {_name(s)} → {_name(t)} {_pct(got)}, {'' if ok else 'not '}below sign noise "
                             f"({100 * obs['transfer_drop_vs_noise'][a][pair]:+.2f} points) and {100 * obs['transfer_gap'][a][pair]:+.2f} "
                             "above white-box")
    return ("**Observation** (computed from the numbers): " + "; ".join(parts) + ". Transfer at ε = " + f"{e:g}: "
            + "; ".join(transfers) + ". A difference between these two models reflects their training recipes (optimiser, "
            "augmentation, label smoothing, epochs) as much as CNN vs transformer (Bai et al. 2021, *Are Transformers More "
            "Robust Than CNNs?*): see docs/robustness.md.")


def summary_row(results: Path) -> str:
    """The front page's headline row: the eps at which PGD halves each model's accuracy, and PGD's transfer at the default eps."""
    m = read_json(results / "attack_classifiers" / "metrics.json")
    obs, q, names = m["observation"], m["pgd"], list(m["models"])
    half = " / ".join("> " + str(m["eps"][-1]) if obs["eps_at_half_accuracy"][n]["pgd"] is None else f"{obs['eps_at_half_accuracy'][n]['pgd']:.3f}"
                      for n in names)
    pairs = [(s, t) for s in names for t in names if s != t]
    tr = m["transfer"]["pgd"]["accuracy"]
    return (f"| PGD-{q['steps']} (L∞), ResNet vs ViT, Fashion-MNIST | ε halving the accuracy {' / '.join(_name(n) for n in names)}; "
            f"accuracy on the other's examples at ε = {m['transfer_eps']:g}, {' / '.join(f'{_name(s)}→{_name(t)}' for s, t in pairs)} "
            f"(N = {m['n']['pgd']:,}) | {half}; {' / '.join(_pct(tr[s][t]) for s, t in pairs)} | [robustness](docs/robustness.md) |")


CLIP_NAMES = {"plain": "CLIP (plain)", "tecoa": "TeCoA", "prompt": "visual prompt", "lora": "LoRA"}


def _clip_order(models: dict[str, Any]) -> list[str]:
    """Plain first, then the defenses in their usual order (metrics.json stores its keys sorted)."""
    return sorted(models, key=lambda n: (list(CLIP_NAMES).index(n) if n in CLIP_NAMES else len(CLIP_NAMES), n))
# the zero-shot benchmark's columns after defense: what robustness costs CLIP's generality
GENERALITY = (("colour_accuracy", "colour zero-shot"), ("binding_colour", "colour binding"), ("binding_relation", "relation binding"),
              ("t2i_r1", "text→image R@1"))


def clip_robustness_tables(results: Path) -> str:
    """attack_clip's tables: the defenses side by side at their ε (trainable parameters, clean, robust, held-out pairs, the
    zero-shot benchmark), the budget curves, and the observation in words (with defend_clip's training budget)."""
    m, defend = read_json(results / "attack_clip" / "metrics.json"), read_json(results / "defend_clip" / "metrics.json")
    models, e, q = m["models"], m["defense_eps"], m["pgd"]
    key = str(e)
    d = defend["defenses"]
    out = [f"CLIP's zero-shot digit classifier (10 digits, prompt-ensembled text embeddings) on the one-object test scenes. Each defense "
           f"trained from the plain run on {defend['n_train']:,} one-object train scenes ({d[next(iter(d))]['images']:,} in full batches) × {defend['epochs']} epoch(s) of PGD-"
           f"{defend['pgd']['steps']} images at ε = {defend['eps']:g} (TeCoA's loss: the frozen digit text embeddings); "
           f"scored under PGD-{q['steps']} ({'random start' if q['random_start'] else 'no random start'}) at ε = {e:g} on the first "
           f"{m['n']['pgd']:,} scenes and on all {m['n']['held_out']:,} held-out-pair scenes; clean columns on all {models['plain']['clean_n']:,}.",
           "",
           "| model | trainable parameters | train CPU s | clean digits | PGD ε " + f"{e:g}" + " | held-out pairs clean / PGD | "
           + " | ".join(g for _, g in GENERALITY) + " |",
           "|---" * (6 + len(GENERALITY)) + "|"]
    for name in _clip_order(models):
        v, s = models[name], d.get(name, {})
        zs, ho = v["zero_shot"]["all"], v["held_out"]
        params = f"{s['trainable_parameters']:,}" if s else "—"
        out.append(f"| {CLIP_NAMES.get(name, name)} | {params} | {s.get('cpu_seconds', '—')} | {_pct(v['clean_accuracy'])} | "
                   f"{_pct(v['pgd']['accuracy'][key])} | {_pct(ho['clean'])} / {_pct(ho['pgd'])} | "
                   + " | ".join(_pct(zs[k]) for k, _ in GENERALITY) + " |")
    cols = [(n, a) for n in _clip_order(models) for a in ("fgsm", "pgd")]
    out += ["", f"Budget curves (accuracy under every ε' ≤ ε; FGSM on {m['n']['fgsm']:,} scenes, PGD on {m['n']['pgd']:,}):", "",
            "| ε | " + " | ".join(f"{CLIP_NAMES.get(n, n)} {a.upper()}" for n, a in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for eps in map(str, m["eps"]):
        out.append(f"| {eps} | " + " | ".join(_pct(models[n][a]["accuracy"][eps]) for n, a in cols) + " |")
    out += ["", clip_observation_text(m)]
    return "\n".join(out)


def clip_observation_text(m: dict[str, Any]) -> str:
    obs = m["observation"]
    e, robust, clean = obs["eps"], obs["robust_accuracy"], obs["clean_accuracy"]
    parts = []
    for name in _clip_order(obs["ratio_to_plain"]):
        ratio = obs["ratio_to_plain"][name]
        r = "—" if ratio is None else (f"{ratio:.1f}×" if ratio != float("inf") else "∞×")
        parts.append(f"{CLIP_NAMES.get(name, name)} {_pct(robust[name])} ({r} plain's, {'' if obs['significant'][name] else 'not '}beyond twice "
                     f"the standard error; clean cost {100 * obs['clean_cost'][name]:+.2f} points, colour zero-shot "
                     f"{-100 * obs['zero_shot_cost'][name].get('colour_accuracy', 0):+.2f}, relation binding "
                     f"{-100 * obs['zero_shot_cost'][name].get('binding_relation', 0):+.2f})")
    met = obs["tecoa_target_met"]
    return (f"**Observation** (computed from the numbers): under PGD at ε = {e:g} the plain CLIP keeps {_pct(robust['plain'])} "
            f"(clean {_pct(clean['plain'])}); " + "; ".join(parts) + f". Most robust: {CLIP_NAMES.get(obs['most_robust'], obs['most_robust'])}. "
            + ("TeCoA's target (≥ 3× plain's robust accuracy) is " + ("met." if met else "not met.") if met is not None else ""))


def clip_summary_row(results: Path) -> str:
    """The front page's row of attack_clip: PGD accuracy at the defenses' ε per model, and their clean accuracy."""
    m = read_json(results / "attack_clip" / "metrics.json")
    obs, q = m["observation"], m["pgd"]
    names = _clip_order(m["models"])
    return (f"| PGD-{q['steps']} (L∞) on CLIP's zero-shot digits, colour MNIST scenes | accuracy at ε = {m['defense_eps']:g} "
            f"(clean), {' / '.join(CLIP_NAMES.get(n, n) for n in names)} (N = {m['n']['pgd']:,}) | "
            + " / ".join(f"{_pct(obs['robust_accuracy'][n])} ({_pct(obs['clean_accuracy'][n])})" for n in names) + " | [robustness](docs/robustness.md) |")
