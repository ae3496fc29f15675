"""DINO self-distillation (method.py) and its multi-crop augmentation (crops.py)."""
