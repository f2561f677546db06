//! A small LRU of recall results, valid for one data generation.
//!
//! Agents ask the same context questions turn after turn. A result is
//! stored with the store generation it was computed at (the writer bumps the
//! generation after every commit that changes memories; a flush of access
//! counts alone does not, since usage never moves a rank) and served only
//! while no such commit happened since.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::store::search::Scored;
pub use crate::store::Generation;

/// A cached result and the generation it was computed at.
type Entry = (u64, Arc<Vec<Scored>>);

/// Cached recall results; `None` capacity disables it.
pub struct RecallCache {
    entries: Option<Mutex<LruCache<String, Entry>>>,
    generation: Arc<Generation>,
}

impl RecallCache {
    /// A cache of at most `capacity` results (0 disables caching).
    pub fn new(capacity: usize, generation: Arc<Generation>) -> Self {
        RecallCache {
            entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
            generation,
        }
    }

    /// Whether results are kept at all (a disabled cache needs no key).
    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The generation to tag a result computed from now on.
    pub fn generation(&self) -> u64 {
        self.generation.current()
    }

    /// A result still valid for the current generation.
    pub fn get(&self, key: &str) -> Option<Arc<Vec<Scored>>> {
        let entries = self.entries.as_ref()?;
        let now = self.generation.current();
        let mut map = entries.lock().ok()?;
        match map.get(key) {
            Some((g, v)) if *g == now => Some(v.clone()),
            _ => None,
        }
    }

    /// Store a result computed at generation `at`.
    pub fn put(&self, key: String, at: u64, value: Arc<Vec<Scored>>) {
        if let Some(entries) = &self.entries {
            if let Ok(mut map) = entries.lock() {
                map.put(key, (at, value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(id: &str) -> Scored {
        Scored {
            id: id.into(),
            content: String::new(),
            score: 1.0,
            source: "keyword",
            kind: "fact".into(),
            tags: None,
            pinned: false,
            importance: 0.8,
            who: None,
            project: None,
            created_at: String::new(),
        }
    }

    #[test]
    fn a_result_is_served_until_the_next_commit() {
        let g = Arc::new(Generation::default());
        let c = RecallCache::new(4, g.clone());
        let at = c.generation();
        c.put("q".into(), at, Arc::new(vec![scored("a")]));
        assert_eq!(c.get("q").map(|v| v[0].id.clone()).as_deref(), Some("a"));
        g.bump();
        assert!(c.get("q").is_none());
    }

    #[test]
    fn a_result_computed_across_a_commit_is_never_served() {
        let g = Arc::new(Generation::default());
        let c = RecallCache::new(4, g.clone());
        let at = c.generation();
        g.bump(); // a commit lands while the query runs
        c.put("q".into(), at, Arc::new(vec![scored("a")]));
        assert!(c.get("q").is_none());
    }

    #[test]
    fn capacity_zero_disables_the_cache() {
        let c = RecallCache::new(0, Arc::default());
        c.put("q".into(), 0, Arc::new(vec![scored("a")]));
        assert!(c.get("q").is_none());
    }
}
