#!/usr/bin/env python3
"""A markdown table of a training recipe's `summary.csv` (written by `workbench train`), with each
run's final validation loss against the f32 runs' mean and spread.

    python3 scripts/train_summary_markdown.py runs/train-int4-bytes/summary.csv
"""
import csv
import statistics
import sys


def main(path):
    rows = list(csv.DictReader(open(path)))
    f32 = [float(r["val_loss_quantized"]) for r in rows if r["quantizer"] == "f32"]
    ref = statistics.mean(f32) if f32 else None
    byte_level = any(r["val_bpb_quantized"] for r in rows)
    head = ["run", "quantizer", "val loss (quantized fwd)", "vs f32 mean", "val loss (float master)"]
    head += ["bits/byte (quantized)", "bits/byte (float)"] if byte_level else []
    head += ["ppl (quantized)", "ppl (float)", "final train loss", "median s/step", "int GEMM / quantize / f32 GEMM / rest"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        q = float(r["val_loss_quantized"])
        cells = [r["run"], f"`{r['quantizer']}`", f"{q:.4f}", f"{100 * (q / ref - 1):+.1f}%" if ref else "", f"{float(r['val_loss_float']):.4f}"]
        if byte_level:
            cells += [f"{float(r['val_bpb_quantized']):.3f}", f"{float(r['val_bpb_float']):.3f}"]
        cells += [f"{float(r['val_ppl_quantized']):.2f}", f"{float(r['val_ppl_float']):.2f}", f"{float(r['final_train_loss']):.4f}",
                  f"{float(r['median_step_s']):.2f}",
                  " / ".join(f"{100 * float(r[k]):.0f}%" for k in ["linear_int_gemm_share", "linear_quantize_share", "linear_f32_gemm_share", "other_share"])]
        print("| " + " | ".join(cells) + " |")
    u = rows[0]
    extra = f" = {float(u['unigram_bpb']):.3f} bits/byte" if byte_level else ""
    print(f"\nUnigram baseline (training-set frequencies, add-one smoothing) on the validation targets: {float(u['unigram_loss']):.4f} nats{extra}.")
    if len(f32) > 1:
        print(f"f32 over {len(f32)} seeds: mean {ref:.4f}, range {min(f32):.4f}–{max(f32):.4f} (spread {100 * (max(f32) - min(f32)) / ref:.1f}% of the mean).")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/train-int4-bytes/summary.csv")
