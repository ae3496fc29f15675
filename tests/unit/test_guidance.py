"""The guidance sweep's verdicts and the report's sampler ranking: computed from the numbers, never typed."""

from __future__ import annotations

from genpipe.scoring.guidance import best_scales, observations
from genpipe.scoring.report import ranking, ranking_sentence

LABELS = {"ddpm_ddim": "DDIM", "ddpm_dpmpp": "DPM-Solver++"}


def test_the_ranking_follows_the_numbers_in_each_space() -> None:
    agree = ranking_sentence({"ddpm_ddim": 4.6, "ddpm_dpmpp": 0.6}, {"ddpm_ddim": 9.0, "ddpm_dpmpp": 3.0}, LABELS)
    assert agree.startswith("By FID in the classifier's features: DPM-Solver++ (0.60) < DDIM (4.60).")
    assert agree.endswith("The two spaces agree on the order.")
    swapped = ranking_sentence({"ddpm_ddim": 4.6, "ddpm_dpmpp": 0.6}, {"ddpm_ddim": 3.0, "ddpm_dpmpp": 9.0}, LABELS)
    assert "DINO features: DDIM (3.00) < DPM-Solver++ (9.00)" in swapped
    assert "the classifier's features put DPM-Solver++ first, DINO's DDIM" in swapped
    assert ranking({"b": 1.0, "a": 1.0, "c": 0.5}) == ["c", "a", "b"]  # ties: by name, so the order is stable


def _row(fid: float, fd: float, p: float, r: float, acc: float) -> dict[str, float]:
    return {"fid": fid, "fd_dino": fd, "precision_classifier": p, "recall_classifier": r, "precision_dino": p, "recall_dino": r,
            "coverage_dino": r, "accuracy": acc, "accuracy_judge": acc}


def test_best_scales_and_observations_come_from_the_scores() -> None:
    # guidance trades variety for fidelity: precision and accuracy rise with w, recall falls; FID is best in between
    rows = {1.0: _row(3.0, 8.0, 0.70, 0.80, 0.90), 2.0: _row(1.0, 9.0, 0.80, 0.70, 0.97), 3.0: _row(2.0, 12.0, 0.85, 0.60, 0.99)}
    best = best_scales(rows)
    assert best["fid"] == 2.0 and best["fd_dino"] == 1.0 and best["recall_dino"] == 1.0 and best["precision_dino"] == 3.0
    assert best["accuracy"] == 3.0
    lines = observations("dpmpp", rows, best)
    assert lines[0].startswith("dpmpp: FID in the classifier's features is lowest at w = 2, the Fréchet distance in DINO features at w = 1;")
    assert "precision rises (0.700 → 0.850) and recall falls (0.800 → 0.600)" in lines[1]
    rows[3.0]["recall_dino"] = 0.75  # no longer monotone
    assert "recall is not monotone" in observations("dpmpp", rows, best_scales(rows))[1]
    tie = {1.0: _row(1.0, 1.0, 0.5, 0.5, 0.5), 2.0: _row(1.0, 1.0, 0.5, 0.5, 0.5)}
    assert set(best_scales(tie).values()) == {1.0}  # a tie goes to the smaller scale


def test_the_default_scale_verdict_names_what_it_is_best_for() -> None:
    from genpipe.scoring.guidance import default_verdict

    best = {"dpmpp": {"fid": 2.0, "fd_dino": 1.0, "recall_dino": 1.0}}
    line = default_verdict(best, 2.0)
    assert line == "sample_ddpm's default w = 2 is, for dpmpp, best for classifier FID (the best is at w = 1 for DINO Fréchet distance, DINO recall)."
    line = default_verdict({"ddim": {"fid": 3.0, "fd_dino": 1.0, "accuracy": 3.0}, "dpmpp": {"fid": 2.0}}, 2.0)
    assert line == ("sample_ddpm's default w = 2 is, for ddim, best for none of the scores (the best is at w = 1 for DINO Fréchet distance; "
                    "at w = 3 for classifier FID, the classifier's accuracy); for dpmpp, best for classifier FID.")
