#!/usr/bin/env python3
"""Prints the (mangled) names of every function callgrind saw executed in
the given output files, first-seen order, one per line: a symbol-ordering
file for lld (scripts/build-release.sh)."""
import re
import sys

FN = re.compile(r"^(c?fn)=\((\d+)\)(?: (.+))?$")


def executed(path):
    names = {}
    for line in open(path, encoding="utf-8", errors="replace"):
        m = FN.match(line.rstrip("\n"))
        if not m:
            continue
        kind, ident, name = m.groups()
        if name:
            names[ident] = name
        # `fn=` opens the costs of a function that ran; `cfn=` only names
        # a callee (which gets its own `fn=` block if it ran).
        if kind == "fn" and ident in names:
            yield names[ident]


def main():
    seen = set()
    for path in sys.argv[1:]:
        for name in executed(path):
            if name not in seen:
                seen.add(name)
                print(name)


if __name__ == "__main__":
    main()
