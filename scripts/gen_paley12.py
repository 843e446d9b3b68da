#!/usr/bin/env python3
"""Writes Sources/QuantKernelsAVX512/HadamardPaley12.swift: the H_12 mixing of the AVX-512 Hadamard
row kernel with the signs of the Paley I (q = 11) matrix written into the code.

The arithmetic is `QuadPlan`'s (Sources/QuantKernels/Hadamard.swift), the same for every path: the
twelve inputs of a 16-column slice split into three quads; each quad gives its eight patterns
x0 ± x1 ± x2 ± x3 (u = x0 + x1, v = x0 − x1, w = x2 + x3, z = x2 − x3; u+w, u−w, u+z, u−z, v+w, v−w,
v+z, v−z), and output a = ((P_0 ± P_1) ± P_2) · (±norm). With the signs known at generation time
the 24 patterns stay in registers and each output is two adds or subtracts: 60 additions and 12
multiplies per slice instead of 132 and 12.

Run from the repository root: python3 scripts/gen_paley12.py
"""
Q = 11


def paley_i(q):
    """H = I + S, S = [[0, 1ᵀ], [−1, Q]], Q[i][j] = χ(j − i) (as HadamardTransform.paleyI)."""
    squares = {(x * x) % q for x in range(1, q)}
    chi = lambda a: 0 if a % q == 0 else (1 if a % q in squares else -1)
    n = q + 1
    h = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i == 0:
                s = 0 if j == 0 else 1
            elif j == 0:
                s = -1
            else:
                s = chi((j - 1) - (i - 1))
            h[i][j] = s + (1 if i == j else 0)
    return h


def plan_row(signs):
    """(pattern name, relative sign) per quad and the output sign, as QuadPlan.init."""
    first = signs[0]
    terms = []
    for q in range(3):
        s = signs[4 * q:4 * q + 4]
        r1, r2, r3 = s[1] * s[0], s[2] * s[0], s[3] * s[0]
        base = "u" if r1 > 0 else "v"
        other = {(1, 1): "pw", (-1, -1): "mw", (1, -1): "pz", (-1, 1): "mz"}[(r2, r3)]
        terms.append((f"{base}{other}{q}", s[0] * first))
    return terms, first


def mix_function(h, ht):
    """One straight-line loop body per 16-column slice: 12 loads, 24 patterns, 24 adds, 12 stores.
    Explicit intrinsics: with Swift's SIMD operators LLVM may split 512-bit operations into halves."""
    def stores(matrix, indent):
        out = []
        for a in range(12):
            terms, first = plan_row(matrix[a])
            expr = terms[0][0]
            for pattern, sign in terms[1:]:
                expr = f"{'addF' if sign > 0 else 'subF'}({expr}, {pattern})"
            out.append(f"{indent}st({a}, {expr}, {'nv' if first > 0 else 'minusNv'})")
        return out

    lines = ["    /// `seg_a ← norm·Σ_c H[a][c]·seg_c` (H = `paley12`, or its transpose for the inverse) for the",
             "    /// 12 length-`p` segments of `row` (p a multiple of 16), in place, 16 columns at a time.",
             "    static func mixPaley12(_ row: UnsafeMutablePointer<Float>, _ p: Int, _ norm: Float, transposed: Bool) {",
             "        let r = UnsafeMutableRawPointer(row)",
             "        let nv = V(repeating: norm), minusNv = V(repeating: -norm)",
             "        @inline(__always) func add(_ a: V, _ b: V) -> V { _mm512_add_ps(a, b) }",
             "        @inline(__always) func sub(_ a: V, _ b: V) -> V { _mm512_sub_ps(a, b) }",
             "        // The output sums as FMAs by ±1 (exact products, so the same rounding as add/sub): they run",
             "        // on the FMA pipes while the patterns use the add pipes. `fmaOne` is a variable so that",
             "        // LLVM cannot turn the FMAs back into adds.",
             "        let one = fmaOne, minusOne = V() - fmaOne",
             "        @inline(__always) func addF(_ a: V, _ b: V) -> V { _mm512_fmadd_ps(b, one, a) }",
             "        @inline(__always) func subF(_ a: V, _ b: V) -> V { _mm512_fmadd_ps(b, minusOne, a) }",
             "        var j = 0",
             "        while j < p {",
             "            @inline(__always) func ld(_ c: Int) -> V { r.load(fromByteOffset: 4 &* (c &* p &+ j), as: V.self) }",
             "            @inline(__always) func st(_ a: Int, _ v: V, _ scale: V) {",
             "                r.storeBytes(of: _mm512_mul_ps(v, scale), toByteOffset: 4 &* (a &* p &+ j), as: V.self)",
             "            }"]
    for q in range(3):
        c = 4 * q
        lines.append(f"            let x{c} = ld({c}), x{c + 1} = ld({c + 1}), x{c + 2} = ld({c + 2}), x{c + 3} = ld({c + 3})")
        lines.append(f"            let u{q} = add(x{c}, x{c + 1}), v{q} = sub(x{c}, x{c + 1}), "
                     f"w{q} = add(x{c + 2}, x{c + 3}), z{q} = sub(x{c + 2}, x{c + 3})")
        patterns = [f"{b}{o}{q} = {'add' if o[0] == 'p' else 'sub'}({b}{q}, {o[1]}{q})"
                    for b in "uv" for o in ("pw", "mw", "pz", "mz")]
        for i in range(0, len(patterns), 4):
            lines.append("            let " + ", ".join(patterns[i:i + 4]))
    lines.append("            if transposed {")
    lines += stores(ht, "                ")
    lines.append("            } else {")
    lines += stores(h, "                ")
    lines += ["            }", "            j &+= 16", "        }", "    }"]
    return "\n".join(lines)


def main():
    h = paley_i(Q)
    ht = [[h[c][a] for c in range(12)] for a in range(12)]
    flat = ", ".join(str(v) for row in h for v in row)
    head = f"""// Generated by scripts/gen_paley12.py — do not edit; rerun the script.
// H_12 mixing with the Paley I (q = 11) signs in the code (compiled with -target-cpu cascadelake).
#if arch(x86_64)
import _Builtin_intrinsics.intel

extension AVX512Hadamard {{
    /// The Paley I (q = 11) matrix these kernels hard-code, row-major (`HadamardTransform.construct(12)`
    /// must equal it for them to be used).
    public static let paley12: [Float] = [{flat}]

    /// 1 in every lane, read at run time (see `mixPaley12`).
    nonisolated(unsafe) static var fmaOne = V(repeating: 1)

"""
    body = mix_function(h, ht)
    with open("Sources/QuantKernelsAVX512/HadamardPaley12.swift", "w") as f:
        f.write(head + body + "\n}\n#endif\n")


if __name__ == "__main__":
    main()
