#!/usr/bin/env python3
"""Compare the workbench's per-token NLL with llama.cpp's on the same windows.

Reads the tab-separated file that `workbench run RECIPE --token-nll FILE` writes (a recipe with
`evaluation: {protocol: llama.cpp}`), evaluates the same windows with llama.cpp through the
`llama_cpp` Python binding, and prints per-window perplexities of both, the paired difference
(mean ΔNLL ± standard error) and the tokens where the two disagree most.

llama.cpp is not a dependency of the workbench; install the binding once (it builds llama.cpp
from source, about 15 minutes on two cores):

    python3 -m venv /tmp/lv && /tmp/lv/bin/pip install numpy typing-extensions diskcache jinja2 gguf
    CMAKE_ARGS="-DGGML_NATIVE=ON" /tmp/lv/bin/pip install --no-deps llama-cpp-python
    /tmp/lv/bin/python scripts/compare_llama_cpp.py --model MODEL.gguf --text wiki.test.raw \\
        --token-nll ours.tsv

`--type-kv f32` keeps llama.cpp's KV cache in f32 instead of f16 (to separate that rounding from
the 8-bit activation rounding inside its quantized dot products, which cannot be turned off).
"""
import argparse
import math
import sys

import numpy as np


def read_ours(path, column="FP"):
    """Returns the header and rows (window, position, target, nll of `column`) of a --token-nll file."""
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:4] != ["window", "position", "target", "FP"]:
            sys.exit(f"{path}: line 1: expected the header `window position target FP …` written by --token-nll")
        if column not in header[3:]:
            sys.exit(f"{path}: no column '{column}'; the columns are {', '.join(header[3:])}")
        c = header.index(column)
        rows = []
        for n, line in enumerate(f, start=2):
            cols = line.rstrip("\n").split("\t")
            try:
                rows.append((int(cols[0]), int(cols[1]), int(cols[2]), float(cols[c])))
            except (ValueError, IndexError):
                sys.exit(f"{path}: line {n}: expected integers window, position, target and a number in column {column}")
    return header, rows


def standard_error(x):
    return x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else 0.0


