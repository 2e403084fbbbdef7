#!/usr/bin/env python3
"""The module graph of src/ must point one way: every `crate::<module>` reference between
top-level modules (outside `#[cfg(test)]` code and comments) must be an edge listed below.
A new edge is added here on purpose, with the graph in docs/DESIGN.md; a back edge (one that
closes a cycle) is refused even if listed. Also: no source file over MAX_LINES lines before its
tests. Exit 1 on any violation. usage: scripts/module_graph.py [SRC_DIR]"""
import os
import re
import sys

# module -> the modules it may use. Leaves first.
ALLOWED = {
    "contract": set(),
    "metrics": set(),
    "workspace": set(),
    "audit": {"contract"},
    "sandbox": {"contract"},
    "runtimes": {"contract", "sandbox"},
    "net": {"audit", "sandbox"},
    "secrets": {"net"},
    "upstream": set(),
    "policy": {"contract", "audit", "net", "secrets", "workspace", "upstream"},
    "auth": {"policy"},
    "counters": {"policy"},
    "service": {"contract", "metrics", "audit", "sandbox", "runtimes", "net", "secrets", "policy", "auth", "workspace", "upstream"},
    "mcp": {"contract", "policy", "runtimes", "auth", "service", "workspace"},
}
MAX_LINES = 400


def code_of(text):
    """The text before the file's tests, without comments."""
    body = text.split("#[cfg(test)]")[0]
    return re.sub(r"//[^\n]*", "", body), body.count("\n")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    problems = []
    edges = {m: set() for m in ALLOWED}
    for root, _, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)
            top = rel.split(os.sep)[0].removesuffix(".rs")
            with open(path, encoding="utf-8") as f:
                code, lines = code_of(f.read())
            if lines > MAX_LINES and not name.endswith("tests.rs"):
                problems.append(f"{rel}: {lines} lines before its tests (at most {MAX_LINES})")
            if top in ("lib", "main") or name.endswith("tests.rs"):
                continue
            if top not in ALLOWED:
                problems.append(f"{rel}: module `{top}` is not in scripts/module_graph.py's list")
                continue
            used = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", code))
            for block in re.findall(r"use\s+crate::\{([^;]*)\}", code, re.S):
                used |= set(re.findall(r"(?:^|[,{\s])([a-z_][a-z0-9_]*)(?=::|\s*[,}]|$)", block))
            for target in sorted(used & set(ALLOWED) - {top}):
                edges[top].add(target)
                if target not in ALLOWED[top]:
                    problems.append(f"{rel}: `{top}` uses `{target}`, an edge the graph does not allow")
    # The allowed edges themselves must be acyclic.
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for n in sorted(ALLOWED[m]):
            if state.get(n) == "open":
                problems.append("cycle in the allowed graph: " + " -> ".join(stack + [n]))
            elif n not in state:
                visit(n, stack + [n])
        state[m] = "done"

    for m in sorted(ALLOWED):
        if m not in state:
            visit(m, [m])
    for p in problems:
        print(p)
    count = sum(len(v) for v in edges.values())
    print(f"module graph: {len(ALLOWED)} modules, {count} edges in use, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
