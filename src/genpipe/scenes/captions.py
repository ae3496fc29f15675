"""Captions of scenes: templates, canonical and random captions, hard negatives.

An object phrase is ``"a <colour> <digit>"`` (``"a red 3"``). Templates are listed per object
count (``{"one": [...], "two": [...], "three": [...]}``, params ``make_scenes.templates``) and use
the fields ``{o1} {o2} {o3}`` (objects in slot order) and, for two objects, ``{left} {right}``
(only when the objects lie in different cell columns; left = smaller x-centre of the ink box) and
``{top} {bottom}`` (only when in different cell rows; top = smaller y-centre). Relations are
read from the cells, so they describe the cell-aligned splits; test_shifted's canonical captions
use no relation.

A template *applies* to a scene when its object count matches and all its fields apply. The
canonical caption is the first applicable template (the first one with the defaults); a random
caption draws uniformly among the applicable ones (per scene and per epoch).
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np

from genpipe.scenes.dataset import SceneObject

COUNT_KEYS = ("one", "two", "three")  # templates' keys for 1, 2, 3 objects
FIELDS = {
    "one": ("o1",),
    "two": ("o1", "o2", "left", "right", "top", "bottom"),
    "three": ("o1", "o2", "o3"),
}
RELATIONS = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}  # field -> its opposite
DEFAULT_TEMPLATES: dict[str, list[str]] = {
    "one": ["{o1}"],
    "two": [
        "{o1} and {o2}",
        "{left} to the left of {right}",
        "{right} to the right of {left}",
        "{top} above {bottom}",
        "{bottom} below {top}",
    ],
    "three": ["{o1}, {o2} and {o3}"],
}


class TemplateError(ValueError):
    """A template uses a field that does not exist for its object count, or none applies."""


def template_fields(template: str) -> list[str]:
    """The field names of a template, in order (``"{left} to the left of {right}"`` -> left, right)."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise TemplateError(f"template {template!r}: {exc}") from None


def check_templates(templates: Mapping[str, Sequence[str]]) -> None:
    """Every count has at least one template and every field is known for its count.

    Raises :class:`TemplateError` naming the template and the unknown field.
    """
    for key in COUNT_KEYS:
        if not templates.get(key):
            raise TemplateError(f"templates.{key}: needs at least one template")
        for t in templates[key]:
            for f in template_fields(t):
                if f not in FIELDS[key]:
                    raise TemplateError(
                        f"template {t!r} (templates.{key}): unknown field {{{f}}} "
                        f"(known for {key} object(s): {', '.join('{' + k + '}' for k in FIELDS[key])})"
                    )
    extra = sorted(set(templates) - set(COUNT_KEYS))
    if extra:
        raise TemplateError(f"templates: unknown key {extra[0]!r} (known: {', '.join(COUNT_KEYS)})")


def _centre(box: Sequence[int], axis: int) -> float:
    return (box[axis] + box[axis + 2]) / 2


def field_objects(objects: Sequence[SceneObject]) -> dict[str, SceneObject]:
    """Field name -> object for the fields that apply to these objects (relations for two only)."""
    out = {f"o{j + 1}": o for j, o in enumerate(objects)}
    if len(objects) == 2:
        a, b = objects
        if a.cell % 2 != b.cell % 2:  # different columns
            out["left"], out["right"] = (a, b) if _centre(a.box, 0) <= _centre(b.box, 0) else (b, a)
        if a.cell // 2 != b.cell // 2:  # different rows
            out["top"], out["bottom"] = (a, b) if _centre(a.box, 1) <= _centre(b.box, 1) else (b, a)
    return out


def _count_key(objects: Sequence[SceneObject]) -> str:
    if not 1 <= len(objects) <= len(COUNT_KEYS):
        raise ValueError(f"a scene has 1-{len(COUNT_KEYS)} objects, got {len(objects)}")
    return COUNT_KEYS[len(objects) - 1]


def _check_known(template: str, key: str) -> list[str]:
    names = template_fields(template)
    for f in names:
        if f not in FIELDS[key]:
            raise TemplateError(f"template {template!r}: unknown field {{{f}}} for {key} object(s)")
    return names


