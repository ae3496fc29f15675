"""genpipe: a reproducible Snakemake + DVC pipeline for a deep-learning course.

One subpackage per concern, mirroring the workflow's rule groups (``workflow/rules/<group>.smk``):
``pipeline`` is the machinery every stage shares (params, atomic I/O, the Snakemake/DVC
agreement, the report); ``data`` the verified datasets; ``models`` the networks as the course
writes them; then one package per experiment group (``classify``, ``vae``, ``ddpm``, ``scoring``,
``robustness``). Imports point down: experiments use ``pipeline``, ``data`` and ``models``, never
each other's internals except through the shared layer. Package ``__init__`` files hold only a
docstring, so a stage's code dependencies are exactly the modules its script imports.
"""

__version__ = "0.1.0"
