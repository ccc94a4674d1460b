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
//!
//! What glibc keeps after a burst of small blocks (a 100,000-line build log followed by 50
//! viewers: the hub's ring, the rendered messages) is free but scattered through the arenas,
//! and only a heap's top is ever returned: 30 MiB of that day's 72 stayed. [`release_soon`]
//! asks for `malloc_trim`, which also returns the free pages inside the heaps; shard calls it
//! when such a burst is over (a deploy ended, a busy log lost its last viewer), not on a timer.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Requests within this long of the first are served by one trim.
const SETTLE: Duration = Duration::from_secs(2);

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

/// Returns free memory inside glibc's heaps to the system, soon and once for every request made
/// meanwhile (on a thread of its own: a trim walks every arena). Never blocks.
pub fn release_soon() {
    static REQUESTS: OnceLock<Mutex<Sender<()>>> = OnceLock::new();
    let requests = REQUESTS.get_or_init(|| {
        let (sender, receiver) = channel::<()>();
        // Without the thread, requests go nowhere: that costs memory, not correctness.
        let _ = std::thread::Builder::new()
            .name("malloc-trim".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                while receiver.recv().is_ok() {
                    std::thread::sleep(SETTLE);
                    while receiver.try_recv().is_ok() {}
                    trim();
                }
            });
        Mutex::new(sender)
    });
    if let Ok(sender) = requests.lock() {
        let _ = sender.send(());
    }
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes every arena's lock itself; it may run beside any allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
