//! SSE load client: N subscribers that read everything, one that never
//! reads, and one that measures delivery latency (receipt time minus the
//! event's `created_at`, stamped just before the commit). One thread, one
//! epoll loop: the subscribers cost the machine little, so a load run
//! measures the daemon's fan-out rather than its clients (the Python
//! version, `benches/sse_load.py`, uses a large share of a 2-core box).
//!
//! usage: cargo run --release --example sse_load -- HOST:PORT N SECONDS

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await?;
    Ok(s)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:3850".into());
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let secs: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(15);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let stop = Instant::now() + Duration::from_secs(secs);
        let mut readers = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = connect(&addr).await?;
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
        let _stalled = connect(&addr).await?;
        let mut m = connect(&addr).await?;
        let mut buf = vec![0u8; 65536];
        let mut pending = String::new();
        let mut lat: Vec<f64> = Vec::new();
        while let Ok(Ok(k)) = tokio::time::timeout_at(stop.into(), m.read(&mut buf)).await {
            if k == 0 {
                break;
            }
            let now = chrono::Utc::now();
            pending.push_str(&String::from_utf8_lossy(&buf[..k]));
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
                "SSE events={} delivery_ms p50={:.1} p99={:.1} max={:.1} subscribers={n} bytes_read={total}",
                lat.len(),
                p(0.5),
                p(0.99),
                lat[lat.len() - 1]
            );
        }
        Ok(())
    })
}
