"""GenEval-style scoring of generated scenes (Ghosh et al. 2023), judged by the scene parser.

Each image was generated from a :class:`Prompt`: the objects asked for, ``(digit, colour)`` pairs
(1-3, colour an index into ``COLOURS``), and for two objects optionally a relation "object 1
<relation> object 2". The parser's detections of the image decide each category below; a
category's score is the share of its images that are right, over the images whose prompt belongs
to it (``n``). "Present as a multiset" means that distinct detections can be assigned to the asked
items, so "a red 3 and a blue 3" needs two detected 3s.

=====================  ======================================  ==========================================
category               prompts it covers                       an image is right when
=====================  ======================================  ==========================================
single_object          1 object                                a detection has the asked digit (any colour)
two_objects            2 objects                               both asked digits are present as a multiset
three_objects          3 objects                               all three asked digits are present (multiset)
count                  every prompt                            the number of detections equals the number
                                                               of objects asked
colour                 1 object                                a detection has the asked digit in the
                                                               asked colour
colour_attribution     2 objects of different colours          both (digit, colour) pairs are present as
                                                               a multiset (a swap of colours fails)
position               2 objects with a relation               both objects are located and the relation
                                                               holds between their box centres
=====================  ======================================  ==========================================

Position: each asked object is located by the highest-scoring unused detection with its digit and
colour, else the highest-scoring unused one with its digit; "left_of" holds when object 1's centre
x is smaller than object 2's by more than ``margin`` pixels, "right_of" larger, "above" / "below"
the same on y (image rows grow downwards). ``presence`` is per asked object: the share of asked
(digit, colour) objects present as a multiset over all prompts. ``overall`` is the mean of the
seven category scores that have images (GenEval's overall score).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from genpipe.scenes.dataset import COLOUR_NAMES, colour_index
from genpipe.scenes.detect import Detection

CATEGORIES = ("single_object", "two_objects", "three_objects", "count", "colour", "colour_attribution", "position")
RELATIONS = ("left_of", "right_of", "above", "below")
_N_OBJECTS = {"single_object": 1, "two_objects": 2, "three_objects": 3}


@dataclass(frozen=True)
class Prompt:
    """What an image was asked to show: objects ``((digit, colour), ...)`` and an optional relation."""

    objects: tuple[tuple[int, int], ...]
    relation: str | None = None  # objects[0] <relation> objects[1]

    def __post_init__(self) -> None:
        if not 1 <= len(self.objects) <= 3:
            raise ValueError(f"a prompt asks for 1-3 objects, got {len(self.objects)}")
        if self.relation is not None and (self.relation not in RELATIONS or len(self.objects) != 2):
            raise ValueError(f"relation {self.relation!r}: must be one of {', '.join(RELATIONS)} and needs exactly 2 objects")


_PHRASE = r"an? (\w+) (\d)"
_CAPTIONS = [
    (re.compile(rf"^{_PHRASE}$"), None),
    (re.compile(rf"^{_PHRASE} and {_PHRASE}$"), None),
    (re.compile(rf"^{_PHRASE} to the left of {_PHRASE}$"), "left_of"),
    (re.compile(rf"^{_PHRASE} to the right of {_PHRASE}$"), "right_of"),
    (re.compile(rf"^{_PHRASE} above {_PHRASE}$"), "above"),
    (re.compile(rf"^{_PHRASE} below {_PHRASE}$"), "below"),
    (re.compile(rf"^{_PHRASE}, {_PHRASE} and {_PHRASE}$"), None),
]


def prompt_from_caption(caption: str) -> Prompt:
    """The prompt of a caption written with the default templates ("a red 3 to the left of a blue 5")."""
    text = caption.strip().lower()
    for pattern, relation in _CAPTIONS:
        m = pattern.match(text)
        if m:
            g = m.groups()
            return Prompt(tuple((int(g[i + 1]), colour_index(g[i])) for i in range(0, len(g), 2)), relation)
    raise ValueError(f"caption {caption!r} does not follow a default template (objects are 'a <colour> <digit>', colours: {', '.join(COLOUR_NAMES)})")


def _contains(found: Sequence[Any], asked: Sequence[Any]) -> bool:
    have = Counter(found)
    return all(have[k] >= v for k, v in Counter(asked).items())


def _locate(dets: list[Detection], objects: Sequence[tuple[int, int]]) -> list[Detection | None]:
    """Each asked object's detection: best unused with digit and colour, else best unused with digit."""
    order = sorted(range(len(dets)), key=lambda k: -dets[k].score)
    used: set[int] = set()
    out: list[Detection | None] = []
    for digit, colour in objects:
        pick = next((k for k in order if k not in used and dets[k].digit == digit and dets[k].colour == colour), None)
        if pick is None:
            pick = next((k for k in order if k not in used and dets[k].digit == digit), None)
        if pick is not None:
            used.add(pick)
        out.append(None if pick is None else dets[pick])
    return out


