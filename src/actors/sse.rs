//! The SSE broadcaster: numbers committed events, keeps the last
//! `ring_size` of them for `Last-Event-ID` resumes, and fans them out to
//! subscribers through a bounded broadcast channel.
//!
//! The store writer sends `Publish` after a commit with `send_message`,
//! which never waits: a slow consumer can only fall behind its own bounded
//! channel and is then dropped by its stream (it reconnects with
//! `Last-Event-ID`), so no consumer can stall writers.
//!
//! Commits are gathered into windows of at most `coalesce`: the first
//! commit after a quiet spell goes out at once, and under load the commits
//! of each window go out together, rendered to SSE text once. Every
//! subscriber then wakes once per window rather than once per commit, and
//! the ones that take everything write the shared bytes as they are. With
//! hundreds of subscribers, per-commit wakes and per-client copies cost
//! more than the commits themselves (see `benches/README.md`).
//!
//! Subscribers are dealt into [`GROUPS`] groups, and a fan-out task hands
//! each window to one group after another, spread over a quarter of a window.
//! Waking every subscriber at once would keep both workers writing to
//! sockets for milliseconds while requests wait in the run queue behind
//! them; a group at a time, requests slip in between.
//!
//! If the broadcaster panics, the supervisor restarts it with an empty
//! ring: the events of the open window (at most one window, not yet
//! numbered) are lost with it, and clients, whose streams end, resume
//! from an empty ring. Ids keep rising across the restart.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::sync::broadcast;

/// One event as subscribers see it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Monotonic within a daemon run.
    pub id: u64,
    /// `memory.created`, `memory.updated`, ...
    pub kind: &'static str,
    /// Scope fields of the record the event is about (for filtering).
    #[serde(skip)]
    pub project: Option<String>,
    #[serde(skip)]
    pub agent: Option<String>,
    #[serde(skip)]
    pub user: Option<String>,
    /// The JSON body of the `data:` line.
    pub data: serde_json::Value,
    /// This event in SSE wire format: a slice of its window's buffer.
    #[serde(skip)]
    pub frame: Bytes,
}

/// The events of one window, delivered to subscribers as one message so a
/// large batch never overflows a client's buffer by itself.
#[derive(Debug)]
pub struct EventBatch {
    pub events: Vec<Arc<Event>>,
    /// The whole window in SSE wire format, rendered once for every
    /// subscriber that takes all of it.
    pub wire: Bytes,
    /// `wire` compressed, made by the first gzip subscriber that needs it.
    deflated: OnceLock<GzPiece>,
}

impl EventBatch {
    /// The window as a self-contained run of deflate blocks (see
    /// [`deflate_block`]), shared by every gzip subscriber.
    pub fn deflated(&self) -> &GzPiece {
        self.deflated.get_or_init(|| GzPiece::of(&self.wire))
    }
}

/// A piece of a gzip event stream: compressed bytes plus the checksum and
/// length of what they hold, so each client can write a correct gzip
/// trailer when its stream ends without hashing what it sent.
#[derive(Debug, Clone)]
pub struct GzPiece {
    pub bytes: Bytes,
    /// CRC-32 of the uncompressed text, combinable with the pieces before.
    pub crc: crc32fast::Hasher,
    /// Length of the uncompressed text.
    pub len: u64,
}

impl GzPiece {
    /// `plain` compressed as a self-contained run (see [`deflate_block`]).
    pub fn of(plain: &[u8]) -> Self {
        let mut crc = crc32fast::Hasher::new();
        crc.update(plain);
        GzPiece {
            bytes: deflate_block(plain),
            crc,
            len: plain.len() as u64,
        }
    }
}

/// The end of a gzip stream after runs of [`deflate_block`]: an empty final
/// block, then the CRC-32 and length (mod 2^32) of all the text, so a
/// strict decoder sees a clean end rather than a cut.
pub fn gzip_trailer(crc: crc32fast::Hasher, len: u64) -> Bytes {
    let mut t = Vec::with_capacity(10);
    t.extend_from_slice(&[0x03, 0x00]);
    t.extend_from_slice(&crc.finalize().to_le_bytes());
    t.extend_from_slice(&(len as u32).to_le_bytes());
    Bytes::from(t)
}

