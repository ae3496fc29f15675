"""open_clip's own CLIP, built from a params config, saved so that open_clip itself loads it.

A run directory holds ``open_clip_config.json`` (``{"model_cfg": ..., "preprocess_cfg": ...}``, the
format open_clip's ``save_for_hf`` writes) and ``model.safetensors`` (the state dict, written by
:func:`genpipe.pipeline.io.save_tensors` for deterministic bytes, the same JSON embedded as its one
metadata key). open_clip loads such a directory natively::

    model = open_clip.create_model("local-dir:results/train_clip/plain")
    tokenizer = open_clip.get_tokenizer("local-dir:results/train_clip/plain")

:func:`load` does the same with checks: the config beside the weights must equal the one inside
them, every tensor must have the shape the config builds, and an ``expected`` config names each
key that differs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F

from genpipe.pipeline import io

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "model.safetensors"
IMAGE_SIZE = 64
VOCAB_SIZE = 49408  # open_clip's BPE vocabulary (SimpleTokenizer): start 49406, end 49407, pad 0
# Scenes are RGB in [0, 1] on black; mapped to [-1, 1] (stored as open_clip's preprocess_cfg).
PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def model_cfg(p: dict[str, Any]) -> dict[str, Any]:
    """open_clip's model config (``embed_dim``, ``vision_cfg``, ``text_cfg``) from ``train_clip.model``."""
    v, t = p["vision"], p["text"]
    if v["tower"] == "resnet":  # open_clip's ModifiedResNet: a list of layers selects it
        r = v["resnet"]
        vision = {"image_size": IMAGE_SIZE, "layers": list(r["layers"]), "width": r["width"], "head_width": r["head_width"]}
    elif v["tower"] == "vit":
        r = v["vit"]
        vision = {"image_size": IMAGE_SIZE, "patch_size": r["patch_size"], "width": r["width"], "layers": r["layers"],
                  "head_width": r["width"] // r["heads"], "mlp_ratio": r["mlp_ratio"]}
    else:
        raise ValueError(f"train_clip.model.vision.tower: {v['tower']!r} is neither 'resnet' nor 'vit'")
    return {
        "embed_dim": p["embed_dim"],
        "vision_cfg": vision,
        "text_cfg": {"context_length": t["context_length"], "vocab_size": VOCAB_SIZE, "width": t["width"],
                     "heads": t["heads"], "layers": t["layers"], "mlp_ratio": t["mlp_ratio"]},
    }


def build(cfg: dict[str, Any]) -> open_clip.CLIP:
    """``open_clip.CLIP(**cfg)``: a ViT image tower and a causal text transformer."""
    return open_clip.CLIP(**cfg)


def tokenize(texts: list[str], context_length: int) -> torch.Tensor:
    """open_clip's BPE tokens (B, context_length); stops naming the first caption that does not fit."""
    tokens = open_clip.tokenize(texts, context_length=context_length + 1)  # one spare column
    full = tokens[:, -1] != 0  # open_clip truncates silently (the end token kept last)
    if bool(full.any()):
        raise ValueError(f"caption {texts[int(full.nonzero()[0])]!r} needs more than context_length={context_length} tokens")
    return tokens[:, :-1].contiguous()


def preprocess(images: torch.Tensor, size: int = IMAGE_SIZE, mean: Any = PREPROCESS["mean"], std: Any = PREPROCESS["std"]) -> torch.Tensor:
    """uint8 (B, H, W, 3) scenes -> normalised float (B, 3, size, size), bicubic when resized."""
    x = images.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def save(model: open_clip.CLIP, cfg: dict[str, Any], out: Path) -> None:
    """Write ``model.safetensors`` and ``open_clip_config.json`` (open_clip's local-dir format)."""
    full = {"model_cfg": cfg, "preprocess_cfg": PREPROCESS}
    io.save_tensors(out / WEIGHTS_NAME, model.state_dict(), full)
    io.write_json(out / CONFIG_NAME, full)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load(run_dir: str | os.PathLike[str], expected: dict[str, Any] | None = None) -> tuple[open_clip.CLIP, dict[str, Any]]:
    """The CLIP of a train_clip run (eval mode) and its open_clip model config.

    Raises :class:`genpipe.pipeline.io.ConfigMismatchError` naming the file and the key when the
    config beside the weights differs from the one inside them or from ``expected`` (a model
    config), or when a tensor's shape is not the one the config builds.
    """
    run_dir = Path(run_dir)
    weights, config_path = run_dir / WEIGHTS_NAME, run_dir / CONFIG_NAME
    state, full = io.load_state(weights, config_path)
    cfg = full["model_cfg"]
    if expected is not None:
        have, want = _flat(cfg), _flat(expected)
        bad = [f"{k}: expected {want.get(k)!r}, found {have.get(k)!r}" for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)]
        if bad:
            raise io.ConfigMismatchError(f"{config_path}: " + "; ".join(bad))
    model = build(cfg)
    ref = model.state_dict()
    missing = sorted(set(ref) - set(state))
    extra = sorted(set(state) - set(ref))
    wrong = [f"{k} {tuple(state[k].shape)} (the config builds {tuple(v.shape)})" for k, v in ref.items() if k in state and state[k].shape != v.shape]
    if missing or extra or wrong:
        parts = ([f"missing {missing[:3]}"] if missing else []) + ([f"unexpected {extra[:3]}"] if extra else []) + wrong[:3]
        raise io.ConfigMismatchError(f"{weights} does not match {config_path}: " + "; ".join(parts))
    model.load_state_dict(state)
    return model.eval(), cfg


def load_pretrained(model_name: str, path: str | None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Any open_clip checkpoint: ``open_clip.create_model(model_name, pretrained=path)``.

    ``model_name`` is a built-in (or registered) architecture with ``path`` its checkpoint file
    (.safetensors or open_clip's torch checkpoint), or ``local-dir:<dir>`` (path null). Returns the
    model (eval) and its preprocessing (``size``, ``mean``, ``std``, ``context_length``).
    """
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"clip pretrained checkpoint {path} (model {model_name}) does not exist")
    model = open_clip.create_model(model_name, pretrained=path, load_weights=True, require_pretrained=True)
    pp = model.visual.preprocess_cfg
    size = pp["size"] if isinstance(pp["size"], int) else pp["size"][0]
    ctx = open_clip.get_tokenizer(model_name).context_length
    return model.eval(), {"size": int(size), "mean": list(pp["mean"]), "std": list(pp["std"]), "context_length": int(ctx)}
