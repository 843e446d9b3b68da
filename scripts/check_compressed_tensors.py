#!/usr/bin/env python3
"""Checks a compressed-tensors `pack-quantized` folder written by the workbench, independently of it.

Usage: python3 scripts/check_compressed_tensors.py FOLDER

Needs `pip install safetensors numpy` (CPU only, no torch: reads with safetensors.numpy); when the
`tokenizers` package is installed it also loads tokenizer.json and encodes FOLDER/sample.txt (or a
built-in sentence), comparing with FOLDER/sample_ids.txt when present (the ids the workbench's
tokenizer gave). Prints a per-tensor summary and exits 1 on the first inconsistency.

Layout checked (facts of the compressed-tensors format):
  <m>.weight_packed      int32 [out, ceil(in / f)], f = 32 // num_bits codes per word, code c of a
                         row at bits (c % f) * num_bits of word c // f, stored as q + 2^(num_bits-1)
  <m>.weight_scale       float [out, groups] (groups = 1 for strategy channel, in / group_size for group)
  <m>.weight_zero_point  int32 [ceil(out / f), groups], asymmetric only, packed along the output dim
  <m>.weight_shape       int [2] = [out, in]
and config.json's quantization_config (quant_method compressed-tensors, format pack-quantized,
config_groups with targets / weights {num_bits, type int, symmetric, strategy, group_size}, ignore).
"""
import json
import os
import re
import sys

import numpy as np
from safetensors.numpy import load_file


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def unpack(packed, num_bits, n, axis):
    """Signed codes from int32 words: `n` values along `axis` (1: rows of codes, 0: columns)."""
    f = 32 // num_bits
    words = packed.astype(np.uint32)
    if axis == 0:
        words = words.T
    parts = [(words >> np.uint32(num_bits * i)) & np.uint32((1 << num_bits) - 1) for i in range(f)]
    codes = np.stack(parts, axis=-1).reshape(words.shape[0], -1)[:, :n].astype(np.int32) - (1 << (num_bits - 1))
    return codes.T if axis == 0 else codes


