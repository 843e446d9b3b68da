#!/usr/bin/env python3
"""Markdown tables (as in the README) from one or more `workbench bench kernels --json FILE` runs.

The machine is a shared VM whose speed swings between runs; interference only ever slows a kernel
down, so with several files each figure is the best of the runs (peaks, rates and OpenBLAS alike;
ratios are recomputed from those best figures).

    python3 scripts/kernels_markdown.py run1.json [run2.json …]
"""
import json
import sys


def main(paths):
    runs = [json.load(open(p)) for p in paths]
    paths_used = {r["path"] for r in runs}
    if len(paths_used) != 1:
        sys.exit(f"the runs used different kernel paths: {sorted(paths_used)}")
    def best(values):
        present = [v for v in values if v is not None]   # a list: a generator would be used up by a first pass
        return max(present) if present else None
    f32_peak = {t: best(r["f32Peak"].get(t) for r in runs) for t in runs[0]["f32Peak"]}
    int_peak = {t: best(r["intPeak"].get(t) for r in runs) for t in runs[0]["intPeak"]}
    print(f"Path `{runs[0]['path']}`, best of {len(runs)} run(s). Practical peaks (register-only loops): " + "; ".join(
        f"{t} thread(s): f32 FMA {f32_peak[t]:.0f} GFLOP/s, {runs[0]['intPeakInstruction']} {int_peak[t]:.0f} GOP/s"
        for t in sorted(f32_peak)))
    print()
    rates, blas = {}, {}
    for run in runs:
        for r in run["rows"]:
            key = (r["threads"], r["m"], r["k"], r["n"])
            rates.setdefault(key, {}).setdefault(r["kernel"], []).append(r["rate"])
            if r.get("openBLAS"):
                blas.setdefault(key, []).append(r["openBLAS"])
    has = lambda kernels: any(k in rates[key] for key in rates for k in kernels)
    if has(("W8A8", "W4A4")) or blas:
        print("| M | K×N | threads | f32 GFLOP/s (of peak) | OpenBLAS | f32 / OpenBLAS | W8A8 GOP/s (×f32) | W4A4 GOP/s (×f32) |")
        print("|---|---|---|---|---|---|---|---|")
        for key in sorted(rates):
            t, m, k, n = key
            g = {kernel: max(v) for kernel, v in rates[key].items()}
            f, ob = g.get("f32"), max(blas[key]) if key in blas else None
            peak = f32_peak[str(t)]
            cells = [str(m), f"{k}×{n}", str(t),
                     f"{f:.0f} ({100 * f / peak:.0f}%)" if f else "–",
                     f"{ob:.0f}" if ob else "–", f"{f / ob:.2f}" if f and ob else "–"]
            for kernel in ("W8A8", "W4A4"):
                v = g.get(kernel)
                cells.append(f"{v:.0f} ({v / f:.2f}×)" if v and f else "–")
            print("| " + " | ".join(cells) + " |")
    weight_only = ("W8A16", "W4A16", "W4A16g32")
    if has(weight_only):
        print()
        print("| M | K×N | threads | f32 GFLOP/s | W8A16 GFLOP/s (×f32) | W4A16 GFLOP/s (×f32) | W4A16 g32 GFLOP/s (×f32) |")
        print("|---|---|---|---|---|---|---|")
        for key in sorted(rates):
            t, m, k, n = key
            g = {kernel: max(v) for kernel, v in rates[key].items()}
            f = g.get("f32")
            if not f or not any(kernel in g for kernel in weight_only):
                continue
            cells = [str(m), f"{k}×{n}", str(t), f"{f:.0f}"]
            for kernel in weight_only:
                v = g.get(kernel)
                cells.append(f"{v:.0f} ({v / f:.2f}×)" if v else "–")
            print("| " + " | ".join(cells) + " |")
    if not any(run["passes"] for run in runs):
        for note in runs[0]["notes"]:
            print(f"\n*{note}*")
        return
    print()
    print("| pass over a 2048×1536 activation | threads | ms | read+write pass ms | ratio |")
    print("|---|---|---|---|---|")
    passes = {}
    for run in runs:
        for p in run["passes"]:
            key = (p["threads"], p["kernel"])
            ms, copy = passes.get(key, (float("inf"), float("inf")))
            passes[key] = (min(ms, p["milliseconds"]), min(copy, p["copyMilliseconds"]))
    order = [p["kernel"] for p in runs[0]["passes"]]
    for (t, kernel) in sorted(passes, key=lambda x: (x[0], order.index(x[1]) if x[1] in order else 0)):
        ms, copy = passes[(t, kernel)]
        print(f"| {kernel} | {t} | {ms:.2f} | {copy:.2f} | {ms / copy:.2f}× |")
    for note in runs[0]["notes"]:
        print(f"\n*{note}*")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