/// The 10-byte gzip member header that opens a compressed event stream.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// `data` as raw deflate blocks that need nothing before them and end on
/// a byte boundary (a sync flush, no final block): a fresh dictionary per
/// call, so such runs concatenate into one valid stream after
/// [`GZIP_HEADER`]. That is what lets one compression of a window serve
/// every subscriber, each of which joined the stream at a different point.
pub fn deflate_block(data: &[u8]) -> Bytes {
    use std::io::Write;
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail; `flush` is the sync flush.
    let _ = enc.write_all(data);
    let _ = enc.flush();
    // Taken before the encoder drops, so its final block goes nowhere.
    Bytes::from(std::mem::take(enc.get_mut()))
}

/// A shared [`EventBatch`].
pub type Batch = Arc<EventBatch>;

/// Appends one event in SSE wire format (`event:`, `data:`, `id:`, blank
/// line). `data` is compact JSON, so it holds no line break.
fn write_frame(out: &mut BytesMut, kind: &str, data: &serde_json::Value, id: u64) {
    use std::fmt::Write;
    // Writing into a growable buffer cannot fail.
    let _ = write!(out, "event:{kind}\ndata:{data}\nid:{id}\n\n");
}

/// An event before the broadcaster numbers it.
#[derive(Debug, Clone)]
pub struct Draft {
    pub kind: &'static str,
    pub project: Option<String>,
    pub agent: Option<String>,
    pub user: Option<String>,
    pub data: serde_json::Value,
}

/// What a new subscriber gets: the missed events, then the live feed.
pub struct Subscription {
    pub replay: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Batch>,
    /// The last event committed before the subscription: the live feed may
    /// still carry windows up to it (its group's turn had not come), and
    /// those are skipped.
    pub seen: u64,
}

/// Subscriber groups the fan-out visits one after another.
pub const GROUPS: usize = 8;

/// Messages to the broadcaster.
pub enum SseMsg {
    /// Number, remember and fan out committed events (from the writer).
    Publish(Vec<Draft>),
    /// The current window is over: send what it gathered.
    Flush,
    /// Subscribe, replaying what followed `after` (if still in the ring).
    Subscribe {
        after: Option<u64>,
        reply: RpcReplyPort<Subscription>,
    },
}

/// Startup arguments.
#[derive(Clone)]
pub struct SseArgs {
    pub ring_size: usize,
    /// Per-subscriber buffer (in windows) before a slow consumer is dropped.
    pub channel_size: usize,
    /// Longest a committed event waits to be sent with the commits after it
    /// (zero sends each commit on its own).
    pub coalesce: Duration,
    /// Events published so far (shared with metrics).
    pub published: Arc<AtomicU64>,
}

/// The actor.
pub struct Broadcaster;

/// Broadcaster state.
pub struct SseState {
    ring: VecDeque<Arc<Event>>,
    next_id: u64,
    /// One channel per subscriber group.
    groups: Vec<broadcast::Sender<Batch>>,
    /// Where the next subscriber goes.
    next_group: usize,
    /// Windows to the fan-out task.
    fanout: tokio::sync::mpsc::UnboundedSender<Batch>,
    args: SseArgs,
    /// Drafts of the open window.
    pending: Vec<Draft>,
    /// When the last window was sent.
    last_flush: Option<Instant>,
    /// A `Flush` is on its way.
    flush_due: bool,
}

impl SseState {
    /// Number the open window's drafts, keep them in the ring and send them.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.last_flush = Some(Instant::now());
        let drafts = std::mem::take(&mut self.pending);
        let mut buf = BytesMut::with_capacity(drafts.len() * 320);
        let mut spans = Vec::with_capacity(drafts.len());
        for (i, d) in drafts.iter().enumerate() {
            let start = buf.len();
            write_frame(&mut buf, d.kind, &d.data, self.next_id + i as u64);
            spans.push(start..buf.len());
        }
        let wire = buf.freeze();
        let mut batch = Vec::with_capacity(drafts.len());
        for (d, span) in drafts.into_iter().zip(spans) {
            let ev = Arc::new(Event {
                id: self.next_id,
                kind: d.kind,
                project: d.project,
                agent: d.agent,
                user: d.user,
                data: d.data,
                frame: wire.slice(span),
            });
            self.next_id += 1;
            self.args.published.fetch_add(1, Ordering::Relaxed);
            if self.ring.len() == self.args.ring_size {
                self.ring.pop_front();
            }
            self.ring.push_back(ev.clone());
            batch.push(ev);
        }
        // The fan-out task ends only with this state.
        let _ = self.fanout.send(Arc::new(EventBatch {
            events: batch,
            wire,
            deflated: OnceLock::new(),
        }));
    }
}

