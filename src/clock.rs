//! The daemon's notion of "now" for the records it stamps and the policies
//! that age them (the store writer's timestamps, the retention sweeper's
//! cutoffs). The system clock in production; tests shift it forward to see
//! a month pass in a second, with the same code paths as a real month.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// The wall clock plus an offset that only tests move.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }

    /// How far this clock runs ahead of the system clock.
    pub fn offset(&self) -> chrono::Duration {
        chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// The current time the way the store writes it.
    pub fn now_iso(&self) -> String {
        crate::store::to_iso(self.now())
    }

    /// Move this clock (and every copy of it) forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        // A century is as far as any test needs; beyond, date maths overflows.
        const MAX_MS: i64 = 100 * 366 * 86_400_000;
        let ms = i64::try_from(by.as_millis()).unwrap_or(MAX_MS).min(MAX_MS);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_copy() {
        let c = Clock::default();
        let copy = c.clone();
        let before = copy.now();
        c.advance(std::time::Duration::from_secs(31 * 86_400));
        let gap = copy.now() - before;
        assert!(gap >= chrono::Duration::days(31), "{gap}");
        assert!(gap < chrono::Duration::days(31) + chrono::Duration::seconds(5));
    }
}