def relation_holds(a: Detection, b: Detection, relation: str, margin: float = 0.0) -> bool:
    """Whether ``a <relation> b`` holds between the box centres (y grows downwards)."""
    (ax, ay), (bx, by) = a.centre, b.centre
    return {"left_of": ax + margin < bx, "right_of": ax > bx + margin, "above": ay + margin < by, "below": ay > by + margin}[relation]


def score_image(dets: list[Detection], prompt: Prompt, margin: float = 0.0) -> dict[str, bool]:
    """The categories this prompt belongs to, each True when the image is right (module docstring)."""
    digits = [d.digit for d in dets]
    pairs = [(d.digit, d.colour) for d in dets]
    asked_digits = [d for d, _ in prompt.objects]
    n = len(prompt.objects)
    out: dict[str, bool] = {}
    for cat, k in _N_OBJECTS.items():
        if n == k:
            out[cat] = _contains(digits, asked_digits)
    out["count"] = len(dets) == n
    if n == 1:
        out["colour"] = _contains(pairs, prompt.objects)
    if n == 2 and prompt.objects[0][1] != prompt.objects[1][1]:
        out["colour_attribution"] = _contains(pairs, prompt.objects)
    if prompt.relation is not None:
        a, b = _locate(dets, prompt.objects)
        out["position"] = a is not None and b is not None and relation_holds(a, b, prompt.relation, margin)
    return out


def present_objects(dets: list[Detection], prompt: Prompt) -> int:
    """How many asked (digit, colour) objects are present as a multiset."""
    have = Counter((d.digit, d.colour) for d in dets)
    return sum(min(have[k], v) for k, v in Counter(prompt.objects).items())


def score(detections: Sequence[list[Detection]], prompts: Sequence[Prompt], margin: float = 0.0) -> dict[str, Any]:
    """GenEval categories over images: ``{category: {"accuracy": share or None, "n": images}}``,
    plus ``presence`` (per asked object) and ``overall`` (mean of the categories with images)."""
    if len(detections) != len(prompts):
        raise ValueError(f"{len(detections)} images' detections but {len(prompts)} prompts")
    right = dict.fromkeys(CATEGORIES, 0)
    total = dict.fromkeys(CATEGORIES, 0)
    present = asked = 0
    for dets, prompt in zip(detections, prompts):
        for cat, ok in score_image(dets, prompt, margin).items():
            total[cat] += 1
            right[cat] += ok
        present += present_objects(dets, prompt)
        asked += len(prompt.objects)
    out: dict[str, Any] = {c: {"accuracy": right[c] / total[c] if total[c] else None, "n": total[c]} for c in CATEGORIES}
    scored = [out[c]["accuracy"] for c in CATEGORIES if total[c]]
    out["overall"] = sum(scored) / len(scored) if scored else None
    out["presence"] = {"accuracy": present / asked if asked else None, "n": asked}
    return out