def log_softmax(z):
    z = z.astype(np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the GGUF file")
    ap.add_argument("--text", required=True, help="the evaluation text (e.g. wiki.test.raw)")
    ap.add_argument("--token-nll", required=True, help="the workbench's --token-nll output")
    ap.add_argument("--column", default="FP",
                    help="the --token-nll column to compare: FP, or a variant whose export --model is (default FP)")
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--type-kv", choices=["f16", "f32"], default="f16", help="llama.cpp KV cache type")
    ap.add_argument("--flash-attn", action="store_true", help="use llama.cpp's flash attention")
    ap.add_argument("--show", type=int, default=10, help="how many largest per-token differences to print")
    ap.add_argument("--numpy", type=int, default=0, metavar="N",
                    help="also run scripts/numpy_llama.py on the first N windows, in f32 and with llama.cpp's "
                         "roundings emulated (needs the PyPI `gguf` package; about 20 s per window)")
    args = ap.parse_args()

    import llama_cpp

    header, ours = read_ours(args.token_nll, args.column)
    windows = sorted({w for w, _, _, _ in ours})
    kv = {"f16": llama_cpp.GGML_TYPE_F16, "f32": llama_cpp.GGML_TYPE_F32}[args.type_kv]
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=args.n_ctx, n_batch=args.n_ctx, n_ubatch=args.n_ctx,
                          n_threads=args.threads, n_threads_batch=args.threads, logits_all=True,
                          type_k=kv, type_v=kv, flash_attn=args.flash_attn, verbose=False)
    with open(args.text, "rb") as f:
        text = f.read()
    add_bos = llm._model.add_bos_token() if hasattr(llm._model, "add_bos_token") else False
    tokens = llm.tokenize(text, add_bos=add_bos, special=False)
    n = args.n_ctx
    theirs = {}
    for w in windows:
        win = list(tokens[w * n:(w + 1) * n])
        if len(win) < n:
            sys.exit(f"{args.text}: window {w} needs {(w + 1) * n} tokens, llama.cpp found {len(tokens)}")
        if add_bos:
            win[0] = llm.token_bos()
        llm.reset()
        llm.eval(win)
        lp = log_softmax(np.asarray(llm.scores[:n]))
        for pos in range(n // 2, n - 1):
            theirs[(w, pos)] = (win[pos + 1], -lp[pos, win[pos + 1]])
    numpy_windows = windows[:args.numpy]
    emulated = {}
    if numpy_windows:
        from numpy_llama import NumpyLlama
        reference = NumpyLlama(args.model)
        for w in numpy_windows:
            win = list(tokens[w * n:(w + 1) * n])
            if add_bos:
                win[0] = llm.token_bos()
            for numerics in ("f32", "llama.cpp"):
                lp = log_softmax(reference.logits(win, numerics))
                for pos in range(n // 2, n - 1):
                    emulated[(numerics, w, pos)] = -lp[pos, win[pos + 1]]

    mismatched = [(w, p) for w, p, t, _ in ours if theirs[(w, p)][0] != t]
    if mismatched:
        sys.exit(f"the token ids differ at {len(mismatched)} scored positions (first: window {mismatched[0][0]}, "
                 f"position {mismatched[0][1]}); compare `workbench tokenize` with llama-tokenize first")

    a = np.array([nll for _, _, _, nll in ours])
    b = np.array([theirs[(w, p)][1] for w, p, _, _ in ours])
    d = a - b
    print(f"llama.cpp {llama_cpp.__version__} (binding), KV cache {args.type_kv}, flash attention "
          f"{'on' if args.flash_attn else 'off'}, n_ctx {n}, {len(windows)} windows, {len(a)} scored tokens")
    print(f"{'window':>6} {'workbench':>10} {'llama.cpp':>10} {'diff %':>7} {'ΔNLL':>9} {'± se':>8}")
    for w in windows:
        m = np.array([ww == w for ww, _, _, _ in ours])
        dw = d[m]
        print(f"{w:>6} {math.exp(a[m].mean()):>10.4f} {math.exp(b[m].mean()):>10.4f} "
              f"{100 * (math.exp(dw.mean()) - 1):>7.2f} {dw.mean():>9.5f} {standard_error(dw):>8.5f}")
    se = standard_error(d)
    per_window = sorted(100 * (math.exp(d[np.array([ww == w for ww, _, _, _ in ours])].mean()) - 1) for w in windows)
    print(f"{'all':>6} {math.exp(a.mean()):>10.4f} {math.exp(b.mean()):>10.4f} "
          f"{100 * (math.exp(d.mean()) - 1):>7.2f} {d.mean():>9.5f} {se:>8.5f}")
    print(f"per-window difference: min {per_window[0]:.2f}%, median {per_window[len(per_window) // 2]:.2f}%, "
          f"max {per_window[-1]:.2f}%; {sum(abs(x) > 0.5 for x in per_window)} of {len(windows)} windows beyond ±0.5%")
    print(f"per-token |ΔNLL|: mean {np.abs(d).mean():.5f}, max {np.abs(d).max():.5f}; "
          f"correlation of the two NLLs {np.corrcoef(a, b)[0, 1]:.6f}")
    if numpy_windows:
        print(f"numpy reference forward (scripts/numpy_llama.py) on {len(numpy_windows)} window(s):")
        print(f"{'window':>6} {'workbench':>10} {'numpy f32':>10} {'numpy+llama.cpp roundings':>26} {'llama.cpp':>10}")
        sel = [i for i, (w, _, _, _) in enumerate(ours) if w in set(numpy_windows)]
        nf = np.array([emulated[("f32", ours[i][0], ours[i][1])] for i in sel])
        ne = np.array([emulated[("llama.cpp", ours[i][0], ours[i][1])] for i in sel])
        for w in numpy_windows:
            m = np.array([ours[i][0] == w for i in sel])
            print(f"{w:>6} {math.exp(a[sel][m].mean()):>10.4f} {math.exp(nf[m].mean()):>10.4f} "
                  f"{math.exp(ne[m].mean()):>26.4f} {math.exp(b[sel][m].mean()):>10.4f}")
        de = ne - b[sel]
        print(f"  workbench − numpy f32: max per-token |ΔNLL| {np.abs(a[sel] - nf).max():.6f}")
        print(f"  numpy with llama.cpp's roundings − llama.cpp: ΔNLL {de.mean():+.5f} ± {standard_error(de):.5f}, "
              f"mean per-token |ΔNLL| {np.abs(de).mean():.5f} (workbench − llama.cpp: {np.abs(d[sel]).mean():.5f})")
    order = np.argsort(-np.abs(d))[:args.show]
    print(f"largest per-token differences (workbench − llama.cpp):")
    for i in order:
        w, p, t, _ = ours[i]
        print(f"  window {w} position {p} target {t}: {a[i]:.4f} vs {b[i]:.4f} ({d[i]:+.4f})")


if __name__ == "__main__":
    main()
