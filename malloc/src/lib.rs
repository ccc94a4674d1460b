//! glibc malloc settings for a long-running server, applied once at start.
//!
//! glibc gives every thread that allocates an arena of its own (up to 8 per core) and keeps
//! what is freed inside it; it also raises its mmap threshold after large blocks are freed, so
//! later large buffers come from those arenas and stay there. For shard (many short-lived
//! blocking threads: git, tar, builds; per-connection buffers) that left a day of use at
//! 75 MiB, never returned. With two arenas, blocks of 128 KiB and more always mapped (and so
//! unmapped when freed) and free memory at a heap's top returned past 128 KiB, the same day
//! ends at 49 MiB (`bench/run-day`, where jemalloc and mimalloc ended at 53 and 54 MiB).
//!
//! The `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` environment
//! variables still win: glibc applied them before `main`, and a setting given there is left
//! alone. This crate exists so that shard's own crate stays free of unsafe code.

/// Applies the settings. Call first thing in `main`, before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const SETTINGS: [(&str, libc::c_int, libc::c_int); 3] = [
            ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2),
            ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 128 * 1024),
            ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 128 * 1024),
        ];
        for (variable, parameter, value) in SETTINGS {
            if std::env::var_os(variable).is_none() {
                // SAFETY: mallopt only changes the allocator's parameters; it is called before
                // shard starts any thread, and with parameters glibc defines.
                unsafe {
                    libc::mallopt(parameter, value);
                }
            }
        }
    }
}
