#!/usr/bin/env python3
"""Fails when a source file's non-test code is longer than 800 lines.

Counts the lines of every `src/**/*.rs` before its `#[cfg(test)]` module; test folders
(`tests/`) are not counted. A file past the limit mixes concerns: split it by concern
rather than raising the limit. Run by `make lint`.
"""
import pathlib
import re
import sys

LIMIT = 800
ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
SKIPPED = {"target", ".deps", ".git", "tests"}
TEST_MODULE = re.compile(r"^#\[cfg\(test\)\]\s*\n\s*(pub\s+)?mod\s+\w+\s*\{", re.MULTILINE)


def code_lines(path):
    text = path.read_text()
    test_module = TEST_MODULE.search(text)
    if test_module:
        text = text[: test_module.start()]
    return text.count("\n")


def main():
    too_long = []
    for path in sorted(ROOT.rglob("*.rs")):
        relative = path.relative_to(ROOT)
        if SKIPPED & set(relative.parts) or "src" not in relative.parts:
            continue
        lines = code_lines(path)
        if lines > LIMIT:
            too_long.append((relative, lines))
    for relative, lines in too_long:
        print(f"{relative}: {lines} lines of non-test code (limit {LIMIT}): split it by concern")
    if too_long:
        sys.exit(1)
    print(f"source files: none over {LIMIT} lines")


if __name__ == "__main__":
    main()
