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
//! when such a burst is over (a deploy ended, a busy log lost its last viewer, the proxy went
//! quiet after a crowd of requests), not on a timer. [`release_after`] does it later, for what is
//! only freed after a timeout (the proxy's idle upstream connections).

use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

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
    request(SETTLE);
}

/// The same, `delay` from now: for memory that is only freed later (idle connections that
/// expire after a timeout).
pub fn release_after(delay: Duration) {
    request(delay.max(SETTLE));
}

fn request(delay: Duration) {
    static REQUESTS: OnceLock<Sender<Instant>> = OnceLock::new();
    let requests = REQUESTS.get_or_init(|| {
        let (sender, receiver) = channel::<Instant>();
        // Without the thread, requests go nowhere: that costs memory, not correctness.
        let _ = std::thread::Builder::new()
            .name("malloc-trim".into())
            .stack_size(64 * 1024)
            .spawn(move || serve(&receiver));
        sender
    });
    let _ = requests.send(Instant::now() + delay);
}

/// The trim thread: trims when the earliest requested time comes, which also serves every
/// request due within [`SETTLE`] of it.
fn serve(requests: &Receiver<Instant>) {
    let mut due: Vec<Instant> = Vec::new();
    loop {
        let received = match due.iter().min() {
            None => requests.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => requests.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        match received {
            Ok(at) => schedule(&mut due, at),
            Err(RecvTimeoutError::Timeout) => {
                trim();
                let served = Instant::now() + SETTLE;
                due.retain(|at| *at > served);
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Adds a trim at `at` unless one within [`SETTLE`] of it is already planned (so the list stays
/// short: one entry per `SETTLE` of the longest delay asked for).
fn schedule(due: &mut Vec<Instant>, at: Instant) {
    let near = |planned: &Instant| planned.max(&at).duration_since(*planned.min(&at)) < SETTLE;
    if !due.iter().any(near) {
        due.push(at);
    }
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes every arena's lock itself; it may run beside any allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_close_together_share_one_trim() {
        let now = Instant::now();
        let mut due = Vec::new();
        schedule(&mut due, now);
        schedule(&mut due, now + Duration::from_millis(500));
        schedule(&mut due, now + Duration::from_secs(60));
        schedule(&mut due, now + Duration::from_millis(60_500));
        schedule(&mut due, now + Duration::from_secs(30));
        assert_eq!(
            due,
            vec![
                now,
                now + Duration::from_secs(60),
                now + Duration::from_secs(30)
            ]
        );
    }
}
