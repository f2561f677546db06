//! A client of the daemon's server-sent events (`GET /sse`,
//! `GET /api/events`) over `reqwest::Response::chunk`: it parses the byte
//! stream into events and comments, optionally through gzip, and every read
//! has a timeout, so no test can hang on a silent stream.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::TestApp;

/// Longest wait for one expected event (debug build, loaded machine).
pub const READ: Duration = Duration::from_secs(10);
/// How long a stream must stay silent to count as "nothing more came".
pub const QUIET: Duration = Duration::from_millis(600);

/// One dispatched server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub event: Option<String>,
    pub data: Value,
}

impl SseEvent {
    pub fn id(&self) -> u64 {
        self.id
            .unwrap_or_else(|| panic!("event without an id: {self:?}"))
    }

    pub fn kind(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }

    /// `data.id`: the memory the event is about.
    pub fn memory(&self) -> &str {
        self.data["id"]
            .as_str()
            .unwrap_or_else(|| panic!("event without data.id: {self:?}"))
    }
}

/// What one read produced.
#[derive(Debug)]
pub enum Next {
    Event(SseEvent),
    /// The server ended the stream cleanly.
    End,
    /// Nothing within the wait.
    Timeout,
    /// The body broke (reset, malformed chunking, ...).
    Failed(String),
}

/// A minimal SSE client over `reqwest::Response::chunk`.
pub struct SseClient {
    resp: reqwest::Response,
    buf: Vec<u8>,
    /// Where the search for the next blank line resumes.
    scanned: usize,
    /// Parsed events not returned yet.
    pub queue: VecDeque<SseEvent>,
    comments: Vec<String>,
    ended: bool,
    failed: Option<String>,
    /// Set when the stream is gzip-encoded: chunks go through it first.
    gunzip: Option<flate2::write::GzDecoder<Vec<u8>>>,
}

impl SseClient {
    pub fn new(resp: reqwest::Response) -> Self {
        SseClient {
            resp,
            buf: Vec::new(),
            scanned: 0,
            queue: VecDeque::new(),
            comments: Vec::new(),
            ended: false,
            failed: None,
            gunzip: None,
        }
    }

    /// A client for a gzip-encoded stream.
    pub fn gzip(resp: reqwest::Response) -> Self {
        let mut c = SseClient::new(resp);
        c.gunzip = Some(flate2::write::GzDecoder::new(Vec::new()));
        c
    }

