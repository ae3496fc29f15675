"""`make dag`: Snakemake's mermaid rule graph (stdin), reduced, into docs/rulegraph.mmd and README.md.

    snakemake --rulegraph mermaid-js | python -m genpipe.pipeline.rulegraph docs/rulegraph.mmd README.md

The graph is transitively reduced: an edge a --> c is dropped when a longer path a --> ... --> c
exists (every stage reads the downloads: drawn once, to the first stages that need them), nodes
are named by their rule and each rule's edges go on one line, so ~20 rules stay readable. No
Graphviz needed; GitHub renders the ```mermaid block.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

START, END = "<!-- rulegraph:start -->", "<!-- rulegraph:end -->"
NODE = re.compile(r"^\s*(\w+)\[(\w+)\]\s*$")
EDGE = re.compile(r"^\s*(\w+) --> (\w+)\s*$")
RESERVED = {"end", "graph", "subgraph", "style", "class", "classdef", "click", "linkstyle", "flowchart", "default"}


def reduce(text: str) -> str:
    """Mermaid flowchart of the rules, without the edges a longer path implies."""
    lines = text.splitlines()
    name = {m[1]: m[2] for m in map(NODE.match, lines) if m}
    edges = [m.groups() for m in map(EDGE.match, lines) if m]
    succ: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)

    def reachable(a: str) -> set[str]:
        seen, todo = set(), [a]
        while todo:
            for n in succ.get(todo.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen

    def ref(i: str) -> str:
        return f"{i}[{name[i]}]" if name[i].lower() in RESERVED else name[i]

    out = ["flowchart TB"]
    for a in name:  # Snakemake's order: the target first, then depth first
        keep = [b for b in succ.get(a, ()) if not any(b in reachable(m) for m in succ[a] if m != b)]
        if keep:
            out.append(f"    {ref(a)} --> " + " & ".join(ref(b) for b in sorted(keep, key=name.get)))
    return "\n".join(out) + "\n"


def main(mmd: Path, readme: Path) -> None:
    graph = reduce(sys.stdin.read())
    mmd.write_text(graph)
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"rule-graph markers {START} … {END} missing in {readme}")
    block = f"{START}\n```mermaid\n{graph}```\n{END}"
    readme.write_text(re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S))
    print(f"wrote {mmd} and the rule graph in {readme}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
