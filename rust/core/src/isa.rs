//! Whether the core may use AVX-512: the CPU has AVX-512F, unless `PERSONAE_ISA=avx2` in the
//! environment (read once) holds every path to AVX2, so that an AVX-512 machine runs, tests and
//! measures what an AVX2-only CPU would (the GEMM kernel and its first pass, the reranker's
//! first pass, AMP-CF's per-user loops). Every AVX-512 dispatch in the core asks here.

use std::sync::OnceLock;

/// Whether AVX-512F code may run: detected on this CPU and not held back by `PERSONAE_ISA`.
pub fn avx512f() -> bool {
    static CAPPED: OnceLock<bool> = OnceLock::new();
    #[cfg(target_arch = "x86_64")]
    {
        !*CAPPED.get_or_init(|| std::env::var("PERSONAE_ISA").is_ok_and(|v| v == "avx2"))
            && std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = &CAPPED;
        false
    }
}
