"""Text queries of grounded detection, made from each scene's ground truth.

Four kinds, each naming what it asks for (cells: row ``cell // 2``, column ``cell % 2``)::

    digit_colour  "a red 3"             every red 3
    colour        "a blue digit"        every blue object
    digit         "a 7"                 every 7
    position      "the 7 on the left"   every 7 in the left column (right; "at the top" / "at the bottom": rows)

A query whose targets are empty asks for an object the scene does not hold: the answer is nothing.
The vocabulary (:data:`VOCAB`) lists every query of every kind once, so the text tower encodes each
string once; :func:`match_matrix` says which objects of a scene each vocabulary entry names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from genpipe.scenes.dataset import COLOUR_NAMES, colour_index

KINDS = ("digit_colour", "colour", "digit", "position")
SIDES = ("left", "right", "top", "bottom")
_SIDE_TEXT = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
_TEXT_SIDE = {v: k for k, v in _SIDE_TEXT.items()}
_FORMS = '"a <colour> <digit>", "a <colour> digit", "a <digit>", "the <digit> on the left|on the right|at the top|at the bottom"'


class Query(NamedTuple):
    kind: str
    digit: int = -1    # -1: any digit
    colour: int = -1   # -1: any colour
    side: int = -1     # index into SIDES, -1: anywhere

    @property
    def text(self) -> str:
        if self.kind == "digit_colour":
            return f"a {COLOUR_NAMES[self.colour]} {self.digit}"
        if self.kind == "colour":
            return f"a {COLOUR_NAMES[self.colour]} digit"
        if self.kind == "digit":
            return f"a {self.digit}"
        return f"the {self.digit} {_SIDE_TEXT[SIDES[self.side]]}"


def _digit(word: str, text: str) -> int:
    if len(word) != 1 or not word.isdigit():
        raise ValueError(f"query {text!r}: unknown digit {word!r} (known: 0-9)")
    return int(word)


def _colour(word: str, text: str) -> int:
    try:
        return colour_index(word)
    except ValueError as exc:
        raise ValueError(f"query {text!r}: {exc}") from None


def parse_query(text: str) -> Query:
    """The query a text states; ValueError naming an unknown colour or digit, or the forms known."""
    words = text.strip().lower().split()
    if len(words) == 3 and words[0] == "a":
        if words[2] == "digit":
            return Query("colour", colour=_colour(words[1], text))
        return Query("digit_colour", digit=_digit(words[2], text), colour=_colour(words[1], text))
    if len(words) == 2 and words[0] == "a":
        if words[1] in COLOUR_NAMES:
            raise ValueError(f"query {text!r}: a colour alone is asked as \"a {words[1]} digit\"")
        return Query("digit", digit=_digit(words[1], text))
    if len(words) == 5 and words[0] == "the" and " ".join(words[2:]) in _TEXT_SIDE:
        return Query("position", digit=_digit(words[1], text), side=SIDES.index(_TEXT_SIDE[" ".join(words[2:])]))
    raise ValueError(f"query {text!r} has none of the forms {_FORMS}")


def vocabulary() -> tuple[Query, ...]:
    """Every query once: 70 digit+colour, 7 colour, 10 digit and 40 position queries."""
    n_c = len(COLOUR_NAMES)
    return (tuple(Query("digit_colour", d, c) for d in range(10) for c in range(n_c))
            + tuple(Query("colour", colour=c) for c in range(n_c))
            + tuple(Query("digit", digit=d) for d in range(10))
            + tuple(Query("position", digit=d, side=s) for d in range(10) for s in range(len(SIDES))))


VOCAB = vocabulary()
VOCAB_TEXT = tuple(q.text for q in VOCAB)
VOCAB_KIND = np.array([KINDS.index(q.kind) for q in VOCAB])      # (V,)
_VD = np.array([q.digit for q in VOCAB])
_VC = np.array([q.colour for q in VOCAB])
_VS = np.array([q.side for q in VOCAB])


def query_id(text: str) -> int:
    """Index of a query text in :data:`VOCAB` (parsed first, so a bad query stops naming its word)."""
    return VOCAB.index(parse_query(text))


def match_matrix(digits: np.ndarray, colours: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """(V, K) bool: vocabulary query v names object k (a scene's filled slots: digits >= 0)."""
    d, c, cell = digits[None], colours[None], cells[None]  # (1, K)
    vd, vc, vs = _VD[:, None], _VC[:, None], _VS[:, None]   # (V, 1)
    col, row = cell % 2, cell // 2
    side_ok = ((vs == -1) | ((vs == 0) & (col == 0)) | ((vs == 1) & (col == 1))
               | ((vs == 2) & (row == 0)) | ((vs == 3) & (row == 1)))
    return (d >= 0) & ((vd == -1) | (vd == d)) & ((vc == -1) | (vc == c)) & side_ok


def held_out_ids(pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """(V,) bool: the digit+colour queries of held-out (digit, colour) pairs."""
    held = np.zeros(len(VOCAB), bool)
    for d, c in pairs:
        held[VOCAB.index(Query("digit_colour", d, c))] = True
    return held


def _hard_absent(m: np.ndarray, kind: int, digits: np.ndarray, colours: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Absent queries of ``kind``, preferring those sharing a digit or a colour with an object (hard negatives)."""
    absent = (VOCAB_KIND == kind) & ~m.any(1) & allowed
    present_d, present_c = set(digits[digits >= 0].tolist()), set(colours[digits >= 0].tolist())
    hard = absent & (np.isin(_VD, list(present_d)) | np.isin(_VC, list(present_c)))
    return np.flatnonzero(hard if hard.any() else absent)


def sample_queries(digits: np.ndarray, colours: np.ndarray, cells: np.ndarray, n: int, mix: Sequence[float],
                   rng: np.random.Generator, allowed: np.ndarray) -> list[int]:
    """``n`` query ids for one scene: a kind drawn by ``mix`` (the four kinds, then absent), then a query
    of that kind naming at least one object (or, for absent, none), among the ``allowed`` ones."""
    m = match_matrix(digits, colours, cells)
    present = m.any(1) & allowed
    ids = []
    for _ in range(n):
        kind = int(rng.choice(len(mix), p=mix))
        if kind < len(KINDS):
            pool = np.flatnonzero(present & (VOCAB_KIND == kind))
        else:
            pool = _hard_absent(m, int(rng.integers(len(KINDS))), digits, colours, allowed)
        if len(pool) == 0:  # e.g. no allowed query of that kind: any present one
            pool = np.flatnonzero(present)
        ids.append(int(rng.choice(pool)))
    return ids


def eval_queries(digits: np.ndarray, colours: np.ndarray, cells: np.ndarray, rng: np.random.Generator) -> list[int]:
    """A test scene's queries: every query naming an object (each kind), then one absent query per kind."""
    m = match_matrix(digits, colours, cells)
    ids = np.flatnonzero(m.any(1)).tolist()
    allowed = np.ones(len(VOCAB), bool)
    for kind in range(len(KINDS)):
        pool = _hard_absent(m, kind, digits, colours, allowed)
        if len(pool):
            ids.append(int(rng.choice(pool)))
    return ids
