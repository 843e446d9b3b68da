"""A second, independent LLaMA forward pass in numpy, for checking the workbench's numbers.

Reads a LLaMA-architecture GGUF with the PyPI `gguf` package (which also dequantizes the weights)
and computes logits for one window of token ids with one of two numerics:

- `f32`: every product in f32 on the dequantized weights — what the workbench computes;
- `llama.cpp`: the roundings llama.cpp's CPU backend adds to that: each quantized matmul's input
  rounded to 8 bits per block of 32 (`Q8_1` for Q4_1 weights, `Q8_0` for Q8_0 weights, scale
  stored as f16), Q/K/V stored as f16 (the KV cache), and the attention probabilities rounded to
  f16 before they multiply V.

Conventions as in the workbench: `Y = X·Wᵀ`, W is out×in; llama.cpp's converter permutes the Q/K
rows of LLaMA GGUF files, so RoPE rotates adjacent pairs (x[2i], x[2i+1]).
"""
import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize


class NumpyLlama:
    def __init__(self, path):
        r = GGUFReader(path)

        def meta(key):
            f = r.fields[key]
            return f.parts[f.data[0]].tolist()[0]

        arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
        self.hidden = meta(f"{arch}.embedding_length")
        self.layers = meta(f"{arch}.block_count")
        self.heads = meta(f"{arch}.attention.head_count")
        self.kv_heads = meta(f"{arch}.attention.head_count_kv")
        self.eps = meta(f"{arch}.attention.layer_norm_rms_epsilon")
        self.theta = meta(f"{arch}.rope.freq_base") if f"{arch}.rope.freq_base" in r.fields else 10000.0
        self.w, self.types = {}, {}
        for t in r.tensors:
            self.w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(
                [int(d) for d in reversed(t.shape)])
            self.types[t.name] = t.tensor_type
        if "output.weight" not in self.w:  # tied embeddings
            self.w["output.weight"] = self.w["token_embd.weight"]
            self.types["output.weight"] = self.types["token_embd.weight"]

    def logits(self, tokens, numerics="f32"):
        """Logits (T × vocab, f32) of a window of token ids."""
        emulate = numerics == "llama.cpp"
        f16 = (lambda a: a.astype(np.float16).astype(np.float32)) if emulate else (lambda a: a)

        def linear(x, name):
            if emulate and self.types[name] in (GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q8_0):
                x = round_q8_blocks(x)
            return x @ self.w[name].T

        def rms_norm(x, weight):
            return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + np.float32(self.eps)) * weight

        T, hd = len(tokens), self.hidden // self.heads
        inv = self.theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        ang = np.arange(T)[:, None] * inv[None, :]
        cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)

        def rope(x):  # x: T × heads × hd, adjacent pairs
            a, b = x[..., 0::2], x[..., 1::2]
            out = np.empty_like(x)
            out[..., 0::2] = a * cos[:, None, :] - b * sin[:, None, :]
            out[..., 1::2] = a * sin[:, None, :] + b * cos[:, None, :]
            return out

        mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)
        x = self.w["token_embd.weight"][np.asarray(tokens)]
        for l in range(self.layers):
            p = f"blk.{l}."
            h = rms_norm(x, self.w[p + "attn_norm.weight"])
            q = f16(rope(linear(h, p + "attn_q.weight").reshape(T, self.heads, hd)))
            k = f16(rope(linear(h, p + "attn_k.weight").reshape(T, self.kv_heads, hd)))
            v = f16(linear(h, p + "attn_v.weight").reshape(T, self.kv_heads, hd))
            out = np.empty((T, self.heads, hd), dtype=np.float32)
            for head in range(self.heads):
                kv = head * self.kv_heads // self.heads
                s = q[:, head, :] @ k[:, kv, :].T / np.float32(np.sqrt(hd)) + mask
                s = np.exp(s - s.max(axis=-1, keepdims=True))
                out[:, head, :] = f16(s / s.sum(axis=-1, keepdims=True)) @ v[:, kv, :]
            x = x + linear(out.reshape(T, -1), p + "attn_output.weight")
            h = rms_norm(x, self.w[p + "ffn_norm.weight"])
            g = linear(h, p + "ffn_gate.weight")
            x = x + linear(g / (1 + np.exp(-g)) * linear(h, p + "ffn_up.weight"), p + "ffn_down.weight")
        return linear(rms_norm(x, self.w["output_norm.weight"]), "output.weight")


def round_q8_blocks(x):
    """x rounded as llama.cpp's Q8_0/Q8_1 activations: per block of 32, d = max|x|/127,
    q = round-to-nearest-even(x/d), value = f16(d)·q."""
    b = x.reshape(*x.shape[:-1], -1, 32)
    d = np.abs(b).max(axis=-1, keepdims=True) / np.float32(127)
    q = np.rint(np.divide(b, d, out=np.zeros_like(b), where=d > 0))
    return (q * d.astype(np.float16).astype(np.float32)).reshape(x.shape)
