"""Outputs DVC does not cache (metrics, curves, small tables) must be in git, or a fresh clone + `dvc pull` lacks them."""

import subprocess


def test_every_uncached_out_is_committed_to_git(root):
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        uncached = sorted({str(o.def_path) for s in repo.index.stages for o in s.outs if not o.use_cache})
    assert len(uncached) > 20
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *uncached], cwd=root, capture_output=True, text=True).stdout.split()
    assert ignored == [], f"cache: false outputs that .gitignore hides from git (neither git nor the DVC remote would hold them): {ignored}"
