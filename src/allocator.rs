//! glibc's malloc, tuned for the batch buffers of `ingest`.
//!
//! A batch holds its encoded rows in buffers of several MiB that grow by doubling and are all
//! freed once the batch is written. glibc serves a request above its mmap threshold with mmap
//! and unmaps it on free, but each such free raises the threshold to that buffer's size (the
//! "dynamic threshold"), so the next batches' buffers come from the heap instead, where freed
//! space fragments and the peak grows. A threshold set with `mallopt` stays fixed. Measured on
//! the 1 M-message backlog, quiet machine (benches/README.md, "The cost of waiting for the
//! webhooks, and peak memory"): peak RSS 375 MB with glibc's default, 267 MB with 4 MiB, for
//! about 6 % more CPU (page faults on freshly mapped buffers); 128 KiB gave 253 MB for 8 %
//! more on a busy machine.
//!
//! An operator's `MALLOC_MMAP_THRESHOLD_` wins: glibc has read it already, and it is left be.

/// Allocations from this size on are mapped on their own and returned on free.
pub const MMAP_THRESHOLD_BYTES: i32 = 4 << 20;

/// Call first thing in `main`, before other threads start.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes malloc's parameters; nothing else allocates yet.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        }
    }
}
