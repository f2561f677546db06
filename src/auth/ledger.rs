//! The rate-limit ledger as a plain type: sliding windows per
//! (actor, operation). The `rate_limit` actor owns one and serialises every
//! check, which makes the counts exact under concurrency.

use std::collections::{HashMap, VecDeque};

use crate::config::{RateLimit, RateLimits};

/// A rate-limited operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateOp {
    Forget,
    Modify,
    BatchForget,
    ForceDelete,
    Admin,
}

/// The ledger's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; retry at this Unix time in milliseconds.
    Limited {
        retry_after_ms: u64,
    },
}

/// Sliding windows of hit times (Unix ms) per (actor, op).
#[derive(Debug)]
pub struct RateLedger {
    limits: RateLimits,
    windows: HashMap<(String, RateOp), VecDeque<u64>>,
}

impl RateLedger {
    /// An empty ledger enforcing `limits`.
    pub fn new(limits: RateLimits) -> Self {
        RateLedger {
            limits,
            windows: HashMap::new(),
        }
    }

    fn limit(&self, op: RateOp) -> RateLimit {
        match op {
            RateOp::Forget => self.limits.forget,
            RateOp::Modify => self.limits.modify,
            RateOp::BatchForget => self.limits.batch_forget,
            RateOp::ForceDelete => self.limits.force_delete,
            RateOp::Admin => self.limits.admin,
        }
    }

    /// Count one hit of every op in `ops` by `actor` at `now_ms`, all or
    /// nothing: if any window is full nothing is counted.
    pub fn check(&mut self, actor: &str, ops: &[RateOp], now_ms: u64) -> Decision {
        let mut retry: Option<u64> = None;
        for op in ops {
            let l = self.limit(*op);
            let w = self.windows.entry((actor.to_string(), *op)).or_default();
            while w.front().is_some_and(|t| t + l.window_ms <= now_ms) {
                w.pop_front();
            }
            if w.len() >= l.max as usize {
                let at = w
                    .front()
                    .map(|t| t + l.window_ms)
                    .unwrap_or(now_ms + l.window_ms);
                retry = Some(retry.map_or(at, |r| r.max(at)));
            }
        }
        if let Some(retry_after_ms) = retry {
            return Decision::Limited { retry_after_ms };
        }
        for op in ops {
            if let Some(w) = self.windows.get_mut(&(actor.to_string(), *op)) {
                w.push_back(now_ms);
            }
        }
        Decision::Allowed
    }

    /// Drop windows with no hit inside their period; returns how many.
    pub fn evict(&mut self, now_ms: u64) -> usize {
        let before = self.windows.len();
        let limits = self.limits.clone();
        self.windows.retain(|(_, op), w| {
            let window = match op {
                RateOp::Forget => limits.forget.window_ms,
                RateOp::Modify => limits.modify.window_ms,
                RateOp::BatchForget => limits.batch_forget.window_ms,
                RateOp::ForceDelete => limits.force_delete.window_ms,
                RateOp::Admin => limits.admin.window_ms,
            };
            w.back().is_some_and(|t| t + window > now_ms)
        });
        before - self.windows.len()
    }

    /// Windows held (for metrics and tests).
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// True when no window is held.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(max: u32) -> RateLedger {
        let l = RateLimit {
            window_ms: 1_000,
            max,
        };
        RateLedger::new(RateLimits {
            forget: l,
            modify: l,
            batch_forget: l,
            force_delete: RateLimit {
                window_ms: 1_000,
                max: 1,
            },
            admin: l,
        })
    }

    #[test]
    fn the_window_slides() {
        let mut r = ledger(2);
        assert_eq!(r.check("a", &[RateOp::Forget], 0), Decision::Allowed);
        assert_eq!(r.check("a", &[RateOp::Forget], 500), Decision::Allowed);
        assert_eq!(
            r.check("a", &[RateOp::Forget], 900),
            Decision::Limited {
                retry_after_ms: 1_000
            }
        );
        assert_eq!(
            r.check("b", &[RateOp::Forget], 900),
            Decision::Allowed,
            "actors are separate"
        );
        assert_eq!(
            r.check("a", &[RateOp::Modify], 900),
            Decision::Allowed,
            "ops are separate"
        );
        assert_eq!(r.check("a", &[RateOp::Forget], 1_000), Decision::Allowed);
    }

    #[test]
    fn a_combined_check_counts_nothing_when_one_window_is_full() {
        let mut r = ledger(5);
        assert_eq!(
            r.check("a", &[RateOp::Forget, RateOp::ForceDelete], 0),
            Decision::Allowed
        );
        assert!(matches!(
            r.check("a", &[RateOp::Forget, RateOp::ForceDelete], 10),
            Decision::Limited { .. }
        ));
        // The refused combined check did not consume a forget.
        for t in 0..4 {
            assert_eq!(r.check("a", &[RateOp::Forget], 20 + t), Decision::Allowed);
        }
        assert!(matches!(
            r.check("a", &[RateOp::Forget], 30),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn idle_windows_are_evicted() {
        let mut r = ledger(5);
        for i in 0..100 {
            r.check(&format!("actor-{i}"), &[RateOp::Forget], 0);
        }
        assert_eq!(r.len(), 100);
        assert_eq!(r.evict(999), 0);
        assert_eq!(r.evict(1_000), 100);
        assert!(r.is_empty());
    }
}
