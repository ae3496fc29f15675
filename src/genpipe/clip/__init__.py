"""CLIP (open_clip) trained on the scenes, with and without NegCLIP hard negatives, and its binding benchmark."""
