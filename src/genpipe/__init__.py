"""genpipe: a reproducible Snakemake + DVC pipeline for a deep-learning course."""

__version__ = "0.1.0"
