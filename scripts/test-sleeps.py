#!/usr/bin/env python3
"""Counts the fixed waits in the end-to-end tests (tests/) and sums their durations.

A fixed wait is a call site whose length is written in the test: `sleep(D)` (std::thread or
tokio), `sleep_until(INSTANT + D)` (counted as D), and `Daemon::hold(D, ...)` (a check that
nothing happens for D). Polling loops (`wait_for` and the like) end as soon as their condition
holds and are not counted, though their own 20-25 ms poll sleeps in tests/util are. A duration
written with a `const` of the same file is resolved; one that is not a literal (a variable, a
random value) is listed with its expression and left out of the sum.

Usage: scripts/test-sleeps.py [-v] [DIR]   (DIR defaults to tests/)
"""
import pathlib
import re
import sys

CALL = re.compile(r"\b(sleep|sleep_until|hold)\(")
CONST = re.compile(r"const\s+([A-Z_][A-Z0-9_]*)\s*:\s*(?:std::time::)?Duration\s*=\s*(.*?);", re.S)


def first_arg(text, start):
    """The first top-level argument of the call whose '(' is at text[start - 1]."""
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return text[start:i]
            depth -= 1
        elif ch == "," and depth == 0:
            return text[start:i]
    return text[start:]


def seconds(expr, consts, seen=()):
    """The expression's value in seconds, or None when it is not a literal duration."""
    e = re.sub(r"(?:std::time::)?Duration::from_secs\(", "_s(", expr)
    e = re.sub(r"(?:std::time::)?Duration::from_millis\(", "_ms(", e)
    e = re.sub(r"\bsecs\(", "_s(", e)
    e = re.sub(r"\bminutes\(", "_m(", e)
    for name in set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", e)):
        if name in seen or name not in consts:
            return None
        v = seconds(consts[name], consts, seen + (name,))
        if v is None:
            return None
        e = re.sub(rf"\b{name}\b", f"_s({v!r})", e)
    # An instant plus a span (sleep_until): the span.
    e = re.sub(r"^\s*[a-z][a-z0-9_.]*\s*\+", "", e)
    if re.search(r"[A-Za-z]", re.sub(r"\b_(s|ms|m)\(", "(", e)):
        return None
    fns = {"_s": float, "_ms": lambda x: x / 1000, "_m": lambda x: 60.0 * x}
    try:
        return float(eval(e, {"__builtins__": {}}, fns))
    except Exception:
        return None


verbose = "-v" in sys.argv[1:]
args = [a for a in sys.argv[1:] if a != "-v"]
root = pathlib.Path(args[0] if args else "tests")
calls, total, unknown, per_file, per_kind = 0, 0.0, [], {}, {}
for path in sorted(root.rglob("*.rs")):
    text = path.read_text()
    code = re.sub(r"//[^\n]*", lambda m: " " * len(m.group(0)), text)
    consts = {n: v for n, v in CONST.findall(code)}
    for m in CALL.finditer(code):
        line_start = code.rfind("\n", 0, m.start()) + 1
        if re.match(r"\s*(pub\s+)?(async\s+)?fn\b", code[line_start:m.start()]) or "fn " in code[line_start:m.start()]:
            continue
        n = code.count("\n", 0, m.start()) + 1
        arg = " ".join(first_arg(code, m.end()).split())
        calls += 1
        f = per_file.setdefault(str(path), [0, 0.0])
        f[0] += 1
        secs = seconds(arg, consts)
        if secs is None:
            unknown.append(f"{path}:{n}: {m.group(1)}({arg})")
            continue
        total += secs
        f[1] += secs
        k = per_kind.setdefault(m.group(1), [0, 0.0])
        k[0] += 1
        k[1] += secs
        if verbose:
            print(f"{path}:{n}: {m.group(1)} {secs:g}s")
for name, (c, s) in per_file.items():
    print(f"{name}: {c} waits, {s:.2f} s")
for kind, (c, s) in sorted(per_kind.items()):
    print(f"  {kind}: {c} call sites, {s:.2f} s")
print(f"TOTAL: {calls} fixed-wait call sites (sleep, sleep_until, hold), {total:.2f} s")
if unknown:
    print(f"not literal ({len(unknown)}, not in the sum):")
    for u in unknown:
        print("  " + u)
