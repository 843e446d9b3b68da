#!/usr/bin/env python3
"""Markdown table of `workbench bench train --json` runs: each figure the best of the runs
(interference only slows a layer). Usage: python3 scripts/train_bench_markdown.py run1.json run2.json ..."""
import json, sys

runs = [json.load(open(p)) for p in sys.argv[1:]]
best = {}
for run in runs:
    for r in run["rows"]:
        key = (r["inFeatures"], r["outFeatures"], r["threads"], r["layer"], r["gradient"])
        b = best.setdefault(key, {"f32": r["f32Milliseconds"], "gemms": r["f32GemmMilliseconds"], "row": r})
        b["f32"] = min(b["f32"], r["f32Milliseconds"])
        b["gemms"] = min(b["gemms"], r["f32GemmMilliseconds"])
        if r["milliseconds"] < b["row"]["milliseconds"]:
            b["row"] = r
# The f32 references are shared by all rows of a shape and thread count.
for key, b in best.items():
    for other in best.values():
        r = other["row"]
        if (r["inFeatures"], r["outFeatures"], r["threads"]) == key[:3]:
            b["f32"] = min(b["f32"], other["f32"]); b["gemms"] = min(b["gemms"], other["gemms"])
print(f"Path `{runs[0]['path']}`, best of {len(runs)} run(s), tokens = {runs[0]['rows'][0]['tokens']}.\n")
print("| in×out | thr | layer | gradient | f32 layer ms | f32 GEMMs ms | INT4 ms | ×f32 layer | ×f32 GEMMs | int GEMM ms | quantize ms | f32 GEMM ms | rows int/f32 |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(best, key=lambda k: (k[0] != 576 or k[1] != 1536, k[0] != 1536, k[0], k[2], k[4], k[3])):
    b = best[key]; r = b["row"]
    print(f"| {key[0]}×{key[1]} | {key[2]} | {key[3]} | {key[4]} | {b['f32']:.1f} | {b['gemms']:.1f} | {r['milliseconds']:.1f} | "
          f"{b['f32'] / r['milliseconds']:.2f} | {b['gemms'] / r['milliseconds']:.2f} | {r['integerGemm']:.1f} | {r['quantize']:.1f} | "
          f"{r['floatGemm']:.1f} | {100 * r['integerRowFraction']:.0f}% / {100 * r['floatRowFraction']:.0f}% |")
