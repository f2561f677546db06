//! Access tracking for recall, batched in memory.
//!
//! Every recall bumps `access_count` of what it returned. Writing that per
//! request would put a write behind every read, so hits are summed here and
//! the store writer flushes them in one transaction on a timer.

use dashmap::DashMap;

/// Pending access counts per memory id.
#[derive(Debug, Default)]
pub struct AccessTracker {
    hits: DashMap<String, i64>,
}

impl AccessTracker {
    /// Count one access of each id.
    pub fn record<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        for id in ids {
            *self.hits.entry(id.to_string()).or_insert(0) += 1;
        }
    }

    /// Take everything counted so far.
    pub fn drain(&self) -> Vec<(String, i64)> {
        let keys: Vec<String> = self.hits.iter().map(|e| e.key().clone()).collect();
        keys.into_iter()
            .filter_map(|k| self.hits.remove(&k))
            .collect()
    }

    /// Number of ids waiting for a flush.
    pub fn pending(&self) -> usize {
        self.hits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_summed_until_drained() {
        let t = AccessTracker::default();
        t.record(["a", "b"]);
        t.record(["a"]);
        let mut d = t.drain();
        d.sort();
        assert_eq!(d, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
        assert_eq!(t.pending(), 0);
    }
}
