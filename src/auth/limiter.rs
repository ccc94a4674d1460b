use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Fixed-window counters for login: every attempt counts against the client IP, failed
/// attempts count against the username *from that IP*. Exceeding either answers 429 with
/// Retry-After. Keying failures by (username, IP) means a stranger failing logins for `admin`
/// locks out only their own address, never the real admin at theirs; spreading guesses over
/// many addresses still meets the per-IP limit at each of them.
///
/// Memory is bounded: each map holds at most `MAX_ENTRIES`; when full, expired windows go
/// first, then windows that are not blocking anyone, then (a flood of distinct blocked keys)
/// everything — the limiter forgets rather than grows.
pub struct LoginLimiter {
    per_ip: Mutex<HashMap<String, Window>>,
    per_user: Mutex<HashMap<String, Window>>,
    ip_limit: u32,
    user_limit: u32,
    window: Duration,
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

/// Entries one map may hold.
pub const MAX_ENTRIES: usize = 50_000;

fn user_key(username: &str, ip: &str) -> String {
    format!("{username}\u{0}{ip}")
}

impl LoginLimiter {
    pub fn new(ip_limit: u32, user_limit: u32, window: Duration) -> Self {
        Self {
            per_ip: Mutex::default(),
            per_user: Mutex::default(),
            ip_limit,
            user_limit,
            window,
        }
    }

    /// Counts an attempt from `ip`; `Err(seconds)` when the IP is over its limit.
    pub fn attempt_from(&self, ip: &str) -> Result<(), u64> {
        self.hit(&self.per_ip, ip, self.ip_limit, true)
    }

    /// `Err(seconds)` when `username` already had too many failures from `ip` in this window.
    pub fn check_user(&self, username: &str, ip: &str) -> Result<(), u64> {
        self.hit(
            &self.per_user,
            &user_key(username, ip),
            self.user_limit,
            false,
        )
    }

    pub fn record_failure(&self, username: &str, ip: &str) {
        let _ = self.hit(&self.per_user, &user_key(username, ip), u32::MAX, true);
    }

    pub fn clear_user(&self, username: &str, ip: &str) {
        lock(&self.per_user).remove(&user_key(username, ip));
    }

    /// Entries held now (both maps).
    #[cfg(test)]
    fn entries(&self) -> usize {
        lock(&self.per_ip).len() + lock(&self.per_user).len()
    }

    fn hit(
        &self,
        map: &Mutex<HashMap<String, Window>>,
        key: &str,
        limit: u32,
        count: bool,
    ) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = lock(map);
        if map.len() >= MAX_ENTRIES && !map.contains_key(key) {
            map.retain(|_, w| now.duration_since(w.start) < self.window);
            if map.len() >= MAX_ENTRIES {
                let blocking = self.ip_limit.min(self.user_limit);
                map.retain(|_, w| w.count >= blocking);
            }
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let window = map.entry(key.to_string()).or_insert(Window {
            start: now,
            count: 0,
        });
        if now.duration_since(window.start) >= self.window {
            *window = Window {
                start: now,
                count: 0,
            };
        }
        if window.count >= limit {
            let left = self.window.saturating_sub(now.duration_since(window.start));
            return Err(left.as_secs().max(1));
        }
        if count {
            window.count += 1;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_ip_attempts_and_user_failures_per_address() {
        let limiter = LoginLimiter::new(3, 2, Duration::from_secs(60));
        assert!(limiter.attempt_from("1.1.1.1").is_ok());
        assert!(limiter.attempt_from("1.1.1.1").is_ok());
        assert!(limiter.attempt_from("1.1.1.1").is_ok());
        let retry = limiter.attempt_from("1.1.1.1").unwrap_err();
        assert!((1..=60).contains(&retry));
        assert!(limiter.attempt_from("2.2.2.2").is_ok());

        assert!(limiter.check_user("bob", "6.6.6.6").is_ok());
        limiter.record_failure("bob", "6.6.6.6");
        limiter.record_failure("bob", "6.6.6.6");
        assert!(limiter.check_user("bob", "6.6.6.6").is_err());
        // The real bob, elsewhere, is not locked out by the stranger.
        assert!(limiter.check_user("bob", "10.0.0.5").is_ok());
        limiter.clear_user("bob", "6.6.6.6");
        assert!(limiter.check_user("bob", "6.6.6.6").is_ok());
    }

    #[test]
    fn memory_is_bounded_under_a_flood_of_addresses() {
        let limiter = LoginLimiter::new(5, 5, Duration::from_secs(3600));
        for i in 0..(3 * MAX_ENTRIES) {
            let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            let _ = limiter.attempt_from(&ip);
            limiter.record_failure("admin", &ip);
        }
        assert!(
            limiter.entries() <= 2 * MAX_ENTRIES,
            "{}",
            limiter.entries()
        );
        // A blocked address stays blocked while the flood passes by.
        let limiter = LoginLimiter::new(2, 2, Duration::from_secs(3600));
        for _ in 0..3 {
            let _ = limiter.attempt_from("6.6.6.6");
        }
        for i in 0..(2 * MAX_ENTRIES) {
            let _ = limiter.attempt_from(&format!("flood-{i}"));
        }
        assert!(limiter.attempt_from("6.6.6.6").is_err());
    }
}
