#!/usr/bin/env python3
"""Fails when source files of one crate import each other in a circle (ARCHITECTURE.md).

For every crate's `src/`, each `.rs` file is a module; an edge a -> b is drawn when a names a
path in b (`crate::x::y`, `super::y`, `self::y` in a `mod.rs`, or a `use` of those). A child
module using its parent (`super::`) is the normal downward-looking shape of Rust and counts only
when the parent also names something in the child beyond declaring it (`mod child;` and
`pub use child::...` re-exports are not edges: they are how a folder shows its contents).
Test modules (`#[cfg(test)] mod tests` blocks and `tests.rs` files) are left out: they look at
everything by design.

Usage: python3 .ci/import_cycles.py [crate-dir ...]   (default: every workspace member)
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = [
    "voldisefs-proto",
    "voldisefs-crypto",
    "voldisefs-store",
    "voldisefs-net",
    "voldisefs-node",
    "voldisefs-cli",
]


def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip_tests(text):
    """Drops `#[cfg(test)]` items (a module or function block) and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    while True:
        m = re.search(r"#\[cfg\(test\)\]", text[i:])
        if not m:
            out.append(text[i:])
            break
        start = i + m.start()
        out.append(text[i:start])
        brace = text.find("{", start)
        semi = text.find(";", start)
        if semi != -1 and (brace == -1 or semi < brace):
            i = semi + 1
            continue
        depth, j = 0, brace
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        i = j + 1
    return "".join(out)


def expand_uses(text):
    """Yields every path a file names: `use` trees flattened, plus inline `a::b::c` paths."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text, re.S):
        paths.extend(flatten(m.group(1).replace("\n", " ")))
    body = re.sub(r"\buse\s+[^;]+;", "", text, flags=re.S)
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", body):
        paths.append(m.group(1))
    return paths


def flatten(tree, prefix=""):
    tree = tree.strip()
    if "{" not in tree:
        return [prefix + p.strip().split(" as ")[0].strip() for p in tree.split(",") if p.strip()]
    head, _, rest = tree.partition("{")
    inner = rest[: rest.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p.strip():
            out.extend(flatten(p, prefix + head.strip()))
    return out


def resolve(path, here, is_mod_file, modules, exports):
    segs = path.split("::")
    if segs[0] == "crate":
        base, segs = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base = here
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
    else:
        return None
    target = base
    for s in segs:
        if target + (s,) in modules:
            target = target + (s,)
        elif (target, s) in exports:
            # A name the module re-exports (`pub use child::Name`): its defining file.
            return exports[(target, s)]
        else:
            break
    return target


def collect_exports(files, modules):
    """(module, name) -> module that defines it, for every `pub use` re-export of a child."""
    exports = {}
    for mod, path in files.items():
        with open(path, encoding="utf-8") as f:
            text = re.sub(r"//[^\n]*", "", f.read())
        is_mod_file = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", text, re.S):
            for p in flatten(m.group(1).replace("\n", " ")):
                name = p.split("::")[-1]
                full = p if p.split("::")[0] in ("crate", "super", "self") else "self::" + p
                t = resolve(full, mod, is_mod_file, modules, {})
                if t is not None and t != mod:
                    exports[(mod, name)] = t
    # Follow chains (lib re-exports what a mod.rs re-exports).
    for _ in range(4):
        for k, t in list(exports.items()):
            name = k[1]
            if (t, name) in exports:
                exports[k] = exports[(t, name)]
    return exports


def crate_cycles(crate):
    src = os.path.join(ROOT, crate, "src")
    files = {}
    for dirpath, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(dirpath, n)
                files[module_of(src, p)] = p
    modules = set(files)
    exports = collect_exports(files, modules)
    edges = {m: set() for m in modules}
    for mod, path in files.items():
        if mod and mod[-1] == "tests":
            continue
        with open(path, encoding="utf-8") as f:
            text = strip_tests(f.read())
        # `pub use child::x` re-exports and `mod child;` declare, they do not depend.
        text = re.sub(r"\bpub(\([^)]*\))?\s+use\s+(self::)?\w+::[^;]+;", "", text, flags=re.S)
        is_mod_file = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")
        for p in expand_uses(text):
            t = resolve(p, mod, is_mod_file, modules, exports)
            if t is None or t == mod:
                continue
            # An edge to an ancestor (the folder's mod.rs, the crate root) is how Rust reaches
            # shared items; it only matters if the ancestor reaches back, which the reverse
            # edge then shows.
            edges[mod].add(t)
    # A file using its own ancestors (the folder's mod.rs, the crate root) is how Rust reaches
    # a folder's shared items: not an edge. Everything else is.
    for m in edges:
        edges[m] = {t for t in edges[m] if t != m and m[: len(t)] != t}
    return find_cycles(edges)


def find_cycles(edges):
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
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
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            strong(v)
    return [(c, {m: sorted(edges[m] & set(c)) for m in c}) for c in sccs]


def main():
    crates = sys.argv[1:] or CRATES
    bad = False
    for crate in crates:
        for comp, inner in crate_cycles(crate):
            bad = True
            name = lambda m: "::".join(m) or "(crate root)"
            print(f"{crate}: import circle between {', '.join(sorted(map(name, comp)))}")
            for m, ts in sorted(inner.items()):
                print(f"    {name(m)} -> {', '.join(map(name, ts))}")
    if bad:
        sys.exit(1)
    print("no import circles between files")


if __name__ == "__main__":
    main()