impl Actor for Broadcaster {
    type Msg = SseMsg;
    type State = SseState;
    type Arguments = SseArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<SseMsg>,
        args: SseArgs,
    ) -> Result<SseState, ActorProcessingErr> {
        let groups: Vec<broadcast::Sender<Batch>> = (0..GROUPS)
            .map(|_| broadcast::channel(args.channel_size.max(1)).0)
            .collect();
        let (fanout, windows) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(fan_out(windows, groups.clone(), args.coalesce / 4));
        // Ids continue across a restart of this actor within one process.
        let next_id = args.published.load(Ordering::Relaxed) + 1;
        Ok(SseState {
            ring: VecDeque::with_capacity(args.ring_size),
            next_id,
            groups,
            next_group: 0,
            fanout,
            args,
            pending: Vec::new(),
            last_flush: None,
            flush_due: false,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<SseMsg>,
        msg: SseMsg,
        st: &mut SseState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SseMsg::Publish(drafts) => {
                st.pending.extend(drafts);
                if st.flush_due {
                    return Ok(());
                }
                let since = st.last_flush.map(|t| t.elapsed());
                match since {
                    Some(s) if s < st.args.coalesce => {
                        // Inside a window: send with whatever else comes.
                        st.flush_due = true;
                        // Detached: the timer task ends by itself.
                        drop(me.send_after(st.args.coalesce - s, || SseMsg::Flush));
                    }
                    _ => st.flush(),
                }
            }
            SseMsg::Flush => {
                st.flush_due = false;
                st.flush();
            }
            SseMsg::Subscribe { after, reply } => {
                // Close the open window first: the ring then holds every
                // committed event, and the new subscriber's feed starts
                // exactly after it.
                st.flush();
                let replay = match after {
                    Some(a) => st.ring.iter().filter(|e| e.id > a).cloned().collect(),
                    None => Vec::new(),
                };
                let g = st.next_group % st.groups.len();
                st.next_group = st.next_group.wrapping_add(1);
                let _ = reply.send(Subscription {
                    replay,
                    live: st.groups[g].subscribe(),
                    seen: st.next_id - 1,
                });
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<SseMsg>,
        st: &mut SseState,
    ) -> Result<(), ActorProcessingErr> {
        st.flush();
        Ok(())
    }
}

/// Hands each window to every group in turn, spreading the groups over
/// `spread`. Windows that queue up meanwhile go out together, in order, so
/// a group never sees a window before an earlier one.
async fn fan_out(
    mut windows: tokio::sync::mpsc::UnboundedReceiver<Batch>,
    groups: Vec<broadcast::Sender<Batch>>,
    spread: Duration,
) {
    let gap = spread / groups.len().max(1) as u32;
    // Timers tick in whole milliseconds.
    let gap = if spread.is_zero() {
        Duration::ZERO
    } else {
        gap.max(Duration::from_millis(1))
    };
    let mut due = Vec::new();
    while windows.recv_many(&mut due, 64).await > 0 {
        let start = tokio::time::Instant::now();
        for (i, g) in groups.iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                tokio::time::sleep_until(start + gap * i as u32).await;
            }
            for b in &due {
                // A group with no subscribers is fine.
                let _ = g.send(b.clone());
            }
        }
        due.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn deflate_blocks_concatenate_into_one_gzip_stream() {
        let parts: [&[u8]; 3] = [
            b"event:memory.created\ndata:{\"id\":\"a\"}\nid:1\n\n",
            b": keepalive\n\n",
            b"event:memory.deleted\ndata:{\"id\":\"a\"}\nid:2\n\n",
        ];
        let mut stream = GZIP_HEADER.to_vec();
        let (mut crc, mut len) = (crc32fast::Hasher::new(), 0);
        for p in parts {
            let piece = GzPiece::of(p);
            stream.extend_from_slice(&piece.bytes);
            crc.combine(&piece.crc);
            len += piece.len;
        }
        // A stream cut off without a trailer, as when a client disconnects:
        // everything sent so far decodes.
        let mut out = Vec::new();
        let mut dec = flate2::read::GzDecoder::new(&stream[..]);
        let _ = dec.read_to_end(&mut out);
        assert_eq!(out, parts.concat());
        // With the trailer a strict decoder ends cleanly (checksum verified).
        stream.extend_from_slice(&gzip_trailer(crc, len));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&stream[..])
            .read_to_end(&mut out)
            .expect("a complete gzip stream");
        assert_eq!(out, parts.concat());
        // A wrong checksum is caught, so the trailer is really checked.
        let n = stream.len();
        stream[n - 8] ^= 1;
        assert!(flate2::read::GzDecoder::new(&stream[..])
            .read_to_end(&mut Vec::new())
            .is_err());
    }
}
