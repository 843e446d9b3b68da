#!/usr/bin/env python3
"""Render a `workbench run --json FILE` result as the Markdown tables the README shows.

usage: scripts/results_markdown.py RESULT.json [--pairs "A|B" ...]
Prints the summary table (one row per variant, FP first) and, with --pairs, the paired
comparisons named (all of them with --pairs all).
"""
import json, sys

def fmt(x, d):
    return f"{x:.{d}f}"

def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    r = json.load(open(args[0]))
    pairs = args[args.index("--pairs") + 1:] if "--pairs" in args else []
    fp = r["float"]
    print(f"FP perplexity {fmt(fp['perplexity'], 3)} ± {fmt(fp['perplexityStandardError'], 3)} over "
          f"{fp['scoredTokens']} tokens; FP tok/s {fp['tokensPerSecond']:.0f}; wall {r['wallSeconds']:.0f} s\n")
    print("| variant | ppl ± se | ΔNLL vs FP ± se | KL (p99) | top-1 | mean site err | quantize s | method seconds | tok/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| FP | {fmt(fp['perplexity'], 2)} ± {fmt(fp['perplexityStandardError'], 2)} | 0 | 0 | 100% | 0 | — | — | "
          f"{fp['tokensPerSecond']:.0f} |")
    for v in r["variants"]:
        s = v["scores"]
        err = sum(x["relativeOutputError"] for x in v["sites"]) / max(1, len(v["sites"]))
        cost = ", ".join(f"{c['method']} {c['seconds']:.0f}" for c in v["costs"])
        print(f"| {v['name']} | {fmt(s['perplexity'], 2)} ± {fmt(s['perplexityStandardError'], 2)} | "
              f"{fmt(s['deltaNLL'], 3)} ± {fmt(s['deltaNLLStandardError'], 3)} | {fmt(s['meanKL'], 3)} ({fmt(s['klP99'], 2)}) | "
              f"{100 * s['top1Agreement']:.1f}% | {fmt(err, 3)} | {v['quantizeSeconds']:.0f} | {cost} | {s['tokensPerSecond']:.0f} |")
    comps = r.get("comparisons", [])
    if pairs:
        wanted = None if pairs == ["all"] else {tuple(p.split("|")) for p in pairs}
        print("\n| a | b | ΔNLL a − b ± se (paired) | verdict |")
        print("|---|---|---|---|")
        for c in comps:
            if wanted is None or (c["a"], c["b"]) in wanted or (c["b"], c["a"]) in wanted:
                print(f"| {c['a']} | {c['b']} | {fmt(c['deltaNLL'], 3)} ± {fmt(c['standardError'], 3)} | {c['verdict']} |")

if __name__ == "__main__":
    main()
