#!/usr/bin/env python3
"""How precisely f32 arithmetic gives GPTQ's Hessian in a rotated basis, on inputs with massive
activations: (a) the Gram matrix of the rotated inputs, (X·T)ᵀ(X·T)/n, both in f32 (the workbench's
path before the congruence), against (b) the Gram matrix of the raw inputs rotated as a k×k matrix,
Tᵀ(XᵀX/n)T (`SiteCalibration.congruence`), each against an f64 reference.

The error is reported relative to the whole Hessian and relative to the Hessian of the inputs
without their massive tokens and channels (the part GPTQ's rounding decisions mostly see), for a
dense rotation (as Hadamard's) and a block-diagonal one with 64-wide blocks (as DuQuant's).
numpy's f32 products run on its BLAS, blocked as the workbench's GEMM is.

    python3 scripts/hessian_precision.py
"""
import numpy as np


def orthogonal(m, rng):
    q, r = np.linalg.qr(rng.standard_normal((m, m)))
    return q * np.sign(np.diag(r))


def main():
    rng = np.random.default_rng(0)
    n, k, window = 65536, 576, 512                 # 128 calibration windows of 512 tokens, hidden 576
    x = rng.standard_normal((n, k)).astype(np.float32)
    x[:, 5] *= 30; x[:, 77] *= 8                    # outlier channels
    x[::window, 5] = 1200; x[::window, 77] = -600   # massive activations on each window's first token
    normal = x.copy(); normal[::window, :] = 0; normal[:, [5, 77]] = 0
    for name, t in [("dense", orthogonal(k, rng)), ("block-64", np.kron(np.eye(k // 64), orthogonal(64, rng)))]:
        t32 = t.astype(np.float32)
        xr = x.astype(np.float64) @ t32.astype(np.float64)
        reference = xr.T @ xr / n
        nr = normal.astype(np.float64) @ t32.astype(np.float64)
        h_normal = nr.T @ nr / n
        rotated = x @ t32
        direct = (rotated.T @ rotated / np.float32(n)).astype(np.float64)
        congruence = (t32.T @ ((x.T @ x / np.float32(n)) @ t32)).astype(np.float64)
        congruence = (congruence + congruence.T) / 2
        for label, h in [("Gram of X·T (f32)", direct), ("Tᵀ·(XᵀX)·T (f32)", congruence)]:
            e = np.linalg.norm(h - reference)
            print(f"{name:9s} {label:19s} ‖E‖/‖H‖ {e / np.linalg.norm(reference):.1e}   "
                  f"‖E‖/‖H without the massive part‖ {e / np.linalg.norm(h_normal):.1e}")


if __name__ == "__main__":
    main()
