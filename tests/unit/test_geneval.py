"""GenEval-style scoring rules (genpipe.scenes.geneval) on hand-made detections and images."""

import numpy as np
import pytest

from genpipe.scenes.dataset import COLOUR_RGB, colour_index
from genpipe.scenes.detect import Detection
from genpipe.scenes.geneval import CATEGORIES, Prompt, prompt_from_caption, relation_holds, score, score_image

RED, GREEN, BLUE = colour_index("red"), colour_index("green"), colour_index("blue")


def det(digit, colour, x0=0, y0=0, w=10, h=10, score=0.9):
    return Detection(digit, colour, (float(x0), float(y0), float(x0 + w), float(y0 + h)), score)


def test_single_object_ignores_colour_but_colour_does_not():
    p = Prompt(((3, RED),))
    assert score_image([det(3, BLUE)], p) == {"single_object": True, "count": True, "colour": False}
    assert score_image([det(3, RED)], p) == {"single_object": True, "count": True, "colour": True}
    assert score_image([det(5, RED)], p) == {"single_object": False, "count": True, "colour": False}
    assert score_image([], p) == {"single_object": False, "count": False, "colour": False}


def test_count_is_exact():
    p = Prompt(((3, RED),))
    assert not score_image([det(3, RED), det(3, RED, 30, 30)], p)["count"]
    p3 = Prompt(((1, RED), (2, GREEN), (3, BLUE)))
    assert score_image([det(7, RED), det(8, RED), det(9, RED)], p3)["count"]  # count ignores classes


def test_two_and_three_objects_need_each_digit_as_a_multiset():
    p = Prompt(((3, RED), (3, BLUE)))
    assert not score_image([det(3, RED)], p)["two_objects"]  # one detected 3 cannot serve both
    assert score_image([det(3, GREEN), det(3, GREEN, 30)], p)["two_objects"]  # any colour
    p3 = Prompt(((1, RED), (2, GREEN), (3, BLUE)))
    assert score_image([det(3, RED), det(1, RED), det(2, RED)], p3)["three_objects"]
    assert not score_image([det(3, RED), det(1, RED), det(1, RED)], p3)["three_objects"]
    assert "two_objects" not in score_image([det(1, RED)], p3)


def test_colour_attribution_fails_on_swapped_colours_and_skips_same_colours():
    p = Prompt(((3, RED), (5, BLUE)))
    assert score_image([det(3, RED), det(5, BLUE, 30)], p)["colour_attribution"]
    swapped = score_image([det(3, BLUE), det(5, RED, 30)], p)
    assert swapped["two_objects"] and not swapped["colour_attribution"]
    assert "colour_attribution" not in score_image([], Prompt(((3, RED), (5, RED))))


def test_position_uses_box_centres_and_image_axes():
    left, right = det(3, RED, 0, 20), det(5, BLUE, 40, 20)
    assert score_image([right, left], Prompt(((3, RED), (5, BLUE)), "left_of"))["position"]
    assert not score_image([right, left], Prompt(((3, RED), (5, BLUE)), "right_of"))["position"]
    top, bottom = det(3, RED, 20, 0), det(5, BLUE, 20, 40)
    assert score_image([top, bottom], Prompt(((3, RED), (5, BLUE)), "above"))["position"]
    assert score_image([top, bottom], Prompt(((5, BLUE), (3, RED)), "below"))["position"]
    assert not score_image([top], Prompt(((3, RED), (5, BLUE)), "above"))["position"]  # object missing
    assert not relation_holds(det(3, RED, 0), det(5, RED, 4), "left_of", margin=5)


def test_position_locates_same_digit_objects_by_colour():
    red3, blue3 = det(3, RED, 40, 20, score=0.5), det(3, BLUE, 0, 20, score=0.9)
    assert score_image([red3, blue3], Prompt(((3, BLUE), (3, RED)), "left_of"))["position"]
    assert not score_image([red3, blue3], Prompt(((3, RED), (3, BLUE)), "left_of"))["position"]


