#!/usr/bin/env python3
"""The README's tables from `workbench bench model --json` output, and (optionally) the llama.cpp
side by side from `scripts/llama_cpp_bench.py --json` run in the same session.

    python3 scripts/bench_model_markdown.py runs/smollm2-bench/bench.json [--llama-cpp runs/llama-cpp-bench.json]
"""
import argparse
import json
import os


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench")
    ap.add_argument("--llama-cpp")
    a = ap.parse_args()
    b = json.load(open(a.bench))
    rows = b["rows"]
    def spread(v, digits):
        return f"{v[0]:.{digits}f}–{v[1]:.{digits}f}" if v and len(v) == 2 else "–"
    print(f"({b.get('rounds', 1)} rounds, the models interleaved; rates of the median round, range = slowest–fastest round)\n")
    print("| variant | prefill tok/s | range | × FP | of bound | decode tok/s | range | × FP | of bound | block weights ÷ f32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        w = r.get("weightBytes") or {}
        ratio = w.get("blockLinears", 0) / max(1, w.get("blockLinearsF32Equivalent", 1))
        print(f"| {r['name']} | {r['prefillTokensPerSecond']:.1f} | {spread(r.get('prefillRange'), 0)} | {r['prefillRatioToFloat']:.2f} | "
              f"{100 * r['prefillFractionOfBound']:.0f}% | {r['decodeTokensPerSecond']:.2f} | {spread(r.get('decodeRange'), 1)} | "
              f"{r['decodeRatioToFloat']:.2f} | {100 * r['decodeFractionOfBound']:.0f}% | {ratio:.2f} |")
    # As the workbench's text report: rounds whose fastest beat the slowest by more than 25%.
    noisy = []
    for r in rows:
        spreads = [(v[1] / v[0], what) for what, v in (("prefill", r.get("prefillRange")), ("decode", r.get("decodeRange")))
                   if v and len(v) == 2 and v[0] > 0]
        if spreads and max(spreads)[0] > 1.25:
            noisy.append(f"{r['name']} ({max(spreads)[1]} {max(spreads)[0]:.2f}×)")
    if noisy:
        print(f"\nThe host was not quiet: the fastest round beat the slowest by more than 25% for {', '.join(noisy)}.")
    for r in rows:
        bound = r.get("onlineTransformBoundSeconds")
        online = [e for e in r.get("profile", []) if e["component"] == "online transforms"]
        if bound and online:
            print(f"\n{r['name']}: online transforms {online[0]['seconds'] * 1e3:.1f} ms per window, "
                  f"{online[0]['seconds'] / bound:.2f}× their FLOPs at the f32 GEMM rate")
    if a.llama_cpp:
        l = json.load(open(a.llama_cpp))
        fp = rows[0]
        by = {r["name"]: r for r in rows}
        print(f"\n| llama.cpp {l.get('llama_cpp_version')} ({l['results'][0]['threads']} threads) | prefill tok/s | decode tok/s |")
        print("|---|---|---|")
        for r in l["results"]:
            print(f"| {os.path.basename(r['file'])} | {r['prefill_tokens_per_second']:.1f} | {r['decode_tokens_per_second']:.2f} |")
        q41, q40 = l["results"][0], l["results"][-1]
        print(f"\nFP prefill ÷ llama.cpp Q4_1 prefill: {fp['prefillTokensPerSecond'] / q41['prefill_tokens_per_second']:.2f}×")
        for name in by:
            if name.startswith("W4A8"):
                print(f"{name} decode ÷ llama.cpp Q4_0 decode: {by[name]['decodeTokensPerSecond'] / q40['decode_tokens_per_second']:.2f}×")


if __name__ == "__main__":
    main()
