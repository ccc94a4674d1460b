use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Fixed-window counters for login: every attempt counts against the client's address, failed
/// attempts count against the username *from that address*. Exceeding either answers 429 with
/// Retry-After. Keying failures by (username, address) means a stranger failing logins for
/// `admin` locks out only their own address, never the real admin at theirs; spreading guesses
/// over many addresses still meets the per-address limit at each of them. An IPv6 client is
/// keyed by its /64: one host usually holds the whole /64, so its addresses are one client.
///
/// Memory is bounded: each map holds at most `MAX_ENTRIES`. When full, expired windows go
/// first, then the least recently used that block no one, then (a flood of distinct blocked
/// keys) the least recently used of those, an eighth of the map at a time; it never forgets
/// everything at once.
pub struct LoginLimiter {
    per_ip: Windows,
    per_user: Windows,
    ip_limit: u32,
    user_limit: u32,
}

/// Requests per user per window for the API (`quotas.api_requests_per_minute`), bounded the
/// same way.
pub struct ApiLimiter {
    windows: Windows,
    limit: u32,
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
    used: Instant,
}

/// Counting windows by key, at most `MAX_ENTRIES` of them.
struct Windows {
    map: Mutex<HashMap<String, Window>>,
    window: Duration,
}

/// Entries one map may hold.
pub const MAX_ENTRIES: usize = 50_000;

/// The key a client address is counted under: an IPv4 address (also when IPv4-mapped), or the
/// /64 an IPv6 address is in. Anything else (no address known) is its own key.
pub fn client_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_string(),
    }
}

fn user_key(username: &str, ip: &str) -> String {
    format!("{username}\u{0}{}", client_key(ip))
}

impl LoginLimiter {
    pub fn new(ip_limit: u32, user_limit: u32, window: Duration) -> Self {
        Self {
            per_ip: Windows::new(window),
            per_user: Windows::new(window),
            ip_limit,
            user_limit,
        }
    }

    /// Counts an attempt from `ip`; `Err(seconds)` when the address is over its limit.
    pub fn attempt_from(&self, ip: &str) -> Result<(), u64> {
        self.per_ip
            .hit(&client_key(ip), self.ip_limit, true, self.blocking())
    }

    /// `Err(seconds)` when `username` already had too many failures from `ip` in this window.
    pub fn check_user(&self, username: &str, ip: &str) -> Result<(), u64> {
        self.per_user.hit(
            &user_key(username, ip),
            self.user_limit,
            false,
            self.blocking(),
        )
    }

    pub fn record_failure(&self, username: &str, ip: &str) {
        let _ = self
            .per_user
            .hit(&user_key(username, ip), u32::MAX, true, self.blocking());
    }

    pub fn clear_user(&self, username: &str, ip: &str) {
        lock(&self.per_user.map).remove(&user_key(username, ip));
    }

    /// The count at which a window blocks someone.
    fn blocking(&self) -> u32 {
        self.ip_limit.min(self.user_limit)
    }

    /// Entries held now (both maps).
    #[cfg(test)]
    fn entries(&self) -> usize {
        lock(&self.per_ip.map).len() + lock(&self.per_user.map).len()
    }
}

impl ApiLimiter {
    /// `limit` requests per minute per key; 0 means no limit.
    pub fn new(limit: u32) -> Self {
        Self {
            windows: Windows::new(Duration::from_secs(60)),
            limit,
        }
    }

    /// Counts one request of `key` (a user id); `Err(seconds)` when over the limit.
    pub fn hit(&self, key: &str) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        self.windows.hit(key, self.limit, true, self.limit)
    }
}

impl Windows {
    fn new(window: Duration) -> Self {
        Self {
            map: Mutex::default(),
            window,
        }
    }

    fn hit(&self, key: &str, limit: u32, count: bool, blocking: u32) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = lock(&self.map);
        if map.len() >= MAX_ENTRIES && !map.contains_key(key) {
            self.evict(&mut map, now, blocking);
        }
        let window = map.entry(key.to_string()).or_insert(Window {
            start: now,
            count: 0,
            used: now,
        });
        window.used = now;
        if now.duration_since(window.start) >= self.window {
            window.start = now;
            window.count = 0;
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

    /// Makes room: expired windows, then the least recently used eighth of those that block
    /// no one, then (only blocked keys left) the least recently used eighth of those.
    fn evict(&self, map: &mut HashMap<String, Window>, now: Instant, blocking: u32) {
        map.retain(|_, w| now.duration_since(w.start) < self.window);
        if map.len() < MAX_ENTRIES {
            return;
        }
        let batch = MAX_ENTRIES / 8;
        for blocked in [false, true] {
            let mut candidates: Vec<(Instant, String)> = map
                .iter()
                .filter(|(_, w)| (w.count >= blocking) == blocked)
                .map(|(k, w)| (w.used, k.clone()))
                .collect();
            candidates.sort_unstable_by_key(|(used, _)| *used);
            for (_, key) in candidates.into_iter().take(batch) {
                map.remove(&key);
            }
            if map.len() < MAX_ENTRIES {
                return;
            }
        }
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

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let limiter = LoginLimiter::new(3, 2, Duration::from_secs(60));
        for i in 0..3 {
            assert!(
                limiter
                    .attempt_from(&format!("2001:db8:1:2::{i:x}"))
                    .is_ok()
            );
        }
        // Another address of the same /64 is the same client.
        assert!(limiter.attempt_from("2001:db8:1:2:ffff::9").is_err());
        assert!(limiter.attempt_from("2001:db8:1:3::1").is_ok());
        limiter.record_failure("admin", "2001:db8:1:2::1");
        limiter.record_failure("admin", "2001:db8:1:2::2");
        assert!(limiter.check_user("admin", "2001:db8:1:2::3").is_err());
        assert_eq!(client_key("::ffff:1.2.3.4"), "1.2.3.4");
    }

    #[test]
    fn a_full_map_forgets_the_least_recently_used_not_everything() {
        let limiter = LoginLimiter::new(100, 100, Duration::from_secs(3600));
        let _ = limiter.attempt_from("1.1.1.1");
        for i in 0..MAX_ENTRIES {
            let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            let _ = limiter.attempt_from(&ip);
            if i % 1000 == 0 {
                // Kept in use: never the least recently used.
                let _ = limiter.attempt_from("1.1.1.1");
            }
        }
        let held = lock(&limiter.per_ip.map).len();
        assert!(held > MAX_ENTRIES / 2, "{held}");
        assert!(held <= MAX_ENTRIES);
        assert!(lock(&limiter.per_ip.map).contains_key("1.1.1.1"));
        assert!(!lock(&limiter.per_ip.map).contains_key("10.0.0.1"));
    }

    #[test]
    fn the_api_limit_counts_per_key_and_zero_means_none() {
        let api = ApiLimiter::new(2);
        assert!(api.hit("u1").is_ok());
        assert!(api.hit("u1").is_ok());
        assert!(api.hit("u1").is_err());
        assert!(api.hit("u2").is_ok());
        let open = ApiLimiter::new(0);
        for _ in 0..10 {
            assert!(open.hit("u1").is_ok());
        }
    }
}
