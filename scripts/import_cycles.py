#!/usr/bin/env python3
"""Lists import cycles between the files of src/ (the house rule: imports flow one way).

A file depends on another when it names a path into it: `use crate::a::b`, `crate::a::b::f(..)`,
`super::x`, `self::x` (test modules are skipped). A path is resolved to the longest prefix that is
a file (`src/a/b.rs` or `src/a/b/mod.rs`). Prints every strongly connected group of more than one
file, with one cycle in it, and exits 1 if there is any; exits 0 otherwise.

    python3 scripts/import_cycles.py [SRC_DIR]
"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
src = os.path.normpath(src)


def module_of(path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


files = {}
for d, _, names in os.walk(src):
    for n in names:
        if n.endswith(".rs"):
            p = os.path.join(d, n)
            files[module_of(p)] = p


def resolve(parts):
    for k in range(len(parts), 0, -1):
        if tuple(parts[:k]) in files:
            return tuple(parts[:k])
    return None


PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
deps = {m: set() for m in files}
for m, p in files.items():
    text = open(p, encoding="utf-8").read()
    text = text.split("#[cfg(test)]")[0]
    text = re.sub(r"//[^\n]*", "", text)
    for g in PATH.finditer(text):
        root, rest = g.group(1), g.group(2)
        names = [x for x in rest.split("::") if x and x != "{"]
        if root == "crate":
            parts = names
        elif root == "self":
            parts = list(m) + names
        else:
            parts = list(m[:-1]) + names
        # `use a::{b, c}`: the group lists children of the prefix.
        brace = text[g.end():g.end() + 400] if rest.endswith("{") or text[g.end():g.end() + 3].startswith("::{") else ""
        targets = [parts]
        if brace:
            inner = brace[brace.find("{") + 1:brace.find("}")]
            targets = [parts + [x.strip().split("::")[0]] for x in inner.split(",") if x.strip() and x.strip() != "self"] or [parts]
        for t in targets:
            r = resolve(t)
            if r and r != m and r != ():
                deps[m].add(r)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(deps[v]):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        sccs.append(comp)


sys.setrecursionlimit(10000)
for v in sorted(files):
    if v not in index:
        visit(v)

name = lambda m: "/".join(m) or "crate"
bad = [c for c in sccs if len(c) > 1]
for c in bad:
    members = set(c)
    # one cycle through the group, by walking until a node repeats
    start = sorted(c)[0]
    path, seen, v = [start], {start}, start
    while True:
        v = sorted(w for w in deps[v] if w in members)[0]
        if v in seen:
            path = path[path.index(v):] + [v]
            break
        path.append(v)
        seen.add(v)
    print(f"cycle among {len(c)} files: " + " -> ".join(name(x) for x in path))
sys.exit(1 if bad else 0)
