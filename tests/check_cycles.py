#!/usr/bin/python3
"""Link-level cycles between a component's object files, and between its folders.

Usage: check_cycles.py [--replace OLD.o=NEW.o]
                       --component NAME [--names REGEX] OBJ... [--component ...]

Object A depends on object B when a symbol A leaves undefined is defined by B (nm). Within each
component (libkeyplane, the CLI, one plugin, the kit), the objects' dependency graph must be
acyclic, and so must the graph of their source folders (core/src/base, core/src/plugin, ...).
Each strongly connected component of more than one node is printed with one edge path that
closes it, and the exit status is 1.

--names REGEX: every global symbol the component's objects define must match REGEX (the naming
rule of docs/conventions.md: kp_/kp__ in libkeyplane, kpk_ in the kit, kp_<plugin>_ in a plugin,
...), so a helper that escapes its component's prefix is reported with the object defining it.

--layers SPEC: the folders' allowed dependencies, "a= b=a c=a,b" (folder=folders it may use):
every folder edge must be allowed, so a call that goes up or sideways is reported even when it
closes no cycle; a folder missing from SPEC is reported too.

--public LIB: every global symbol of the component named kp_ followed by a letter (the public
prefix) must be exported by the shared library LIB; internal helpers take kp__.

--replace swaps one object for another before the check: the selftest swaps a real low-layer
object for a build of the same source with one call added to a higher layer, and expects a cycle.
"""

import os
import re
import subprocess
import sys


