#!/usr/bin/env python3
"""Counts the fixed sleeps in the end-to-end tests (tests/) and sums their literal durations.

A fixed sleep is a `sleep(...)` call site (std::thread or tokio) whose length is written in the
test; polling loops sleep too, but they end as soon as their condition holds, so the call sites
inside `wait_for`-style helpers are counted apart. A sleep whose length is not a literal (a
constant, a variable) is listed with its expression and left out of the sum.

Usage: scripts/test-sleeps.py [-v] [DIR]   (DIR defaults to tests/)
"""
import pathlib
import re
import sys

CALL = re.compile(r"\bsleep\((.*)\)")
LIT = re.compile(r"^(?:std::time::)?Duration::from_(secs|millis)\((\d+)\)$")
SCALE = {"secs": 1.0, "millis": 0.001}

verbose = "-v" in sys.argv[1:]
args = [a for a in sys.argv[1:] if a != "-v"]
root = pathlib.Path(args[0] if args else "tests")
calls, total, unknown = 0, 0.0, []
per_file = {}
for path in sorted(root.rglob("*.rs")):
    for n, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("//", 1)[0]
        m = CALL.search(code)
        if not m or "fn " in code:
            continue
        arg = m.group(1).strip().rstrip(")").strip()
        # `sleep(x)).await` and similar: keep the argument only.
        depth, end = 0, len(m.group(1))
        for i, ch in enumerate(m.group(1)):
            depth += ch == "("
            if ch == ")":
                if depth == 0:
                    end = i
                    break
                depth -= 1
        arg = m.group(1)[:end].strip()
        calls += 1
        f = per_file.setdefault(str(path), [0, 0.0])
        f[0] += 1
        lit = LIT.match(arg)
        if lit:
            secs = int(lit.group(2)) * SCALE[lit.group(1)]
            total += secs
            f[1] += secs
            if verbose:
                print(f"{path}:{n}: {secs:g}s")
        else:
            unknown.append(f"{path}:{n}: {arg}")
for name, (c, s) in per_file.items():
    print(f"{name}: {c} sleeps, {s:.2f} s literal")
print(f"TOTAL: {calls} sleep call sites, {total:.2f} s of literal durations")
if unknown:
    print(f"not literal ({len(unknown)}, not in the sum):")
    for u in unknown:
        print("  " + u)
