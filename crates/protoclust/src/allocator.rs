//! The process heap's policy for tensor-sized blocks.
//!
//! A training step allocates and frees the same large activation and gradient buffers every
//! step. glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh `mmap`s and
//! returns them on `free`, so every step faults those pages in and zeroes them again. Keeping
//! them in the heap measured 1–19% faster steps at width 64 (5 of 5 alternated pairs,
//! docs/performance.md) with a lower peak RSS.

/// The environment variable that keeps glibc's own heap policy when set to `default`.
pub const ENV: &str = "PROTOCLUST_MALLOC";

/// Keeps freed large blocks in the process heap for reuse (glibc on Linux; elsewhere nothing),
/// unless `PROTOCLUST_MALLOC=default`.
pub fn keep_freed_blocks() {
    if std::env::var(ENV).is_ok_and(|v| v == "default") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists, and a refused setting leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
