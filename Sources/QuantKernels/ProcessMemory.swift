import CQuantCPU

/// Process-wide allocator settings for numeric work.
public enum ProcessMemory {
    /// On glibc, serve large arrays from the heap and keep freed memory for the next ones: a
    /// 512 × 49,152 logits matrix (100 MB) otherwise comes from a fresh `mmap` each time and pays
    /// about 25,000 page faults (≈ 50 ms, a quarter of an f32 lm_head GEMM) before its first use.
    /// The resident set then stays at its high-water mark. Called once by the CLI at start-up.
    @discardableResult
    public static func keepFreedMemory() -> Bool { qwb_keep_freed_memory() != 0 }
}
