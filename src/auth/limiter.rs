use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Fixed-window counters for login: every attempt counts against the client IP, failed
/// attempts count against the username. Exceeding either answers 429 with Retry-After.
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

/// Entries kept before expired windows are swept.
const SWEEP_AT: usize = 10_000;

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

    /// `Err(seconds)` when `username` already had too many failures in this window.
    pub fn check_user(&self, username: &str) -> Result<(), u64> {
        self.hit(&self.per_user, username, self.user_limit, false)
    }

    pub fn record_failure(&self, username: &str) {
        let _ = self.hit(&self.per_user, username, u32::MAX, true);
    }

    pub fn clear_user(&self, username: &str) {
        lock(&self.per_user).remove(username);
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
        if map.len() >= SWEEP_AT {
            map.retain(|_, w| now.duration_since(w.start) < self.window);
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
    fn limits_ip_attempts_and_user_failures() {
        let limiter = LoginLimiter::new(3, 2, Duration::from_secs(60));
        assert!(limiter.attempt_from("1.1.1.1").is_ok());
        assert!(limiter.attempt_from("1.1.1.1").is_ok());
        assert!(limiter.attempt_from("1.1.1.1").is_ok());
        let retry = limiter.attempt_from("1.1.1.1").unwrap_err();
        assert!((1..=60).contains(&retry));
        assert!(limiter.attempt_from("2.2.2.2").is_ok());

        assert!(limiter.check_user("bob").is_ok());
        limiter.record_failure("bob");
        limiter.record_failure("bob");
        assert!(limiter.check_user("bob").is_err());
        limiter.clear_user("bob");
        assert!(limiter.check_user("bob").is_ok());
    }
}