    /// Split complete (blank-line terminated) blocks off the buffer.
    fn parse(&mut self) {
        loop {
            let from = self.scanned.saturating_sub(1);
            let Some(pos) = self.buf[from..]
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| p + from)
            else {
                self.scanned = self.buf.len();
                return;
            };
            let block: Vec<u8> = self.buf.drain(..pos + 2).collect();
            self.scanned = 0;
            let text = String::from_utf8(block).expect("SSE stream is UTF-8");
            let mut id = None;
            let mut event = None;
            let mut data: Vec<&str> = Vec::new();
            for line in text.split('\n') {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.is_empty() {
                    continue;
                }
                if let Some(c) = line.strip_prefix(':') {
                    self.comments
                        .push(c.strip_prefix(' ').unwrap_or(c).to_string());
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => {
                        id = Some(
                            value
                                .parse::<u64>()
                                .unwrap_or_else(|_| panic!("non-numeric id {value:?}")),
                        )
                    }
                    "event" => event = Some(value.to_string()),
                    "data" => data.push(value),
                    other => panic!("unexpected SSE field {other:?} in {text:?}"),
                }
            }
            if id.is_some() || event.is_some() || !data.is_empty() {
                let raw = data.join("\n");
                let data = serde_json::from_str(&raw)
                    .unwrap_or_else(|e| panic!("data is not JSON ({e}): {raw:?}"));
                self.queue.push_back(SseEvent { id, event, data });
            }
        }
    }

    /// Read one chunk before `deadline`; false on timeout.
    async fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.resp.chunk()).await {
            Err(_) => false,
            Ok(Ok(Some(bytes))) => {
                match &mut self.gunzip {
                    None => self.buf.extend_from_slice(&bytes),
                    Some(z) => {
                        use std::io::Write;
                        if let Err(e) = z.write_all(&bytes).and_then(|()| z.flush()) {
                            self.failed = Some(format!("gzip: {e}"));
                            return true;
                        }
                        self.buf.append(z.get_mut());
                    }
                }
                self.parse();
                true
            }
            Ok(Ok(None)) => {
                self.ended = true;
                // A gzip stream must end with its trailer (checksum and
                // length verified), not just stop.
                if let Some(z) = &mut self.gunzip {
                    if let Err(e) = z.try_finish() {
                        self.failed = Some(format!("gzip stream cut off: {e}"));
                    }
                }
                true
            }
            Ok(Err(e)) => {
                self.failed = Some(e.to_string());
                true
            }
        }
    }

    /// The next event, waiting at most `wait`.
    pub async fn next(&mut self, wait: Duration) -> Next {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Next::Event(e);
            }
            if let Some(f) = &self.failed {
                return Next::Failed(f.clone());
            }
            if self.ended {
                return Next::End;
            }
            if !self.fill(deadline).await {
                return Next::Timeout;
            }
        }
    }

    /// Exactly the next `n` events (each within [`READ`]).
    pub async fn take(&mut self, n: usize) -> Vec<SseEvent> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match self.next(READ).await {
                Next::Event(e) => got.push(e),
                other => panic!(
                    "expected {n} events, got {} ({:?}) then {other:?}",
                    got.len(),
                    summary(&got)
                ),
            }
        }
        got
    }

    /// Every event until the stream stays quiet for [`QUIET`].
    pub async fn drain(&mut self) -> Vec<SseEvent> {
        let mut got = Vec::new();
        loop {
            match self.next(QUIET).await {
                Next::Event(e) => got.push(e),
                Next::Timeout => return got,
                Next::Failed(e) => panic!("stream failed after {:?}: {e}", summary(&got)),
                other => panic!("stream broke after {:?}: {other:?}", summary(&got)),
            }
        }
    }

    /// Assert nothing more arrives for [`QUIET`] (and the stream stays open).
    pub async fn assert_quiet(&mut self, ctx: &str) {
        let extra = self.drain().await;
        assert!(
            extra.is_empty(),
            "{ctx}: unexpected events {:?}",
            summary(&extra)
        );
    }

    /// Wait up to `wait` for the first comment line.
    pub async fn first_comment(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        while self.comments.is_empty() {
            if self.ended || self.failed.is_some() || !self.fill(deadline).await {
                return None;
            }
        }
        self.comments.first().cloned()
    }
}

/// `(id, kind, data.id)` of each event, for assertions and messages.
pub fn summary(events: &[SseEvent]) -> Vec<(u64, String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.id.unwrap_or(0),
                e.kind().to_string(),
                e.data["id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The SSE request, with an optional token and `Last-Event-ID`.
pub fn sse_request(
    t: &TestApp,
    path: &str,
    token: Option<&str>,
    last: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut req = t
        .client
        .get(t.url(path))
        .header("accept", "text/event-stream");
    if let Some(tok) = token {
        req = req.bearer_auth(tok);
    }
    if let Some(l) = last {
        req = req.header("last-event-id", l);
    }
    req
}

/// Send `req` and return the response once its head arrived.
pub async fn head_of(req: reqwest::RequestBuilder, path: &str) -> reqwest::Response {
    tokio::time::timeout(READ, req.send())
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no response head within {READ:?}"))
        .expect("SSE request")
}

/// Send the SSE request and return the response once its head arrived.
pub async fn open_sse(
    t: &TestApp,
    path: &str,
    token: Option<&str>,
    last: Option<&str>,
) -> reqwest::Response {
    head_of(sse_request(t, path, token, last), path).await
}

/// Connect, asserting 200 and `text/event-stream`.
pub async fn subscribe(
    t: &TestApp,
    path: &str,
    token: Option<&str>,
    last: Option<&str>,
) -> SseClient {
    let resp = open_sse(t, path, token, last).await;
    let status = resp.status().as_u16();
    if status != 200 {
        let body = resp.text().await.unwrap_or_default();
        panic!("GET {path}: status {status}, body {body}");
    }
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        ct.starts_with("text/event-stream"),
        "GET {path}: content-type {ct:?}"
    );
    SseClient::new(resp)
}
