"""The pipeline's own machinery, shared by every stage.

``params`` loads and validates params.yaml against the JSON Schema; ``io`` writes artifacts
atomically (safetensors + JSON config, TSV, JSON) and loads them checked; ``dagcheck`` compares the
Snakemake and DVC DAGs; ``dvcsync`` keeps the two runners agreeing on what is up to date;
``report`` assembles results/report/report.md and the README's results table; ``plots`` is the
matplotlib layer (Agg backend, byte-stable PNGs); ``trainloop`` is the training loop the trainers share
(progress, EMA, checkpoint/resume, the NaN stop, curves rows), over ``checkpoint``'s atomic states.
"""
