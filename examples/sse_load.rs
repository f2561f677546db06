//! SSE load client: N subscribers that read everything, one that never
//! reads, and one that measures delivery latency (receipt time minus the
//! event's `created_at`, stamped just before the commit). One thread, one
//! epoll loop: the subscribers cost the machine little, so a load run
//! measures the daemon's fan-out rather than its clients (the Python
//! version, `benches/sse_load.py`, uses a large share of a 2-core box).
//!
//! With `gzip` as the fourth argument every client asks for a compressed
//! stream; the N readers count the bytes as they arrive (a subscriber's
//! own decompression is its machine's business, not the daemon's) and the
//! measuring one decodes them.
//!
//! usage: cargo run --release --example sse_load -- HOST:PORT N SECONDS [gzip]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(addr: &str, gzip: bool) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    let enc = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    let req = format!("GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{enc}\r\n");
    s.write_all(req.as_bytes()).await?;
    Ok(s)
}

/// Undoes chunked transfer encoding (and gzip, when compressed) as bytes arrive.
struct Decoder {
    raw: Vec<u8>,
    headers_done: bool,
    /// Bytes left in the current chunk.
    left: usize,
    gzip: Option<flate2::write::GzDecoder<Vec<u8>>>,
}

impl Decoder {
    fn new(gzip: bool) -> Self {
        Decoder {
            raw: Vec::new(),
            headers_done: false,
            left: 0,
            gzip: gzip.then(|| flate2::write::GzDecoder::new(Vec::new())),
        }
    }

    /// Feeds `input`; returns the event-stream text it completes.
    fn feed(&mut self, input: &[u8]) -> Vec<u8> {
        self.raw.extend_from_slice(input);
        if !self.headers_done {
            let Some(end) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Vec::new();
            };
            self.raw.drain(..end + 4);
            self.headers_done = true;
        }
        let mut body = Vec::new();
        loop {
            if self.left > 0 {
                let k = self.left.min(self.raw.len());
                body.extend(self.raw.drain(..k));
                self.left -= k;
                if self.left > 0 {
                    break;
                }
                continue;
            }
            // Chunk header: [CRLF] hex-size CRLF.
            let start = usize::from(self.raw.starts_with(b"\r\n")) * 2;
            let Some(nl) = self.raw[start..].windows(2).position(|w| w == b"\r\n") else {
                break;
            };
            let size = std::str::from_utf8(&self.raw[start..start + nl])
                .ok()
                .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
                .unwrap_or(0);
            self.raw.drain(..start + nl + 2);
            self.left = size;
            if size == 0 {
                break;
            }
        }
        match &mut self.gzip {
            None => body,
            Some(z) => {
                use std::io::Write;
                if let Err(e) = z.write_all(&body).and_then(|()| z.flush()) {
                    eprintln!("inflate: {e}");
                }
                std::mem::take(z.get_mut())
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:3850".into());
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let secs: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(15);
    let gzip = args.get(4).is_some_and(|a| a == "gzip");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let stop = Instant::now() + Duration::from_secs(secs);
        let mut readers = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = connect(&addr, gzip).await?;
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut bytes = 0usize;
                while let Ok(Ok(k)) =
                    tokio::time::timeout_at(stop.into(), s.read(&mut buf)).await
                {
                    if k == 0 {
                        break;
                    }
                    bytes += k;
                }
                bytes
            }));
        }
        let _stalled = connect(&addr, gzip).await?;
        let mut m = connect(&addr, gzip).await?;
        let mut dec = Decoder::new(gzip);
        let mut buf = vec![0u8; 65536];
        let mut pending = String::new();
        let mut lat: Vec<f64> = Vec::new();
        while let Ok(Ok(k)) = tokio::time::timeout_at(stop.into(), m.read(&mut buf)).await {
            if k == 0 {
                break;
            }
            let now = chrono::Utc::now();
            pending.push_str(&String::from_utf8_lossy(&dec.feed(&buf[..k])));
            while let Some(end) = pending.find("\n\n") {
                let frame: String = pending.drain(..end + 2).collect();
                for line in frame.lines() {
                    let Some(data) = line.strip_prefix("data:") else { continue };
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else { continue };
                    let Some(at) = v["created_at"].as_str() else { continue };
                    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(at) {
                        lat.push((now - t.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0) as f64 / 1e3);
                    }
                }
            }
        }
        let mut total = 0usize;
        for r in readers {
            total += r.await.unwrap_or(0);
        }
        lat.sort_by(|a, b| a.total_cmp(b));
        if lat.is_empty() {
            println!("SSE no events received");
        } else {
            let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
            println!(
                "SSE events={} delivery_ms p50={:.1} p99={:.1} max={:.1} subscribers={n} gzip={gzip} bytes_read={total}",
                lat.len(),
                p(0.5),
                p(0.99),
                lat[lat.len() - 1]
            );
        }
        Ok(())
    })
}
