//! `GET /sse` (alias `/api/events`): committed events as server-sent
//! events, filtered by `?types=`, `?project=` and the caller's scope,
//! resumable with `Last-Event-ID`, with a `: keepalive` comment every 15 s.
//! Unfiltered clients that accept gzip get the stream compressed (each
//! window compressed once for all of them).
//! A client that falls further behind than its buffer is disconnected (it
//! resumes with `Last-Event-ID`); it never slows the writer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_stream::{Stream, StreamExt};
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::{self, Permission};
use super::error::ApiError;
use super::{boxed, with_state, AppState};
use crate::actors::sse::{gzip_trailer, Event, GzPiece, GZIP_HEADER};
use crate::memory::Caller;
use crate::store::Scope;

/// Which events a client wants.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub types: Option<Vec<String>>,
    pub project: Option<String>,
    pub scope: Scope,
}

impl EventFilter {
    /// Whether `e` passes.
    pub fn admits(&self, e: &Event) -> bool {
        self.types
            .as_ref()
            .is_none_or(|t| t.iter().any(|k| k == e.kind))
            && self
                .project
                .as_ref()
                .is_none_or(|p| e.project.as_deref() == Some(p.as_str()))
            && self
                .scope
                .admits(e.project.as_deref(), e.agent.as_deref(), e.user.as_deref())
    }
}

/// Counts connected clients while alive.
struct ClientGuard(Arc<AtomicU64>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EventFilter {
    /// True when the filter passes every event (no types, project or scope).
    fn passes_all(&self) -> bool {
        self.types.is_none() && self.project.is_none() && self.scope.is_unscoped()
    }

    /// The SSE text of the admitted events among `events` (`None` if none).
    fn render<'a>(&self, events: impl Iterator<Item = &'a Arc<Event>>) -> Option<Bytes> {
        let mut out = BytesMut::new();
        for e in events.filter(|e| self.admits(e)) {
            out.extend_from_slice(&e.frame);
        }
        (!out.is_empty()).then(|| out.freeze())
    }
}

/// The comment a quiet stream sends so proxies keep it open.
const KEEPALIVE: &[u8] = b": keepalive\n\n";
/// How long a stream stays quiet before a keepalive.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// What a client's stream carries before it is written.
#[derive(Clone)]
enum Piece {
    /// SSE text as it goes on the wire.
    Plain(Bytes),
    /// Part of a gzip stream.
    Gz(GzPiece),
}

/// Sends `ping` (a keepalive) whenever `inner` has been quiet for `every`.
struct KeepAlive<S> {
    inner: S,
    sleep: Pin<Box<tokio::time::Sleep>>,
    every: Duration,
    ping: Piece,
}

