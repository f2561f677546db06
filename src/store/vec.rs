//! The sqlite-vec side of the store: the `vec0` table of embeddings.

use rusqlite::Connection;

use super::StoreError;

/// The sqlite-vec version the process loaded.
pub fn version(conn: &Connection) -> Result<String, StoreError> {
    Ok(conn.query_row("SELECT vec_version()", [], |r| r.get(0))?)
}

/// Rows in the vector table.
pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM memory_vectors", [], |r| r.get(0))?)
}