def matches(target, module):
    if target == module:
        return 0
    if target.startswith("re:"):
        return 1 if re.match(target[3:], module) else None
    return 2 if target == "Linear" else None


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    folder = sys.argv[1]
    cfg = json.load(open(os.path.join(folder, "config.json")))
    qc = cfg.get("quantization_config")
    if not qc:
        fail("config.json has no quantization_config")
    for key, want in [("quant_method", "compressed-tensors"), ("format", "pack-quantized"), ("quantization_status", "compressed")]:
        if qc.get(key) != want:
            fail(f"quantization_config.{key} = {qc.get(key)!r}, expected {want!r}")
    groups = qc["config_groups"]
    for name, g in groups.items():
        w = g["weights"]
        if w["type"] != "int" or w["num_bits"] not in (4, 8) or w["strategy"] not in ("channel", "group"):
            fail(f"group {name}: unexpected weights {w}")
        if (w["strategy"] == "group") != (w.get("group_size") is not None):
            fail(f"group {name}: strategy {w['strategy']} with group_size {w.get('group_size')}")
        if g.get("input_activations") is not None:
            fail(f"group {name}: input_activations should be null for a weight-only export")
    ignore = qc.get("ignore", [])
    print(f"config: {cfg['architectures'][0]}, hidden {cfg['hidden_size']}, layers {cfg['num_hidden_layers']}, "
          f"vocab {cfg['vocab_size']}, tie_word_embeddings {cfg['tie_word_embeddings']}, torch_dtype {cfg['torch_dtype']}")
    print(f"quantization_config: {len(groups)} group(s), ignore {ignore}")
    for name, g in sorted(groups.items()):
        w = g["weights"]
        t = g["targets"]
        print(f"  {name}: int{w['num_bits']} {'sym' if w['symmetric'] else 'asym'} {w['strategy']}"
              f"{'' if w.get('group_size') is None else ' ' + str(w['group_size'])}, targets {t if len(t) <= 3 else t[:3] + ['...']} ({len(t)})")

    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    tensors = {}
    for f in files:
        tensors.update(load_file(os.path.join(folder, f)))
    modules = sorted(n[: -len(".weight_packed")] for n in tensors if n.endswith(".weight_packed"))
    print(f"{len(tensors)} tensors in {files}; {len(modules)} packed linears")
    print(f"{'module':44} {'scheme':18} {'shape':>11} {'codes min..max':>15} {'mean|q-z|':>9} {'scale range':>23}  max|W|")
    consumed = set()
    for m in modules:
        ranked = [(r, n) for n, g in groups.items() for r in [min((x for x in (matches(t, m) for t in g["targets"]) if x is not None), default=None)] if r is not None]
        if not ranked:
            fail(f"{m}: no config group targets it")
        best = min(r for r, _ in ranked)
        winners = [n for r, n in ranked if r == best]
        if len(winners) != 1:
            fail(f"{m}: targeted by {winners}")
        if any(matches(t, m) in (0, 1) for t in ignore):
            fail(f"{m}: packed but listed in ignore")
        w = groups[winners[0]]["weights"]
        bits, sym = w["num_bits"], w["symmetric"]
        f = 32 // bits
        packed, scale, shape = tensors[m + ".weight_packed"], tensors[m + ".weight_scale"], tensors[m + ".weight_shape"]
        consumed |= {m + ".weight_packed", m + ".weight_scale", m + ".weight_shape"}
        if packed.dtype != np.int32 or shape.dtype not in (np.int64, np.int32) or shape.shape != (2,):
            fail(f"{m}: dtypes packed {packed.dtype}, shape {shape.dtype} {shape.shape}")
        rows, cols = int(shape[0]), int(shape[1])
        if packed.shape != (rows, -(-cols // f)):
            fail(f"{m}: weight_packed {packed.shape} for weight_shape {[rows, cols]} at {f} codes per word")
        gs = cols if w["strategy"] == "channel" else w["group_size"]
        if cols % gs:
            fail(f"{m}: group size {gs} does not divide {cols}")
        ngroups = cols // gs
        if scale.shape != (rows, ngroups) or not np.all(np.isfinite(scale)):
            fail(f"{m}: weight_scale {scale.shape} (expected {(rows, ngroups)}) or not finite")
        codes = unpack(packed, bits, cols, axis=1)
        if sym:
            if m + ".weight_zero_point" in tensors:
                fail(f"{m}: symmetric but stores weight_zero_point")
            zeros = np.zeros((rows, ngroups), dtype=np.int32)
        else:
            zp = tensors[m + ".weight_zero_point"]
            consumed.add(m + ".weight_zero_point")
            if zp.dtype != np.int32 or zp.shape != (-(-rows // f), ngroups):
                fail(f"{m}: weight_zero_point {zp.dtype} {zp.shape}, expected int32 {(-(-rows // f), ngroups)}")
            zeros = unpack(zp, bits, rows, axis=0)
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if codes.min() < lo or codes.max() > hi or zeros.min() < lo or zeros.max() > hi:
            fail(f"{m}: codes or zero points outside [{lo}, {hi}]")
        zfull = np.repeat(zeros, gs, axis=1)
        weight = (codes - zfull).astype(np.float32) * np.repeat(scale.astype(np.float32), gs, axis=1)
        scheme = f"int{bits} {'sym' if sym else 'asym'} {'ch' if gs == cols else 'g' + str(gs)}"
        print(f"{m:44} {scheme:18} {str(rows) + 'x' + str(cols):>11} {str(codes.min()) + '..' + str(codes.max()):>15} "
              f"{np.abs(codes - zfull).mean():9.3f} {scale.min():11.4g}..{scale.max():<10.4g} {np.abs(weight).max():.4g}")
    floats = sorted(n for n in tensors if n not in consumed)
    for n in floats:
        t = tensors[n]
        if t.dtype not in (np.float32, np.float16) and str(t.dtype) != "bfloat16":
            fail(f"{n}: float tensor stored as {t.dtype}")
        if not np.all(np.isfinite(t.astype(np.float32))):
            fail(f"{n}: not finite")
    print(f"{len(floats)} float tensors: " + ", ".join(f"{n} {list(tensors[n].shape)} {tensors[n].dtype}" for n in floats[:4])
          + (", ..." if len(floats) > 4 else ""))
    linear = re.compile(r"(model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)|lm_head)\.weight$")
    for n in floats:
        if linear.match(n) and n[: -len(".weight")] not in ignore:
            fail(f"{n}: a float linear not listed in quantization_config.ignore")

    tok_path = os.path.join(folder, "tokenizer.json")
    if os.path.exists(tok_path):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            print("tokenizers not installed: tokenizer.json not checked (pip install tokenizers)")
        else:
            tok = Tokenizer.from_file(tok_path)
            sample_path = os.path.join(folder, "sample.txt")
            sample = open(sample_path, encoding="utf-8").read() if os.path.exists(sample_path) else "Hello world 123, it's 2024!"
            ids = tok.encode(sample, add_special_tokens=True).ids
            print(f"tokenizer.json: vocab {tok.get_vocab_size()}, sample of {len(sample)} characters: {sample[:60]!r}...")
            print(f"  tokenizers ids: {len(ids)} ids, first {ids[:16]}")
            ids_path = os.path.join(folder, "sample_ids.txt")
            if os.path.exists(ids_path):
                ours = [int(x) for x in open(ids_path).read().split()]
                print(f"  workbench ids:  {len(ours)} ids, first {ours[:16]}")
                if ours != ids:
                    first = next((i for i, (a, b) in enumerate(zip(ours, ids)) if a != b), min(len(ours), len(ids)))
                    fail(f"tokenizers and the workbench encode the sample differently from id {first}: "
                         f"workbench {ours[first:first + 8]} vs tokenizers {ids[first:first + 8]}")
                print("  identical")
    print("OK")


if __name__ == "__main__":
    main()