impl<S: Stream<Item = Piece> + Unpin> Stream for KeepAlive<S> {
    type Item = Piece;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Piece>> {
        let every = self.every;
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(b)) => {
                self.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::now() + every);
                Poll::Ready(Some(b))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.sleep
                        .as_mut()
                        .reset(tokio::time::Instant::now() + every);
                    Poll::Ready(Some(self.ping.clone()))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// A gzip stream's running state: its trailer needs the checksum and
/// length of everything it carried.
#[derive(Default)]
struct GzState {
    header_sent: bool,
    crc: crc32fast::Hasher,
    len: u64,
}

/// The bytes a client receives: pieces as they are, and for a gzip stream
/// the header first and, when the stream ends (lagging, shutdown), the
/// trailer, so the client's decoder sees a clean end.
struct Wire<S> {
    inner: S,
    gzip: Option<GzState>,
    done: bool,
}

impl<S: Stream<Item = Piece> + Unpin> Stream for Wire<S> {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(g) = self.gzip.as_mut().filter(|g| !g.header_sent) {
            g.header_sent = true;
            return Poll::Ready(Some(Bytes::from_static(&GZIP_HEADER)));
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Piece::Plain(b))) => Poll::Ready(Some(b)),
            Poll::Ready(Some(Piece::Gz(p))) => {
                if let Some(g) = self.gzip.as_mut() {
                    g.crc.combine(&p.crc);
                    g.len += p.len;
                }
                Poll::Ready(Some(p.bytes))
            }
            Poll::Ready(None) => {
                self.done = true;
                match self.gzip.take() {
                    Some(g) => Poll::Ready(Some(gzip_trailer(g.crc, g.len))),
                    None => Poll::Ready(None),
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A stream that is `Sync` because only `&mut` ever reaches it (warp's
/// streaming body asks for `Sync`; the broadcast receiver is not).
struct Exclusive<S>(std::sync::Mutex<S>);

impl<S: Stream + Unpin> Stream for Exclusive<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        // Never locked, so never poisoned.
        let s = self
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Pin::new(s).poll_next(cx)
    }
}

/// GET /sse and GET /api/events
pub fn stream(st: AppState) -> BoxedFilter<(Response,)> {
    let paths = warp::path!("sse").or(warp::path!("api" / "events")).unify();
    boxed(
        paths
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(warp::header::optional::<String>("last-event-id"))
            .and(warp::header::optional::<String>("accept-encoding"))
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state(st))
            .and_then(
                |caller: Caller,
                 last: Option<String>,
                 enc: Option<String>,
                 q: HashMap<String, String>,
                 st: AppState| async move {
                    let gzip = enc.as_deref().is_some_and(accepts_gzip);
                    Ok::<_, Infallible>(match open(caller, last, gzip, q, st).await {
                        Ok(r) => r,
                        Err(e) => e.to_response(),
                    })
                },
            ),
    )
}

/// Whether an `Accept-Encoding` value admits gzip: named with a non-zero
/// weight, or else covered by `*` with one (`gzip;q=0` refuses it even
/// beside `*`).
fn accepts_gzip(v: &str) -> bool {
    let (mut gzip, mut any) = (None, None);
    for item in v.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let q = parts
            .find_map(|p| {
                let (k, w) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| w.trim().parse::<f32>().ok())?
            })
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") {
            gzip = Some(q > 0.0);
        } else if coding == "*" {
            any = Some(q > 0.0);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// A quiet gzip stream's keepalive, compressed once.
fn deflated_keepalive() -> GzPiece {
    static PING: std::sync::OnceLock<GzPiece> = std::sync::OnceLock::new();
    PING.get_or_init(|| GzPiece::of(KEEPALIVE)).clone()
}

async fn open(
    caller: Caller,
    last: Option<String>,
    gzip: bool,
    q: HashMap<String, String>,
    st: AppState,
) -> Result<Response, ApiError> {
    let after = match last.or_else(|| q.get("lastEventId").cloned()) {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::BadRequest("Last-Event-ID must be an event id".into()))?,
        ),
    };
    let filter = EventFilter {
        types: q.get("types").map(|t| {
            t.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }),
        project: q.get("project").cloned().filter(|p| !p.is_empty()),
        scope: caller.scope.clone(),
    };
    // `pipeline.status` is opt-in (`?types=`): queue depths are daemon-wide
    // diagnostics, so they need that permission.
    let wants_status = filter
        .types
        .as_ref()
        .is_some_and(|t| t.iter().any(|k| k == "pipeline.status"));
    let status_feed = if wants_status {
        st.ops.permit_pipeline_events(&caller)?;
        // Watch first, then read: a change published in between is not
        // lost (at worst it repeats the snapshot, which is skipped below).
        let changes = WatchStream::from_changes(st.pipeline_status.subscribe());
        let now = st.ops.pipeline_summary().await?;
        Some((super::pipeline::status_frame(&now), changes))
    } else {
        None
    };
    let sub = st
        .registry
        .subscribe(after, Duration::from_secs(2))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    st.sse_clients.fetch_add(1, Ordering::Relaxed);
    let guard = ClientGuard(st.sse_clients.clone());
    let seen = sub.seen;
    // Subscribers that take every event and accept gzip share each
    // window's one compression; a filtered stream differs per client, so
    // it goes out as it is.
    let all = filter.passes_all();
    let gzip = gzip && all;
    let opening = filter.render(sub.replay.iter()).map(|r| {
        if gzip {
            Piece::Gz(GzPiece::of(&r))
        } else {
            Piece::Plain(r)
        }
    });
    // A client more than its buffer of windows behind ends its stream
    // here; it resumes with Last-Event-ID. The stream also ends when the
    // daemon shuts down, so graceful shutdown never waits on it.
    let live = BroadcastStream::new(sub.live)
        .take_while(|r| r.is_ok())
        .filter_map(move |r| {
            let batch = r.ok()?;
            // Windows are whole: one is either all before or all after the
            // subscription, and the ones before came in the replay.
            if batch.events.last().is_none_or(|e| e.id <= seen) {
                return None;
            }
            if gzip {
                Some(Piece::Gz(batch.deflated().clone()))
            } else if all {
                // The window's shared bytes, written as they are.
                Some(Piece::Plain(batch.wire.clone()))
            } else {
                filter.render(batch.events.iter()).map(Piece::Plain)
            }
        });
    // Status snapshots ride beside the events, each change as it happens
    // (only filtered streams take them, so they are never compressed).
    let status: Pin<Box<dyn Stream<Item = Piece> + Send>> = match status_feed {
        Some((first, changes)) => {
            // The publisher compares with its own last state, not this
            // client's: skip a snapshot this client already has.
            let mut last: Option<Bytes> = None;
            let frames = tokio_stream::iter([Some(first)])
                .chain(changes)
                .filter_map(move |f| {
                    let f = f?;
                    if last.as_ref() == Some(&f) {
                        return None;
                    }
                    last = Some(f.clone());
                    Some(Piece::Plain(f))
                });
            Box::pin(frames)
        }
        None => Box::pin(tokio_stream::empty()),
    };
    let mut stop = st.shutdown.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    // The event feed's end (a lagging client dropped) ends the stream,
    // status or not: `None` marks it.
    let feed = tokio_stream::iter(opening)
        .chain(live)
        .map(Some)
        .chain(tokio_stream::iter([None]))
        .merge(status.map(Some))
        .take_while(Option::is_some)
        .filter_map(|b| b);
    let events = futures_util::StreamExt::take_until(feed, Box::pin(stopped)).map(move |b| {
        let _alive = &guard;
        b
    });
    let body = Wire {
        inner: KeepAlive {
            inner: Box::pin(events),
            sleep: Box::pin(tokio::time::sleep(KEEPALIVE_EVERY)),
            every: KEEPALIVE_EVERY,
            ping: if gzip {
                Piece::Gz(deflated_keepalive())
            } else {
                Piece::Plain(Bytes::from_static(KEEPALIVE))
            },
        },
        gzip: gzip.then(GzState::default),
        done: false,
    }
    .map(Ok::<_, Infallible>);
    let mut res = warp::reply::stream(Exclusive(std::sync::Mutex::new(body))).into_response();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(res)
}

