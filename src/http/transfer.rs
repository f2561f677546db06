//! `POST /api/memory/import`: an NDJSON body (one memory a line, the
//! format of `signet export`), read as a stream and handed to the domain in
//! batches, so an import of any size holds one batch in memory. Each line
//! is bounded by `server.maxBodyBytes`.

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::auth::{self, Permission};
use super::error::reply;
use super::{boxed, with_state, AppState};
use crate::memory::transfer::{ImportReport, Importer, BATCH};
use crate::memory::{Caller, MemoryError};
use crate::store::transfer::Line;

/// POST /api/memory/import (admin; NDJSON body) → the import report.
pub fn import(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "memory" / "import")
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Admin))
            .and(warp::body::stream())
            .and(with_state(st))
            .and_then(|caller: Caller, body, st: AppState| async move {
                reply(import_stream(&st, &caller, body).await)
            }),
    )
}

type Pending = Vec<(u64, Result<Line, String>)>;

fn parse(n: u64, raw: &[u8], pending: &mut Pending) {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let parsed = serde_json::from_slice::<Line>(raw).map_err(|e| format!("not a memory line: {e}"));
    pending.push((n, parsed));
}

fn too_long(line: u64, max: usize, imported: u64) -> MemoryError {
    MemoryError::TooLarge(format!(
        "line {line} is over {max} bytes (server.maxBodyBytes); {imported} memories before it were imported"
    ))
}

async fn import_stream<S, B>(
    st: &AppState,
    caller: &Caller,
    body: S,
) -> Result<ImportReport, MemoryError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let mut importer = Importer::start(&st.memories, caller).await?;
    let max_line = st.config.settings.server.max_body_bytes;
    let mut buf: Vec<u8> = Vec::new();
    let mut pending: Pending = Vec::with_capacity(BATCH);
    let mut n = 0u64;
    futures_util::pin_mut!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| MemoryError::BadRequest(format!("reading the body: {e}")))?;
        let scanned = buf.len();
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let len = part.len();
            chunk.advance(len);
        }
        let mut start = 0;
        let mut from = scanned;
        while let Some(p) = buf[from..].iter().position(|b| *b == b'\n') {
            let end = from + p;
            n += 1;
            if end - start > max_line {
                return Err(too_long(n, max_line, importer.imported()));
            }
            parse(n, &buf[start..end], &mut pending);
            start = end + 1;
            from = start;
            if pending.len() >= BATCH {
                importer.push(std::mem::take(&mut pending)).await?;
            }
        }
        buf.drain(..start);
        if buf.len() > max_line {
            return Err(too_long(n + 1, max_line, importer.imported()));
        }
    }
    if !buf.is_empty() {
        n += 1;
        parse(n, &buf, &mut pending);
    }
    if !pending.is_empty() {
        importer.push(pending).await?;
    }
    importer.finish().await
}
