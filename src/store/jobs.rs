//! The pipeline's job table: counts per status (the queue itself is driven
//! by the extraction pipeline).

use rusqlite::Connection;
use serde::Serialize;

use super::StoreError;

/// Jobs per status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueCounts {
    pub pending: i64,
    pub leased: i64,
    pub completed: i64,
    pub failed: i64,
    pub dead: i64,
}

/// Count jobs by status.
pub fn counts(conn: &Connection) -> Result<QueueCounts, StoreError> {
    let mut c = QueueCounts::default();
    let mut stmt =
        conn.prepare_cached("SELECT status, COUNT(*) FROM memory_jobs GROUP BY status")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (s, n) = row?;
        match s.as_str() {
            "pending" => c.pending = n,
            "leased" => c.leased = n,
            "completed" => c.completed = n,
            "failed" => c.failed = n,
            "dead" => c.dead = n,
            _ => {}
        }
    }
    Ok(c)
}