/// GET /api/logs?limit=100&level=warn
pub fn logs(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "logs")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Diagnostics))
            .and(warp::query::<HashMap<String, String>>())
            .and(with_state(st))
            .and_then(
                |caller: Caller, q: HashMap<String, String>, st: AppState| async move {
                    super::error::reply(st.ops.logs(&caller, &q).await)
                },
            ),
    )
}

/// GET /api/logs/stream — log entries as server-sent events.
pub fn log_stream(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "logs" / "stream")
            .and(warp::get())
            .and(auth::require(st.clone(), Permission::Diagnostics))
            .and(with_state(st))
            .and_then(|caller: Caller, st: AppState| async move {
                let feed = match st.ops.log_feed(&caller).await {
                    Ok(f) => f,
                    Err(e) => return super::error::reply::<()>(Err(e)),
                };
                let mut stop = st.shutdown.clone();
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                let entries = BroadcastStream::new(feed)
                    .take_while(|r| r.is_ok())
                    .filter_map(|r| r.ok());
                let live = futures_util::StreamExt::take_until(entries, stopped).map(|e| {
                    let data = serde_json::to_string(&*e).unwrap_or_default();
                    Ok::<_, Infallible>(warp::sse::Event::default().event("log").data(data))
                });
                let body = warp::sse::keep_alive()
                    .interval(Duration::from_secs(15))
                    .text(" keepalive")
                    .stream(live);
                Ok(warp::sse::reply(body).into_response())
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn accept_encoding_admits_gzip_unless_refused() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("br, GZIP;q=0.8, deflate"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("gzip; Q=0"));
        assert!(!accepts_gzip("gzip;q=0, *"));
        assert!(accepts_gzip("identity;q=0.5, *;q=0.1"));
        assert!(!accepts_gzip("identity, br"));
        assert!(!accepts_gzip("x-gzip-ish"));
        assert!(!accepts_gzip(""));
    }
}
