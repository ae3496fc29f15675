"""Scoring of generated images, shared by every generator (rule group evaluate).

``evaluation`` computes features in a trained classifier's space, FID/KID with the real-vs-real
floor and generation accuracy; ``samples`` is the samples.npz format every generator writes.
"""
