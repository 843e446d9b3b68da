#!/usr/bin/env python3
"""Paired per-token NLL difference of two variants, grouped by position in the window.

Reads the tab-separated file of `workbench run RECIPE --token-nll FILE` and prints, for position
groups, the mean of NLL(a) − NLL(b) over the tokens predicted from those positions, with its
standard error. Shows whether a variant loses on the first tokens of a window (little context,
the attention-sink token) or everywhere.

    python3 scripts/nll_by_position.py FILE "W4A16 Hadamard+RTN" "W4A16 RTN" [--edges 1,4,64]
"""
import argparse
import math
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("a", help="variant name (a column of the file), or FP")
    ap.add_argument("b", help="variant name subtracted from a")
    ap.add_argument("--edges", default="1,4,64", help="group boundaries (positions), comma-separated")
    args = ap.parse_args()
    with open(args.file) as f:
        header = f.readline().rstrip("\n").split("\t")
        for name in (args.a, args.b):
            if name not in header[3:]:
                sys.exit(f"{args.file}: no column '{name}'; the columns are {', '.join(header[3:])}")
        ia, ib = header.index(args.a), header.index(args.b)
        edges = [int(e) for e in args.edges.split(",")]
        groups = {}
        for n, line in enumerate(f, start=2):
            cols = line.rstrip("\n").split("\t")
            try:
                pos, d = int(cols[1]), float(cols[ia]) - float(cols[ib])
            except (ValueError, IndexError):
                sys.exit(f"{args.file}: line {n}: expected a position and two numbers")
            g = sum(pos >= e for e in edges)
            groups.setdefault(g, []).append(d)
    names = [f"{lo}–{hi - 1}" if hi - lo > 1 else f"{lo}" for lo, hi in zip([0] + edges, edges)] + [f"{edges[-1]}+"]
    print(f"NLL({args.a}) − NLL({args.b}) by predicting position")
    print(f"{'positions':>10} {'tokens':>7} {'ΔNLL':>9} {'± se':>8}")
    for g in sorted(groups):
        x = groups[g]
        m = sum(x) / len(x)
        se = math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1) / len(x)) if len(x) > 1 else 0.0
        print(f"{names[g]:>10} {len(x):>7} {m:>9.4f} {se:>8.4f}")


if __name__ == "__main__":
    main()
