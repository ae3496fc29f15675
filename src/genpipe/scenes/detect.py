"""Scene-parser training, decoding and metrics.

Targets (CenterNet, Zhou et al. 2019, with FCOS box distances, Tian et al. 2019), on the stride-4
grid of :mod:`genpipe.scenes.parser`: an object whose ink box has centre (cx, cy) owns the cell
``(floor(cy / 4), floor(cx / 4))``; the centre heatmap target is a Gaussian of ``sigma`` cells
around that cell (1 at it, max over objects), trained with the penalty-reduced focal loss
(alpha 2, beta 4) normalised by the number of objects. Cells whose Gaussian value is >= ``POS``
(the centre cell and its 4 neighbours for sigma 1) also learn the object's digit and colour
(cross-entropy) and its box as distances (l, t, r, b) / 4 from the cell centre (L1).

Decoding: sigmoid heatmap, peaks = cells equal to their 3x3 max-pool, kept when their value is at
least ``threshold``; each peak gives one :class:`Detection` with the argmax digit and colour read
at that cell and the box from its distances. Nothing in targets or decoding refers to the 2x2 cells
of the training scenes; training also moves each object independently (``shift_prob``) so that
no layout prior is learnt.

Metrics match predictions to true objects greedily by score (IoU >= 0.5, box only, each object
and each prediction used once); box mAP uses torchmetrics' ``MeanAveragePrecision`` with labels
``digit * 7 + colour`` (70 classes: a box counts only with the right digit and colour).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from genpipe.scenes.parser import N_COLOURS, N_DIGITS, STRIDE, ParserConfig, SceneParser, to_input

POS = 0.5  # Gaussian value from which a cell learns class and box (centre + 4 neighbours at sigma 1)
MAX_DETECTIONS = 10  # per image, highest scores first


@dataclass(frozen=True)
class Detection:
    """One parsed object: digit 0..9, colour index into ``COLOURS``, ink box, centre confidence."""

    digit: int
    colour: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive
    score: float

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass(frozen=True)
class Truth:
    """Ground-truth objects of a batch of scenes, slots -1 where absent (the scenes file's arrays)."""

    digits: np.ndarray  # (N, K) int
    colours: np.ndarray  # (N, K) int
    boxes: np.ndarray  # (N, K, 4) int, x1/y1 exclusive

    def objects(self, i: int) -> list[tuple[int, int, np.ndarray]]:
        return [(int(self.digits[i, k]), int(self.colours[i, k]), self.boxes[i, k]) for k in range(self.digits.shape[1]) if self.digits[i, k] >= 0]


# ----------------------------------------------------------------------------- targets and loss


def make_targets(truth: Truth, size: int, sigma: float) -> dict[str, torch.Tensor]:
    """Dense targets on the (size/4)^2 grid: heat (B, G, G), owner mask, digit, colour, box (B, 4, G, G)."""
    b, k = truth.digits.shape
    g = size // STRIDE
    centres = (np.arange(g) + 0.5) * STRIDE  # cell-centre pixel coordinates
    heat = np.zeros((b, g, g), np.float32)
    best = np.zeros((b, g, g), np.float32)  # Gaussian value of the owning object
    pos = np.zeros((b, g, g), bool)
    digit = np.zeros((b, g, g), np.int64)
    colour = np.zeros((b, g, g), np.int64)
    box = np.zeros((b, 4, g, g), np.float32)
    ii, jj = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
    for n in range(b):
        for s in range(k):
            if truth.digits[n, s] < 0:
                continue
            x0, y0, x1, y1 = (float(v) for v in truth.boxes[n, s])
            ci = min(int((y0 + y1) / 2 // STRIDE), g - 1)
            cj = min(int((x0 + x1) / 2 // STRIDE), g - 1)
            gauss = np.exp(-((ii - ci) ** 2 + (jj - cj) ** 2) / (2 * sigma**2)).astype(np.float32)
            heat[n] = np.maximum(heat[n], gauss)
            own = (gauss >= POS) & (gauss > best[n])
            best[n] = np.where(own, gauss, best[n])
            pos[n] |= own
            digit[n][own] = truth.digits[n, s]
            colour[n][own] = truth.colours[n, s]
            px, py = centres[jj], centres[ii]
            ltrb = np.stack([px - x0, py - y0, x1 - px, y1 - py]) / STRIDE  # (4, G, G)
            box[n][:, own] = ltrb[:, own]
    return {k_: torch.from_numpy(v) for k_, v in dict(heat=heat, pos=pos, digit=digit, colour=colour, box=box).items()}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, summed and divided by the number of peaks."""
    logits, target = logits.float(), target.float()
    p = torch.sigmoid(logits)
    is_peak = target >= 1.0
    pos_term = -F.logsigmoid(logits) * (1 - p) ** alpha
    neg_term = -F.logsigmoid(-logits) * p**alpha * (1 - target) ** beta
    loss = torch.where(is_peak, pos_term, neg_term).sum()
    return loss / is_peak.sum().clamp(min=1)


def detection_loss(out: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor], box_weight: float) -> dict[str, torch.Tensor]:
    """heat (focal), cls (digit + colour cross-entropy) and box (L1 of l, t, r, b) losses and their sum."""
    heat = focal_loss(out["heat"], tgt["heat"])
    pos = tgt["pos"]  # (B, G, G)
    if pos.any():
        dig = out["digit"].float().permute(0, 2, 3, 1)[pos]  # (P, 10)
        col = out["colour"].float().permute(0, 2, 3, 1)[pos]  # (P, 7)
        cls = F.cross_entropy(dig, tgt["digit"][pos]) + F.cross_entropy(col, tgt["colour"][pos])
        box = F.l1_loss(out["box"].float().permute(0, 2, 3, 1)[pos], tgt["box"].permute(0, 2, 3, 1)[pos])
    else:
        cls = box = out["heat"].sum() * 0.0
    return {"loss": heat + cls + box_weight * box, "heat": heat, "cls": cls, "box": box}


# ----------------------------------------------------------------------------- augmentation


def _overlaps(a: np.ndarray, boxes: list[np.ndarray]) -> bool:
    return any(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3] for b in boxes)


def shift_objects(images: np.ndarray, masks: np.ndarray, truth: Truth, rng: np.random.Generator, prob: float) -> tuple[np.ndarray, Truth]:
    """Move each object of a scene (its mask's pixels) to a random place in the image, with ``prob``.

    A new place keeps the whole box inside the image and off the boxes already placed (a few tries,
    else the object stays). Returns new images and truth (copies).
    """
    images, boxes = images.copy(), truth.boxes.copy()
    size = images.shape[1]
    for n in np.flatnonzero(rng.random(len(images)) < prob):
        slots = [s for s in range(truth.digits.shape[1]) if truth.digits[n, s] >= 0]
        canvas = np.zeros_like(images[n])
        placed: list[np.ndarray] = []
        for s in slots:
            x0, y0, x1, y1 = (int(v) for v in truth.boxes[n, s])
            dx = dy = 0
            for _ in range(5):
                cx, cy = int(rng.integers(-x0, size - x1 + 1)), int(rng.integers(-y0, size - y1 + 1))
                if not _overlaps(np.array([x0 + cx, y0 + cy, x1 + cx, y1 + cy]), placed):
                    dx, dy = cx, cy
                    break
            obj = np.where((masks[n] == s + 1)[:, :, None], images[n], 0)[y0:y1, x0:x1]
            region = canvas[y0 + dy : y1 + dy, x0 + dx : x1 + dx]
            np.maximum(region, obj, out=region)
            boxes[n, s] = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
            placed.append(boxes[n, s])
        images[n] = canvas
    return images, Truth(truth.digits, truth.colours, boxes)


def corrupt(images: np.ndarray, truth: Truth, rng: np.random.Generator, empty_prob: float, noise_prob: float, noise_max: float) -> tuple[np.ndarray, Truth]:
    """Blank a share ``empty_prob`` of the images (no objects); add uniform noise in [0, a) to ``noise_prob``, a ~ U(0, noise_max)."""
    images, digits, colours = images.copy(), truth.digits.copy(), truth.colours.copy()
    empty = rng.random(len(images)) < empty_prob
    images[empty] = 0
    digits[empty] = colours[empty] = -1
    noisy = np.flatnonzero(rng.random(len(images)) < noise_prob)
    if len(noisy):
        amp = rng.random(len(noisy)) * noise_max * 255
        noise = rng.random((len(noisy), *images.shape[1:])) * amp[:, None, None, None]
        images[noisy] = np.clip(images[noisy] + noise, 0, 255).astype(np.uint8)
    return images, Truth(digits, colours, truth.boxes)


# ----------------------------------------------------------------------------- decoding


@torch.no_grad()
def decode(out: dict[str, torch.Tensor], threshold: float, max_detections: int = MAX_DETECTIONS) -> list[list[Detection]]:
    """Peaks of the sigmoid heatmap (3x3 max-pool) at or above ``threshold`` -> detections per image."""
    heat = torch.sigmoid(out["heat"].float())  # (B, G, G)
    peak = heat == F.max_pool2d(heat[:, None], 3, 1, 1)[:, 0]
    keep = peak & (heat >= threshold)
    digit = out["digit"].argmax(1)  # (B, G, G)
    colour = out["colour"].argmax(1)
    box = out["box"].float()  # (B, 4, G, G)
    g = heat.shape[-1]
    size = g * STRIDE
    result: list[list[Detection]] = []
    for n in range(heat.shape[0]):
        ii, jj = torch.nonzero(keep[n], as_tuple=True)
        scores = heat[n, ii, jj]
        order = torch.argsort(scores, descending=True, stable=True)[:max_detections]
        dets = []
        for i, j, s in zip(ii[order].tolist(), jj[order].tolist(), scores[order].tolist()):
            px, py = (j + 0.5) * STRIDE, (i + 0.5) * STRIDE
            l, t, r, b = (STRIDE * v for v in box[n, :, i, j].tolist())
            xyxy = (max(px - l, 0.0), max(py - t, 0.0), min(px + r, float(size)), min(py + b, float(size)))
            dets.append(Detection(int(digit[n, i, j]), int(colour[n, i, j]), xyxy, float(s)))
        result.append(dets)
    return result


@torch.no_grad()
def parse(model: SceneParser, images: np.ndarray, threshold: float = 0.3, batch_size: int = 256) -> list[list[Detection]]:
    """Objects in each uint8 image (N, 64, 64, 3), batched, in eval mode: a list of detections per image."""
    was_training = model.training
    model.eval()
    result: list[list[Detection]] = []
    for i in range(0, len(images), batch_size):
        result += decode(model(to_input(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])))), threshold)
    model.train(was_training)
    return result


# ----------------------------------------------------------------------------- matching and metrics


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a (P, 4) and b (T, 4), x1/y1 exclusive -> (P, T)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match(dets: list[Detection], true_boxes: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy matching by descending score: for each true box, the index of its detection or -1."""
    true_boxes = np.asarray(true_boxes).reshape(-1, 4)
    assigned = np.full(len(true_boxes), -1)
    if not dets or not len(true_boxes):
        return assigned
    ious = iou(np.array([d.box for d in dets]), true_boxes)
    for p in sorted(range(len(dets)), key=lambda k: -dets[k].score):
        cand = np.where(assigned < 0, ious[p], -1.0)
        t = int(np.argmax(cand))
        if cand[t] >= iou_threshold:
            assigned[t] = p
    return assigned


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else float(a / b)


def detection_metrics(dets: list[list[Detection]], truth: Truth, iou_threshold: float = 0.5, object_mask: np.ndarray | None = None, with_map: bool = True) -> dict[str, Any]:
    """Per-object accuracy, count accuracy, presence precision/recall, box mAP; confusion counts.

    ``object_mask`` (N, K) restricts the per-object figures to some true objects (e.g. held-out
    pairs); the image-level figures (count, precision, mAP) use every object then too.
    """
    n, k = truth.digits.shape
    sel = truth.digits >= 0 if object_mask is None else object_mask & (truth.digits >= 0)
    digit_cm = np.zeros((N_DIGITS + 1, N_DIGITS + 1), np.int64)  # index 10 = none (missed / false positive)
    colour_cm = np.zeros((N_COLOURS + 1, N_COLOURS + 1), np.int64)
    n_obj = correct = digit_ok = colour_ok = found = matched_preds = n_preds = count_ok = 0
    for i in range(n):
        slots = [s for s in range(k) if truth.digits[i, s] >= 0]
        assigned = match(dets[i], truth.boxes[i, slots], iou_threshold)
        n_preds += len(dets[i])
        matched_preds += int((assigned >= 0).sum())
        count_ok += len(dets[i]) == len(slots)
        for s, p in zip(slots, assigned):
            if not sel[i, s]:
                continue
            td, tc = int(truth.digits[i, s]), int(truth.colours[i, s])
            n_obj += 1
            pd_, pc = (dets[i][p].digit, dets[i][p].colour) if p >= 0 else (N_DIGITS, N_COLOURS)
            digit_cm[td, pd_] += 1
            colour_cm[tc, pc] += 1
            found += p >= 0
            digit_ok += pd_ == td
            colour_ok += pc == tc
            correct += pd_ == td and pc == tc
        if object_mask is None:
            for p in sorted(set(range(len(dets[i]))) - set(assigned.tolist())):
                digit_cm[N_DIGITS, dets[i][p].digit] += 1
                colour_cm[N_COLOURS, dets[i][p].colour] += 1
    m: dict[str, Any] = {
        "images": n,
        "objects": n_obj,
        "object_accuracy": _ratio(correct, n_obj),  # matched (IoU >= 0.5) with the right digit and colour
        "digit_accuracy": _ratio(digit_ok, n_obj),
        "colour_accuracy": _ratio(colour_ok, n_obj),
        "object_accuracy_given_found": _ratio(correct, found),
        "count_accuracy": _ratio(count_ok, n),
        "presence_recall": _ratio(found, n_obj),
        "presence_precision": _ratio(matched_preds, n_preds),
        "detections_per_image": _ratio(n_preds, n),
    }
    if with_map:
        m.update(box_map(dets, truth))
    return m | {"confusion": {"digit": digit_cm.tolist(), "colour": colour_cm.tolist()}}


def box_map(dets: list[list[Detection]], truth: Truth) -> dict[str, float]:
    """torchmetrics MeanAveragePrecision (faster-coco-eval backend), labels digit * 7 + colour."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type="bbox", box_format="xyxy", backend="faster_coco_eval")
    preds, targets = [], []
    for i, d in enumerate(dets):
        keep = truth.digits[i] >= 0
        preds.append(
            {
                "boxes": torch.tensor([x.box for x in d], dtype=torch.float32).reshape(-1, 4),
                "scores": torch.tensor([x.score for x in d], dtype=torch.float32),
                "labels": torch.tensor([x.digit * N_COLOURS + x.colour for x in d], dtype=torch.int64),
            }
        )
        targets.append(
            {
                "boxes": torch.from_numpy(truth.boxes[i][keep].astype(np.float32)).reshape(-1, 4),
                "labels": torch.from_numpy((truth.digits[i][keep].astype(np.int64) * N_COLOURS + truth.colours[i][keep])),
            }
        )
    metric.update(preds, targets)
    r = metric.compute()
    return {"map_50": float(r["map_50"]), "map_50_95": float(r["map"]), "map_75": float(r["map_75"])}


def false_positive_metrics(dets: list[list[Detection]]) -> dict[str, Any]:
    """On images with no object: share of images with any detection, detections per image, top score."""
    counts = np.array([len(d) for d in dets])
    top = max((x.score for d in dets for x in d), default=0.0)
    return {"images": len(dets), "false_positive_rate": float((counts > 0).mean()), "detections_per_image": float(counts.mean()), "max_score": float(top)}


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainData:
    images: np.ndarray  # (N, 64, 64, 3) uint8
    masks: np.ndarray  # (N, 64, 64) uint8
    truth: Truth


def _lr(step: int, total: int, warmup: int, lr: float) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def train(
    cfg: ParserConfig,
    data: TrainData,
    val: tuple[np.ndarray, Truth] | None,
    p: dict[str, Any],
    log: Any = None,
) -> tuple[SceneParser, list[dict[str, Any]], dict[str, Any]]:
    """Train a parser with AdamW + warmup/cosine; returns the model, curve rows (one per epoch) and timing.

    ``p`` holds the train_scene_parser params: epochs, batch_size, lr, weight_decay, warmup_steps,
    sigma, box_weight, shift_prob, empty_prob, noise_prob, noise_max, threshold, precision, seed.
    """
    torch.manual_seed(p["seed"])
    model = SceneParser(cfg).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    rng = np.random.default_rng(p["seed"])
    n = len(data.images)
    bs = p["batch_size"]
    steps_per_epoch = max(n // bs, 1)  # a train set smaller than one batch still takes a step
    total = steps_per_epoch * p["epochs"]
    bf16 = p["precision"] == "bf16"
    rows: list[dict[str, Any]] = []
    step, seen, t_train, cpu_train = 0, 0, 0.0, 0.0
    for epoch in range(1, p["epochs"] + 1):
        model.train()
        perm = rng.permutation(n)
        sums = {"loss": 0.0, "heat": 0.0, "cls": 0.0, "box": 0.0}
        t0, c0 = time.perf_counter(), time.process_time()
        for b in tqdm(range(steps_per_epoch), desc=f"epoch {epoch}", mininterval=2, leave=False):
            idx = np.sort(perm[b * bs : (b + 1) * bs])
            tr = Truth(data.truth.digits[idx], data.truth.colours[idx], data.truth.boxes[idx])
            imgs, tr = shift_objects(data.images[idx], data.masks[idx], tr, rng, p["shift_prob"])
            imgs, tr = corrupt(imgs, tr, rng, p["empty_prob"], p["noise_prob"], p["noise_max"])
            tgt = make_targets(tr, imgs.shape[1], p["sigma"])
            for group in opt.param_groups:
                group["lr"] = _lr(step, total, p["warmup_steps"], p["lr"])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(to_input(torch.from_numpy(imgs)))
            losses = detection_loss(out, tgt, p["box_weight"])
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            opt.step()
            for key in sums:
                sums[key] += float(losses[key].detach())
            step += 1
            seen += len(idx)
        t_train += time.perf_counter() - t0
        cpu_train += time.process_time() - c0
        row: dict[str, Any] = {"epoch": epoch, "step": step, **{f"train_{k}": round(v / max(steps_per_epoch, 1), 6) for k, v in sums.items()}}
        if val is not None:
            vm = detection_metrics(parse(model, val[0], p["threshold"]), val[1], with_map=False)
            row |= {"val_object_accuracy": round(vm["object_accuracy"] or 0.0, 6), "val_count_accuracy": round(vm["count_accuracy"] or 0.0, 6)}
        rows.append(row)
        if log:
            log(row)
    model.eval()
    return model, rows, {
        "train_seconds": round(t_train, 2),
        "train_cpu_seconds": round(cpu_train, 2),  # CPU time of the process: wall time on a free core at 1 thread
        "train_images_per_second": round(seen / max(t_train, 1e-9), 1),
        "steps": step,
    }


def to_truth(digits: np.ndarray, colours: np.ndarray, boxes: np.ndarray) -> Truth:
    return Truth(np.asarray(digits).astype(np.int64), np.asarray(colours).astype(np.int64), np.asarray(boxes).astype(np.int64))


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flatten(dets: Iterable[list[Detection]]) -> list[Detection]:
    return [d for ds in dets for d in ds]
