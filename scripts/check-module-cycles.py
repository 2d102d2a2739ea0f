#!/usr/bin/env python3
"""Fails when two modules of one crate import each other, directly or through others.

Reads every crate's `src/` (bins and `#[cfg(test)]` blocks aside), takes an edge a -> b for
each `crate::b` path or `super::b` sibling that module a names outside comments, and
reports each strongly connected component of more than one module. Run by `make lint`.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
SKIPPED = {"target", ".deps", ".git"}


def crate_roots():
    for manifest in sorted(ROOT.rglob("Cargo.toml")):
        if SKIPPED & set(manifest.parts):
            continue
        if (manifest.parent / "src").is_dir():
            yield manifest.parent / "src"


def module_name(src, path):
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return "::".join(parts)


def source_without_tests_and_comments(path):
    text = path.read_text()
    test_block = re.search(r"#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{", text)
    if test_block:
        text = text[: test_block.start()]
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def owning_module(path_segments, modules):
    """The longest prefix of `crate::a::b::c` that names a module of the crate."""
    for length in range(len(path_segments), 0, -1):
        candidate = "::".join(path_segments[:length])
        if candidate in modules:
            return candidate
    return None


def related(a, b):
    """A module and its ancestors or descendants are one unit for this check."""
    return a == b or a.startswith(b + "::") or b.startswith(a + "::")


def import_edges(modules):
    edges = {name: set() for name in modules}
    for name, text in modules.items():
        if not name:
            continue
        targets = set()
        for group in re.finditer(r"crate::\{([^}]*)\}", text):
            for item in group.group(1).split(","):
                targets.add(owning_module(item.strip().split("::"), modules))
        for path in re.finditer(r"crate::((?:\w+::)*\w+)", text):
            targets.add(owning_module(path.group(1).split("::"), modules))
        parent = "::".join(name.split("::")[:-1])
        for sibling in re.finditer(r"\bsuper::(\w+)", text):
            targets.add(f"{parent}::{sibling.group(1)}" if parent else sibling.group(1))
        edges[name] = {t for t in targets if t and t in modules and not related(t, name)}
    return edges


def cycles(edges):
    """Tarjan's strongly connected components of more than one module."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def main():
    failures = 0
    for src in crate_roots():
        modules = {
            module_name(src, path): source_without_tests_and_comments(path)
            for path in src.rglob("*.rs")
            if "bin" not in path.relative_to(src).parts
        }
        edges = import_edges(modules)
        for component in cycles(edges):
            failures += 1
            print(f"{src.parent.relative_to(ROOT)}: modules import each other: {', '.join(component)}")
            for module in component:
                print(f"    {module} -> {', '.join(sorted(edges[module] & set(component)))}")
    if failures:
        sys.exit(1)
    print("module imports: no cycle")


if __name__ == "__main__":
    main()