def test_score_aggregates_shares_presence_and_overall():
    prompts = [Prompt(((3, RED),)), Prompt(((3, RED),)), Prompt(((1, RED), (2, BLUE)), "left_of")]
    dets = [[det(3, RED)], [det(3, GREEN)], [det(1, RED, 0), det(2, GREEN, 40)]]
    s = score(dets, prompts)
    assert set(s) == set(CATEGORIES) | {"overall", "presence"}
    assert s["single_object"] == {"accuracy": 1.0, "n": 2}
    assert s["colour"] == {"accuracy": 0.5, "n": 2}
    assert s["two_objects"] == {"accuracy": 1.0, "n": 1}
    assert s["colour_attribution"] == {"accuracy": 0.0, "n": 1}
    assert s["position"] == {"accuracy": 1.0, "n": 1}
    assert s["three_objects"] == {"accuracy": None, "n": 0}
    assert s["count"] == {"accuracy": 1.0, "n": 3}
    assert s["presence"] == {"accuracy": 2 / 4, "n": 4}
    assert s["overall"] == pytest.approx((1 + 0.5 + 1 + 0 + 1 + 1) / 6)
    with pytest.raises(ValueError, match="2 images"):
        score(dets[:2], prompts)


def test_prompt_from_caption_reads_every_default_template():
    assert prompt_from_caption("a red 3") == Prompt(((3, RED),))
    assert prompt_from_caption("a red 3 and a blue 5") == Prompt(((3, RED), (5, BLUE)))
    assert prompt_from_caption("a red 3 to the left of a blue 5").relation == "left_of"
    assert prompt_from_caption("a red 3 to the right of a blue 5").relation == "right_of"
    assert prompt_from_caption("a red 3 above a blue 5").relation == "above"
    assert prompt_from_caption("a red 3 below a blue 5").relation == "below"
    assert prompt_from_caption("a red 3, a green 1 and a blue 5").objects == ((3, RED), (1, GREEN), (5, BLUE))
    with pytest.raises(ValueError, match="default template"):
        prompt_from_caption("three red things")
    with pytest.raises(ValueError, match="relation"):
        Prompt(((3, RED),), "left_of")


def _paint(image, glyph, colour, x, y):
    h, w = glyph.shape
    image[y : y + h, x : x + w] = np.maximum(image[y : y + h, x : x + w], glyph[:, :, None] * COLOUR_RGB[colour])


def _oracle(image, digit_of_colour):
    """Detections read off a hand-made image: one per colour present, box = that colour's ink."""
    out = []
    for colour, digit in digit_of_colour.items():
        ink = (image == 255 * COLOUR_RGB[colour]).all(axis=2) & (image > 0).any(axis=2)
        ys, xs = np.nonzero(ink)
        if len(xs):
            out.append(Detection(digit, colour, (xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0), 1.0))
    return out


def test_rules_on_hand_made_images():
    glyph = np.zeros((20, 12), np.uint8)  # a synthetic "1": a vertical bar of ink
    glyph[2:18, 5:8] = 255
    image = np.zeros((64, 64, 3), np.uint8)
    _paint(image, glyph, RED, 40, 5)  # red glyph top right
    _paint(image, glyph, BLUE, 3, 40)  # blue glyph bottom left
    dets = _oracle(image, {RED: 1, BLUE: 7})
    assert dets[0].box == (45, 7, 48, 23)
    assert score_image(dets, prompt_from_caption("a red 1 to the right of a blue 7"))["position"]
    assert score_image(dets, prompt_from_caption("a red 1 above a blue 7"))["position"]
    assert not score_image(dets, prompt_from_caption("a red 1 below a blue 7"))["position"]
    assert score_image(dets, prompt_from_caption("a blue 7 to the left of a red 1"))["position"]
    assert not score_image(dets, prompt_from_caption("a blue 1 and a red 7"))["colour_attribution"]
    assert score_image(dets, prompt_from_caption("a blue 7 and a red 1"))["colour_attribution"]
    blank = np.zeros((64, 64, 3), np.uint8)
    assert score(
        [_oracle(blank, {RED: 1})], [prompt_from_caption("a red 1")]
    )["single_object"]["accuracy"] == 0.0
