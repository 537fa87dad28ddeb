//! Failed authentications, limited per peer: after [`Policy::max_failures`] within
//! [`Policy::window`], everything from that peer is refused (429) for
//! [`Policy::cool_down`], a valid token included (or the refusals would still tell a
//! right guess from a wrong one). Pure: the caller passes the time, so tests need no
//! clock.
//!
//! A peer is an IPv4 address, or an IPv6 /64 (one host usually has a whole /64, and
//! would otherwise get a fresh budget per address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_failures: u32,
    pub window: Duration,
    pub cool_down: Duration,
    /// Peers remembered at most; beyond it, those not blocked are forgotten first.
    pub max_peers: usize,
}

/// The daemon's policy: ten failures a minute, then a minute's wait.
pub const POLICY: Policy = Policy {
    max_failures: 10,
    window: Duration::from_secs(60),
    cool_down: Duration::from_secs(60),
    max_peers: 10_000,
};

#[derive(Debug, Clone, Copy)]
struct Record {
    /// When the current window's first failure was.
    since: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Limiter {
    policy: Policy,
    peers: HashMap<IpAddr, Record>,
}

/// What a peer is counted as.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl Limiter {
    pub fn new(policy: Policy) -> Limiter {
        Limiter {
            policy,
            peers: HashMap::new(),
        }
    }

    /// `Err(wait)` while `peer` is blocked: how long until it may try again.
    pub fn check(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.peers.get(&key(peer)).and_then(|r| r.blocked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication; `Some(cool_down)` when it blocks the peer.
    pub fn failed(&mut self, peer: IpAddr, now: Instant) -> Option<Duration> {
        let policy = self.policy;
        if self.peers.len() >= policy.max_peers && !self.peers.contains_key(&key(peer)) {
            self.forget(now);
        }
        let record = self.peers.entry(key(peer)).or_insert(Record {
            since: now,
            failures: 0,
            blocked_until: None,
        });
        let blocked = record.blocked_until.is_some_and(|u| u > now);
        if !blocked && now.duration_since(record.since) >= policy.window {
            *record = Record {
                since: now,
                failures: 0,
                blocked_until: None,
            };
        }
        record.failures = record.failures.saturating_add(1);
        if !blocked && record.failures >= policy.max_failures {
            record.blocked_until = Some(now + policy.cool_down);
            return Some(policy.cool_down);
        }
        None
    }

    /// Drops what no longer counts, then, if still full, every peer not blocked.
    fn forget(&mut self, now: Instant) {
        let policy = self.policy;
        let live = |r: &Record| {
            r.blocked_until.is_some_and(|u| u > now) || now.duration_since(r.since) < policy.window
        };
        self.peers.retain(|_, r| live(r));
        if self.peers.len() >= policy.max_peers {
            self.peers
                .retain(|_, r| r.blocked_until.is_some_and(|u| u > now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Policy = Policy {
        max_failures: 3,
        window: Duration::from_secs(60),
        cool_down: Duration::from_secs(30),
        max_peers: 4,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_after_the_failures_then_cools_down() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut l = Limiter::new(TEST);
        let a = ip("192.0.2.1");
        assert_eq!(l.failed(a, t0), None);
        assert_eq!(l.failed(a, t0 + s(1)), None);
        assert_eq!(l.check(a, t0 + s(1)), Ok(()));
        assert_eq!(l.failed(a, t0 + s(2)), Some(s(30)));
        assert_eq!(l.check(a, t0 + s(2)), Err(s(30)));
        assert_eq!(l.check(a, t0 + s(31)), Err(s(1)));
        // Others are not affected.
        assert_eq!(l.check(ip("192.0.2.2"), t0 + s(2)), Ok(()));
        // Failing while blocked does not extend the block.
        assert_eq!(l.failed(a, t0 + s(10)), None);
        assert_eq!(l.check(a, t0 + s(32)), Ok(()));
        // After the cool-down, a new window: one failure does not block again.
        assert_eq!(l.failed(a, t0 + s(100)), None);
        assert_eq!(l.check(a, t0 + s(100)), Ok(()));
    }

    #[test]
    fn failures_spread_over_windows_never_block() {
        let t0 = Instant::now();
        let mut l = Limiter::new(TEST);
        let a = ip("192.0.2.1");
        for i in 0..10 {
            assert_eq!(l.failed(a, t0 + Duration::from_secs(40 * i)), None, "{i}");
        }
    }

    #[test]
    fn an_ipv6_host_is_its_slash_64_and_mapped_v4_is_v4() {
        let t0 = Instant::now();
        let mut l = Limiter::new(TEST);
        for last in 1..=3 {
            l.failed(ip(&format!("2001:db8:1:2::{last}")), t0);
        }
        assert!(l.check(ip("2001:db8:1:2:ffff::9"), t0).is_err());
        assert!(l.check(ip("2001:db8:1:3::1"), t0).is_ok());
        for _ in 0..3 {
            l.failed(ip("::ffff:198.51.100.7"), t0);
        }
        assert!(l.check(ip("198.51.100.7"), t0).is_err());
    }

    #[test]
    fn a_flood_of_peers_keeps_the_blocked_ones() {
        let t0 = Instant::now();
        let mut l = Limiter::new(TEST);
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            l.failed(a, t0);
        }
        for i in 0..20 {
            l.failed(ip(&format!("198.51.100.{i}")), t0);
        }
        assert!(l.peers.len() <= TEST.max_peers);
        assert!(l.check(a, t0).is_err());
    }
}
