#!/usr/bin/env python3
"""llama.cpp's own quantization against a workbench export, both run by llama.cpp.

Makes llama.cpp's Q4_0 (or another type) requantization of a source GGUF with its quantize
function (requantization allowed; token embedding and output tensors kept at the types the
workbench export has, so only the block linears differ), then evaluates every given GGUF with
llama.cpp under the llama.cpp perplexity protocol (windows of n_ctx tokens, BOS first when the
model asks for it, the second half of each window scored) on the same windows, and prints each
file's perplexity and the paired per-token ΔNLL between the first two.

    python3 scripts/llama_cpp_quantize_compare.py --source SmolLM2.gguf --type q4_0 \\
        --text ../shared/data/wikitext-2-raw/wiki.test.raw --windows 100 \\
        runs/smollm2-export-q4_0/GPTQ_Q4_0.gguf runs/smollm2-export-q4_0/RTN_Q4_0.gguf

Needs `pip install llama-cpp-python gguf` (builds llama.cpp from source, about 9 minutes).
"""
import argparse
import math
import os
import sys

import numpy as np

from compare_llama_cpp import log_softmax, standard_error


def requantize(llama_cpp, source, out, type_name, like):
    import gguf
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(like).tensors}
    ftype = {"q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, "q4_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1,
             "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}[type_name]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = 2
    if "token_embd.weight" in types:
        params.token_embedding_type = int(types["token_embd.weight"])
    if "output.weight" in types:
        params.output_tensor_type = int(types["output.weight"])
    rc = llama_cpp.llama_model_quantize(source.encode(), out.encode(), params)
    if rc != 0:
        sys.exit(f"llama_model_quantize failed with {rc}")


def token_nll(llama_cpp, model, tokens_of, windows, n_ctx, threads):
    llm = llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=threads,
                          n_threads_batch=threads, logits_all=True, verbose=False)
    add_bos = llm._model.add_bos_token() if hasattr(llm._model, "add_bos_token") else False
    tokens = tokens_of(llm, add_bos)
    out = []
    for w in range(windows):
        win = list(tokens[w * n_ctx:(w + 1) * n_ctx])
        if len(win) < n_ctx:
            sys.exit(f"window {w} needs {(w + 1) * n_ctx} tokens; the text has {len(tokens)}")
        if add_bos:
            win[0] = llm.token_bos()
        llm.reset()
        llm.eval(win)
        lp = log_softmax(np.asarray(llm.scores[:n_ctx]))
        out += [-lp[p, win[p + 1]] for p in range(n_ctx // 2, n_ctx - 1)]
    return np.array(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="GGUF files to evaluate (e.g. workbench exports)")
    ap.add_argument("--source", help="also make llama.cpp's requantization of this GGUF and evaluate it first")
    ap.add_argument("--type", default="q4_0", choices=["q4_0", "q4_1", "q8_0"])
    ap.add_argument("--text", required=True)
    ap.add_argument("--windows", type=int, default=100)
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import llama_cpp

    models = list(args.models)
    if args.source:
        out = os.path.join(os.path.dirname(models[0]) or ".", f"llama.cpp-{args.type}.gguf")
        requantize(llama_cpp, args.source, out, args.type, like=models[0])
        models.insert(0, out)
    with open(args.text, "rb") as f:
        text = f.read()
    nll = {}
    for m in models:
        nll[m] = token_nll(llama_cpp, m, lambda llm, bos: llm.tokenize(text, add_bos=bos, special=False),
                           args.windows, args.n_ctx, args.threads)
        x = nll[m]
        print(f"{m}: ppl {math.exp(x.mean()):.4f} ± {math.exp(x.mean()) * standard_error(x):.4f} "
              f"({len(x)} scored tokens, {args.windows} windows of {args.n_ctx}, llama.cpp {llama_cpp.__version__})")
    if len(models) >= 2:
        a, b = nll[models[0]], nll[models[1]]
        d = a - b
        print(f"ΔNLL {os.path.basename(models[0])} − {os.path.basename(models[1])}: {d.mean():+.5f} ± {standard_error(d):.5f} "
              f"({'tie' if abs(d.mean()) < 2 * standard_error(d) else ('first better' if d.mean() < 0 else 'second better')})")


if __name__ == "__main__":
    main()
