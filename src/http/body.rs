//! Request bodies: read with a size limit, parsed as JSON whatever the
//! `Content-Type` says (Signet clients send `curl -d` form bodies too).

use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

use super::error::ApiError;

/// The most of a refused body read (and dropped) so the client, still
/// sending, can read the 413; a larger body ends the connection.
const DRAIN_BYTES: u64 = 16 * 1024 * 1024;
/// The longest a refused body is drained.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// The raw body, refused with 413 past `limit` bytes (by `Content-Length`
/// up front, or while streaming a chunked body). The rest of a refused
/// body is read and dropped (up to [`DRAIN_BYTES`] or [`DRAIN_TIME`]) before
/// the answer goes out: a client that writes its whole body before reading
/// (most do) would otherwise see a broken pipe instead of the JSON error.
pub fn bytes(limit: usize) -> impl Filter<Extract = (bytes::Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |len, stream| collect(len, stream, limit))
}

async fn collect<S, B>(len: Option<u64>, stream: S, limit: usize) -> Result<bytes::Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = || {
        warp::reject::custom(ApiError::PayloadTooLarge(format!(
            "request body exceeds {limit} bytes"
        )))
    };
    let mut stream = Box::pin(stream);
    if len.is_some_and(|l| l > limit as u64) {
        if len.is_some_and(|l| l <= DRAIN_BYTES) {
            drain(&mut stream, 0).await;
        }
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(len.unwrap_or(0) as usize);
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| {
            warp::reject::custom(ApiError::BadRequest(format!("could not read body: {e}")))
        })?;
        if buf.len() + chunk.remaining() > limit {
            let seen = (buf.len() + chunk.remaining()) as u64;
            drop(buf);
            drain(&mut stream, seen).await;
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

/// Read and drop the rest of a body (`seen` bytes already read), within
/// the drain bounds.
async fn drain<S, B>(stream: &mut std::pin::Pin<Box<S>>, seen: u64)
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut seen = seen;
    let deadline = tokio::time::sleep(DRAIN_TIME);
    tokio::pin!(deadline);
    while seen <= DRAIN_BYTES {
        tokio::select! {
            chunk = stream.next() => match chunk {
                Some(Ok(c)) => seen += c.remaining() as u64,
                _ => return,
            },
            _ = &mut deadline => return,
        }
    }
}

/// Parse JSON bytes; an empty body is `{}`.
pub fn parse<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let raw = if raw.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        raw
    };
    serde_json::from_slice(raw).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::BadRequest(format!("malformed JSON: {e}"))
        } else {
            ApiError::BadRequest(format!("invalid request body: {e}"))
        }
    })
}

/// A JSON body of type `T`, limited to `limit` bytes.
pub fn json<T: DeserializeOwned + Send>(
    limit: usize,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    bytes(limit)
        .and_then(|raw: bytes::Bytes| async move { parse::<T>(&raw).map_err(warp::reject::custom) })
}
