"""Each stage's code dependencies, derived from its script's imports (DESIGN.md, contract 3).

A stage depends on ``scripts/<stage>.py`` and on every ``src/genpipe`` module in that script's
import closure. The closure is read statically (``ast``: nothing is imported or run), follows
``import genpipe.x``, ``from genpipe.x import y`` and ``from genpipe.pkg import module`` at any
depth (imports inside functions count too), and leaves out what cannot change a result:

* package ``__init__.py`` files, which hold only a docstring (tests/unit/test_codedeps.py);
* ``genpipe.pipeline.params``: loading and validating params.yaml; the values themselves are
  tracked per stage as params.

The Snakefile reads :data:`CODE`-style mappings from :class:`StageCode`; ``dvc.yaml``'s ``deps:``
lists are generated from the same computation::

    python -m genpipe.pipeline.codedeps --write   # make deps: rewrite dvc.yaml's code deps
    python -m genpipe.pipeline.codedeps --check   # exit 1 naming each stale stage
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

PACKAGE = "genpipe"
SRC = Path("src")
SCRIPTS = Path("scripts")
NOT_DEPS = frozenset({"src/genpipe/pipeline/params.py"})  # validation only: reruns nothing


def _module_file(dotted: str, root: Path) -> Path | None:
    """``genpipe.ddpm.diffusion`` -> src/genpipe/ddpm/diffusion.py (None for a package or a name)."""
    f = root / SRC / (dotted.replace(".", "/") + ".py")
    return f if f.is_file() else None


def imported_modules(path: Path, root: Path) -> set[str]:
    """genpipe module files (relative to ``root``) that ``path`` imports directly."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == PACKAGE:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]  # a name may be a submodule
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
        else:
            continue
        for name in names:
            f = _module_file(name, root)
            if f is not None:
                found.add(f.relative_to(root).as_posix())
    return found


@functools.lru_cache(maxsize=None)
def _closure(rel: str, root: Path) -> frozenset[str]:
    seen: set[str] = set()
    todo = [rel]
    while todo:
        for dep in imported_modules(root / todo.pop(), root) - seen:
            seen.add(dep)
            todo.append(dep)
    return frozenset(seen)


def stage_code(stage: str, root: str | Path = ".") -> list[str]:
    """``scripts/<stage>.py`` then the sorted library modules it uses: the stage's code deps."""
    root = Path(root).resolve()
    script = (SCRIPTS / f"{stage}.py").as_posix()
    if not (root / script).is_file():
        raise FileNotFoundError(f"stage {stage!r}: {script} does not exist (one script per stage, named as the stage)")
    return [script] + sorted(_closure(script, root) - NOT_DEPS)


class StageCode(Mapping[str, list[str]]):
    """``{stage: code deps}`` for every script in ``scripts/``, computed on first use."""

    def __init__(self, root: str | Path = ".") -> None:
        self.root = Path(root).resolve()

    def __getitem__(self, stage: str) -> list[str]:
        return stage_code(stage, self.root)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(p.stem for p in (self.root / SCRIPTS).glob("*.py")))

    def __len__(self) -> int:
        return sum(1 for _ in self)


# dvc.yaml: a stage header (2 spaces), its `deps:` and the code entries that open that list.
_STAGE = re.compile(r"^  ([A-Za-z_]\w*):\s*$")
_DEPS = re.compile(r"^(\s+)deps:\s*$")
_CODE = re.compile(r"^(\s+)- (?:scripts|src/genpipe)/\S+\.py\s*$")


def rewrite_dvc_yaml(text: str, code: Mapping[str, list[str]]) -> tuple[str, list[str]]:
    """``text`` with each stage's leading code deps replaced by ``code[stage]``; also the stages changed."""
    lines, out, changed, stage = text.splitlines(keepends=True), [], [], None
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if m := _STAGE.match(line):
            stage = m.group(1)
        elif _DEPS.match(line) and stage is not None:
            old, indent = [], None
            while i < len(lines) and (c := _CODE.match(lines[i])):
                indent = indent or c.group(1)
                old.append(lines[i].split("- ", 1)[1].strip())
                i += 1
            if indent is None:  # no code deps yet: indent like the first entry of the list
                nxt = lines[i] if i < len(lines) else ""
                indent = nxt[: len(nxt) - len(nxt.lstrip())] or "  "
            new = code[stage]
            out.extend(f"{indent}- {dep}\n" for dep in new)
            if old != new:
                changed.append(stage)
    return "".join(out), changed


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Derive each stage's code deps from its script's imports")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps in place")
    mode.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml's code deps are stale")
    mode.add_argument("--show", metavar="STAGE", help="print one stage's code deps")
    ap.add_argument("--root", default=".")
    a = ap.parse_args(argv)
    code = StageCode(a.root)
    if a.show:
        print("\n".join(code[a.show]))
        return 0
    path = Path(a.root) / "dvc.yaml"
    text, changed = rewrite_dvc_yaml(path.read_text(), code)
    if a.check:
        if changed:
            print(f"{path}: code deps are stale for {', '.join(changed)}; run `make deps`", file=sys.stderr)
            return 1
        print(f"{path}: code deps match the scripts' imports")
        return 0
    if changed:
        from genpipe.pipeline.io import write_text

        write_text(path, text)
    print(f"{path}: rewrote the code deps of {len(changed)} stage(s){': ' + ', '.join(changed) if changed else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
