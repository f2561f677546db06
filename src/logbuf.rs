//! Recent log entries in memory, for `GET /api/logs` and
//! `GET /api/logs/stream`: a `tracing` layer copies each event into a
//! bounded ring and a broadcast channel. Nothing here sees request bodies
//! or headers, and the daemon never logs tokens or secrets.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

/// Entries kept.
pub const KEPT: usize = 1000;

/// One log entry.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub timestamp: String,
    pub level: String,
    pub target: String,
    pub message: String,
}

/// The process's log ring.
pub struct LogBuffer {
    ring: Mutex<VecDeque<Arc<LogEntry>>>,
    tx: broadcast::Sender<Arc<LogEntry>>,
}

impl LogBuffer {
    fn new() -> Self {
        LogBuffer {
            ring: Mutex::new(VecDeque::with_capacity(KEPT)),
            tx: broadcast::channel(256).0,
        }
    }

    /// Add an entry.
    pub fn push(&self, e: LogEntry) {
        let e = Arc::new(e);
        if let Ok(mut r) = self.ring.lock() {
            if r.len() == KEPT {
                r.pop_front();
            }
            r.push_back(e.clone());
        }
        let _ = self.tx.send(e);
    }

    /// The newest `limit` entries at `min_level` or above, oldest first.
    pub fn recent(&self, limit: usize, level: Option<&str>) -> Vec<Arc<LogEntry>> {
        let Ok(r) = self.ring.lock() else {
            return Vec::new();
        };
        let mut out: Vec<Arc<LogEntry>> = r
            .iter()
            .rev()
            .filter(|e| level.is_none_or(|l| rank(&e.level) >= rank(l)))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// Follow new entries.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogEntry>> {
        self.tx.subscribe()
    }
}

fn rank(level: &str) -> u8 {
    match level.to_ascii_uppercase().as_str() {
        "TRACE" => 0,
        "DEBUG" => 1,
        "INFO" => 2,
        "WARN" => 3,
        _ => 4,
    }
}

/// The global buffer.
pub fn global() -> &'static LogBuffer {
    static BUF: OnceLock<LogBuffer> = OnceLock::new();
    BUF.get_or_init(LogBuffer::new)
}

struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}

/// The `tracing` layer feeding [`global`].
pub struct CaptureLayer;

impl<S: tracing::Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields {
            message: String::new(),
            rest: String::new(),
        };
        event.record(&mut f);
        let meta = event.metadata();
        global().push(LogEntry {
            timestamp: crate::store::now_iso(),
            level: meta.level().to_string(),
            target: meta.target().to_string(),
            message: format!("{}{}", f.message, f.rest),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_is_bounded_and_filters_by_level() {
        let b = LogBuffer::new();
        for i in 0..(KEPT + 10) {
            b.push(LogEntry {
                timestamp: String::new(),
                level: if i % 2 == 0 {
                    "INFO".into()
                } else {
                    "WARN".into()
                },
                target: "t".into(),
                message: format!("m{i}"),
            });
        }
        assert_eq!(b.recent(usize::MAX, None).len(), KEPT);
        let warns = b.recent(3, Some("warn"));
        assert_eq!(warns.len(), 3);
        assert!(warns.iter().all(|e| e.level == "WARN"));
        assert_eq!(warns[2].message, format!("m{}", KEPT + 9));
    }
}
