"""Grounded detection (issue 15): a small Grounding DINO on frozen scene-ViT tokens and frozen CLIP text states."""