def symbols(obj):
    """(defined, undefined) global symbol sets of one object file."""
    out = subprocess.run(["nm", "-P", obj], check=True, capture_output=True, text=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if name.startswith(("__odr_asan", "__asan", "__ubsan", "__sanitizer")):
            continue  # the sanitizers' own bookkeeping symbols, not the code's
        if kind == "U":
            undefined.add(name)
        elif kind.isupper() and kind not in ("U", "W", "V"):
            defined.add(name)
    return defined, undefined


def source_name(obj):
    """core/src/base/error.c for .../keyplane-objects.dir/src/base/error.c.o."""
    path = obj[:-2] if obj.endswith(".o") else obj
    marker = ".dir/"
    if marker in path:
        path = path.split(marker, 1)[1]
    parts = [p for p in os.path.normpath(path).split(os.sep) if p not in ("..", "__")]
    return "/".join(parts)


def sccs(nodes, edges):
    """Tarjan's algorithm, iterative: the strongly connected components of the graph."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    n = stack.pop()
                    on_stack.discard(n)
                    comp.append(n)
                    if n == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def cycle_path(comp, edges):
    """One closed path inside a strongly connected component, for the report."""
    members = set(comp)
    start = comp[0]
    path, seen = [start], {start}
    node = start
    while True:
        nxt = next((n for n in sorted(edges[node]) if n in members), None)
        if nxt is None:
            return path
        path.append(nxt)
        if nxt in seen:
            return path[path.index(nxt):]
        seen.add(nxt)
        node = nxt


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", "-P", lib], check=True,
                         capture_output=True, text=True).stdout
    return {line.split()[0].split("@")[0] for line in out.splitlines() if line.strip()}


def check(name, objs, names, layers=None, public=None, replace=None):
    table = {}
    for obj in objs:
        new = next((n for old, n in (replace or {}).items() if obj.endswith(old)), None)
        if new is not None:  # the stand-in keeps the place (and folder) of the object it replaces
            print(f"{name}: {source_name(obj)} replaced by {source_name(new)}")
        table[source_name(obj)] = symbols(new or obj)
    problems = 0
    if names is not None:
        rule = re.compile(names)
        for src, (defined, _) in sorted(table.items()):
            bad = sorted(sym for sym in defined if not rule.match(sym))
            if bad:
                problems += 1
                print(f"FAIL: {name}: {src} defines {', '.join(bad[:8])}"
                      f"{' ...' if len(bad) > 8 else ''}, outside the names /{names}/")
    if public is not None:
        exports = exported(public)
        for src, (defined, _) in sorted(table.items()):
            hidden = sorted(sym for sym in defined
                            if re.match(r"kp_[a-z]", sym) and sym not in exports)
            if hidden:
                problems += 1
                print(f"FAIL: {name}: {src} defines {', '.join(hidden[:8])} with the public kp_ "
                      f"prefix but {os.path.basename(public)} does not export it (use kp__)")
    owner = {}
    for src, (defined, _) in table.items():
        for sym in defined:
            owner.setdefault(sym, src)
    edges, why = {}, {}
    for src, (_, undefined) in table.items():
        for sym in sorted(undefined):
            dst = owner.get(sym)
            if dst is not None and dst != src:
                edges.setdefault(src, set()).add(dst)
                why.setdefault((src, dst), sym)
    for comp in sccs(table.keys(), edges):
        problems += 1
        path = cycle_path(comp, edges)
        steps = " -> ".join(
            f"{a} ({why[(a, b)]})" for a, b in zip(path, path[1:])) + f" -> {path[-1]}"
        print(f"FAIL: {name}: objects in a cycle: {', '.join(comp)}")
        print(f"      for example {steps}")
    folders, fwhy = {}, {}
    for (src, dst), sym in why.items():
        a, b = os.path.dirname(src), os.path.dirname(dst)
        if a != b:
            folders.setdefault(a, set()).add(b)
            fwhy.setdefault((a, b), f"{src} uses {sym} of {dst}")
    fnodes = {os.path.dirname(s) for s in table}
    for comp in sccs(fnodes, folders):
        problems += 1
        path = cycle_path(comp, folders)
        print(f"FAIL: {name}: folders in a cycle: {', '.join(comp)}")
        for a, b in zip(path, path[1:]):
            print(f"      {fwhy[(a, b)]}")
    if layers is not None:
        allowed = {}
        for part in layers.split():
            folder, _, deps = part.partition("=")
            allowed[folder.strip()] = {d.strip() for d in deps.split(",") if d.strip()}
        for folder in sorted(fnodes):
            if not any(folder == f or folder.endswith("/" + f) for f in allowed):
                problems += 1
                print(f"FAIL: {name}: folder {folder} has no place in the layers")
        for (a, b), reason in sorted(fwhy.items()):
            key = next((f for f in allowed if a == f or a.endswith("/" + f)), None)
            if key is None:
                continue
            if not any(b == d or b.endswith("/" + d) for d in allowed[key]):
                problems += 1
                print(f"FAIL: {name}: layer {a} may use only "
                      f"{', '.join(sorted(allowed[key])) or 'nothing'}: {reason}")
    nedges = sum(len(v) for v in edges.values())
    if problems == 0:
        print(f"{name}: {len(table)} objects, {nedges} edges, "
              f"{len(fnodes)} folder(s): acyclic{'; names follow the rule' if names else ''}"
              f"{'; layers as declared' if layers else ''}"
              f"{'; public names exported' if public else ''}")
    return problems


def main(argv):
    components, replace, cur = [], {}, None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--names", "--layers", "--public") and cur is not None:
            cur[{"--names": 2, "--layers": 3, "--public": 4}[arg]] = argv[i + 1]
            i += 2
            continue
        if arg == "--component":
            cur = [argv[i + 1], [], None, None, None]
            components.append(cur)
            i += 2
            continue
        if arg == "--replace":
            old, new = argv[i + 1].split("=", 1)
            replace[old] = new
            i += 2
            continue
        if cur is None:
            sys.exit(f"usage: {os.path.basename(sys.argv[0])} --component NAME OBJ... (got '{arg}')")
        if arg:
            cur[1].append(arg)
        i += 1
    if not components:
        sys.exit("check_cycles: no --component given")
    problems = 0
    for name, objs, names, layers, public in components:
        if not objs:
            sys.exit(f"check_cycles: component {name} has no objects")
        problems += check(name, objs, names, layers, public, replace)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
