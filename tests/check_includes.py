#!/usr/bin/env python3
"""Include-cycle check over the project's own C modules (cmf/, db/, crypto/, k8s/).

A module is X.c together with X.h, named by its path without extension (cmf/http/router). A module
depends on Y when X.c or X.h has `#include "Y.h"` (resolved as the compiler does for quotes: beside
the including file, then from the root, which the build passes as -I.). Includes of .c files,
of the module's own header and of headers outside those folders are not edges.

Prints every elementary cycle as `a -> b -> c -> a` and exits 1, or prints
`include-check: no cycle among N modules` and exits 0. Each cycle starts at the module the other
modules of its strongly connected group include most (ties by name): the hub that modules below
it include back, so the cycle reads from the hub down.
"""

import argparse
import os
import re
import sys

# The folders holding the project's own C sources; tests/, build/ and .cache/ are not among them.
SOURCE_DIRS = ("cmf", "db", "crypto", "k8s")

# Enumerating elementary cycles can blow up on a dense graph; past this many, stop and say so.
MAX_CYCLES = 1000

INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"\n]+)"', re.M)
# Comments (kept apart from string and character literals, which may hold "/*").
COMMENT_RE = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def strip_comments(text):
    """The text with comments blanked (newlines kept) and literals left alone."""

    def blank(m):
        s = m.group(0)
        if s.startswith("/"):
            return "\n" * s.count("\n") if s.startswith("/*") else ""
        return s

    return COMMENT_RE.sub(blank, text)


def find_modules(root):
    """Module name -> the files (X.c, X.h) that make it, paths relative to root with '/'."""
    modules = {}
    for top in SOURCE_DIRS:
        base = os.path.join(root, top)
        if not os.path.isdir(base):
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                ext = os.path.splitext(name)[1]
                if ext not in (".c", ".h"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
                modules.setdefault(rel[: -len(ext)], []).append(rel)
    return modules


def resolve(root, including, target):
    """The path (relative to root) a quoted include names, or None when it is not a file."""
    for base in (os.path.dirname(including), ""):
        rel = os.path.normpath(os.path.join(base, target)).replace(os.sep, "/")
        if not rel.startswith("../") and os.path.isfile(os.path.join(root, rel)):
            return rel
    return None


def build_graph(root, modules):
    """Module -> sorted list of the modules it includes."""
    graph = {}
    for mod, files in modules.items():
        deps = set()
        for rel in files:
            with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
                text = strip_comments(f.read())
            for target in INCLUDE_RE.findall(text):
                if not target.endswith(".h"):
                    continue
                path = resolve(root, rel, target)
                if path is None:
                    continue
                dep = path[: -len(".h")]
                if dep in modules and dep != mod:
                    deps.add(dep)
        graph[mod] = sorted(deps)
    return graph


def reach(graph, start, within):
    """The modules of `within` that `start` reaches through modules of `within`."""
    seen, todo = set(), [start]
    while todo:
        for d in graph[todo.pop()]:
            if d in within and d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def cycles(graph):
    """Every elementary cycle as a list of modules, starting at the module its group includes most."""
    back = {m: [] for m in graph}
    for m, deps in graph.items():
        for d in deps:
            back[d].append(m)
    # A module's group: the modules it reaches that reach it back (where all its cycles lie). Within a
    # group, the module its peers include most comes first: the hub that lower modules include back.
    group = {m: reach(graph, m, graph) & reach(back, m, graph) for m in graph}
    hub = {m: sum(1 for b in back[m] if b in group[m]) for m in graph}
    rank = {m: i for i, m in enumerate(sorted(graph, key=lambda m: (-hub[m], m)))}
    found = []
    for start in sorted(graph, key=rank.get):
        # Cycles through `start` over modules ranked after it (each cycle is found once, from its
        # earliest module) that `start` reaches and that reach `start` back.
        later = {m for m in graph if rank[m] > rank[start]}
        allowed = reach(graph, start, later) & reach(back, start, later)
        path, stack = [start], [iter(graph[start])]
        on_path = {start}
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                on_path.discard(path.pop())
                continue
            if nxt == start:
                found.append(path + [start])
                if len(found) >= MAX_CYCLES:
                    return found, True
            elif nxt in allowed and nxt not in on_path:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(graph[nxt]))
    return found, False


def main(argv=None):
    default_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=default_root,
                        help="the tree to check (default: this repository, %(default)s)")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)

    modules = find_modules(root)
    if not modules:
        print(f"include-check: no C modules under {', '.join(SOURCE_DIRS)} in {root}", file=sys.stderr)
        return 2
    found, truncated = cycles(build_graph(root, modules))
    if not found:
        print(f"include-check: no cycle among {len(modules)} modules")
        return 0
    for cycle in found:
        print(" -> ".join(cycle))
    more = f" (stopped after the first {MAX_CYCLES})" if truncated else ""
    print(f"include-check: {len(found)} cycle(s) among {len(modules)} modules{more}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