def applicable_templates(objects: Sequence[SceneObject], templates: Mapping[str, Sequence[str]]) -> list[str]:
    """The templates for this object count whose fields all apply (in params order)."""
    key = _count_key(objects)
    have = field_objects(objects)
    out = [t for t in templates[key] if all(f in have for f in _check_known(t, key))]
    if not out:
        raise TemplateError(f"no template of templates.{key} applies to {[o.phrase for o in objects]}")
    return out


def render(template: str, objects: Sequence[SceneObject]) -> str:
    """Fill a template with the objects' phrases; TemplateError naming an unknown or inapplicable field."""
    key = _count_key(objects)
    names = _check_known(template, key)
    have = field_objects(objects)
    missing = [f for f in names if f not in have]
    if missing:
        raise TemplateError(f"template {template!r}: field {{{missing[0]}}} does not apply to {[o.phrase for o in objects]}")
    return template.format(**{f: have[f].phrase for f in names})


def canonical_caption(objects: Sequence[SceneObject], templates: Mapping[str, Sequence[str]] = DEFAULT_TEMPLATES) -> str:
    """The first applicable template, filled."""
    return render(applicable_templates(objects, templates)[0], objects)


def random_template(objects: Sequence[SceneObject], templates: Mapping[str, Sequence[str]], rng: np.random.Generator) -> str:
    """A template drawn uniformly among the applicable ones."""
    options = applicable_templates(objects, templates)
    return options[int(rng.integers(len(options)))]


def random_caption(objects: Sequence[SceneObject], templates: Mapping[str, Sequence[str]], rng: np.random.Generator) -> str:
    """A caption from a template drawn uniformly among the applicable ones (seeded by ``rng``)."""
    return render(random_template(objects, templates, rng), objects)


def meaning(objects: Sequence[SceneObject], roles: Mapping[str, SceneObject]) -> tuple:
    """What a caption asserts: the multiset of (digit, colour) and the object in each relation role.

    ``roles`` maps the relation fields a template uses (left, right, top, bottom) to the object
    its text puts there. Captions with the same meaning describe the same scenes ("a red 3 and a
    blue 7" = "a blue 7 and a red 3"); a hard negative must have a different one.
    """
    objs = sorted(Counter((o.digit, o.colour) for o in objects).items())
    rel = sorted((f, (o.digit, o.colour)) for f, o in roles.items() if f in RELATIONS)
    return tuple(objs), tuple(rel)


def _roles(template: str, objects: Sequence[SceneObject]) -> dict[str, SceneObject]:
    have = field_objects(objects)
    return {f: have[f] for f in template_fields(template) if f in RELATIONS}


def hard_negatives(objects: Sequence[SceneObject], template: str) -> list[str]:
    """Captions that differ from ``render(template, objects)`` in meaning by one change.

    For two or three objects: for each pair of objects, the caption with their colours swapped and
    the one with their digits swapped; for a relation template, also the relation reversed (the
    objects' phrases exchanged). A change that keeps the meaning (equal colours, a swap between
    objects that a set caption cannot tell apart, identical objects) is skipped, so every
    negative really differs. One object: no negatives ([]). Order: pairs in slot order, colour
    swap, digit swap, then the reversal; duplicates removed.
    """
    if len(objects) < 2:
        return []
    caption = render(template, objects)
    truth = meaning(objects, _roles(template, objects))
    candidates: list[tuple[str, tuple]] = []
    for i, j in combinations(range(len(objects)), 2):
        a, b = objects[i], objects[j]
        for swapped in (
            (a._replace(colour=b.colour), b._replace(colour=a.colour)),
            (a._replace(digit=b.digit), b._replace(digit=a.digit)),
        ):
            changed = list(objects)
            changed[i], changed[j] = swapped
            candidates.append((render(template, changed), meaning(changed, _roles(template, changed))))
    roles = _roles(template, objects)
    if roles:  # the relation reversed: each role's object moves to the opposite role
        names = template_fields(template)
        reversed_template = template.format(**{f: "{" + RELATIONS.get(f, f) + "}" for f in names})
        reversed_roles = {f: roles[RELATIONS[f]] for f in roles}
        candidates.append((render(reversed_template, objects), meaning(objects, reversed_roles)))
    out: list[str] = []
    for text, sense in candidates:
        if sense != truth and text != caption and text not in out:
            out.append(text)
    return out
