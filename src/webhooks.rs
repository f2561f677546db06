//! Webhooks: committed events POSTed to configured receivers.
//!
//! Each endpoint has its own delivery task subscribed to the SSE
//! broadcaster, so a slow or dead receiver only ever delays itself: never a
//! write, never another endpoint. A delivery is retried with exponential
//! backoff; after [`BREAKER_THRESHOLD`] events in a row fail, the circuit
//! opens for [`BREAKER_COOLDOWN`] and events in that window are dropped
//! (counted). An endpoint that falls behind the broadcaster's buffer
//! resumes from the event ring.
//!
//! Signature: `X-Signet-Timestamp: <unix seconds>` and
//! `X-Signet-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
//! A receiver recomputes the HMAC over the raw body, compares in constant
//! time, and rejects timestamps more than 5 minutes from its clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::broadcast::error::RecvError;

use crate::actors::sse::Event;
use crate::actors::Registry;

/// Consecutive failed events that open the circuit.
pub const BREAKER_THRESHOLD: u32 = 5;
/// How long an open circuit drops events.
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

pub use crate::config::WebhookConfig;

/// Delivery counters of one endpoint.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub dropped: AtomicU64,
}

/// The signature header value for `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Check a received signature (what a receiver does), constant time.
pub fn verify(secret: &str, timestamp: i64, body: &str, header: &str, now: i64) -> bool {
    if (now - timestamp).abs() > 300 {
        return false;
    }
    let Some(hex_sig) = header.strip_prefix("v1=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.verify_slice(&sig).is_ok()
}

/// The JSON body of one delivery.
pub fn body_of(e: &Event) -> String {
    serde_json::json!({ "id": e.id, "event": e.kind, "data": e.data }).to_string()
}

/// Running delivery tasks; dropping this stops them.
#[derive(Default)]
pub struct Webhooks {
    pub stats: Vec<Arc<WebhookStats>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start one delivery task per configured endpoint.
pub fn start(registry: Registry, hooks: Vec<WebhookConfig>) -> Webhooks {
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled: no HTTP client");
            return Webhooks::default();
        }
    };
    let mut w = Webhooks::default();
    for h in hooks {
        let stats = Arc::new(WebhookStats::default());
        w.tasks.push(tokio::spawn(run(
            registry.clone(),
            client.clone(),
            h,
            stats.clone(),
        )));
        w.stats.push(stats);
    }
    w
}

async fn run(
    registry: Registry,
    client: reqwest::Client,
    hook: WebhookConfig,
    stats: Arc<WebhookStats>,
) {
    let mut last: Option<u64> = None;
    let mut failures_in_row = 0u32;
    let mut open_until: Option<tokio::time::Instant> = None;
    loop {
        let sub = match registry.subscribe(last, Duration::from_secs(2)).await {
            Ok(s) => s,
            Err(_) => {
                // The broadcaster is restarting (or the daemon stopping).
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut live = sub.live;
        // Windows up to `seen` may still come live; they were in the replay.
        let seen = sub.seen;
        let mut pending: std::collections::VecDeque<Arc<Event>> = sub.replay.into();
        loop {
            let ev = match pending.pop_front() {
                Some(e) => e,
                None => match live.recv().await {
                    Ok(batch) => {
                        pending.extend(batch.events.iter().filter(|e| e.id > seen).cloned());
                        continue;
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(url = %hook.url, missed = n, "webhook fell behind; resuming from the ring");
                        break;
                    }
                    Err(RecvError::Closed) => break,
                },
            };
            last = Some(ev.id);
            if !hook.events.is_empty() && !hook.events.iter().any(|k| k == ev.kind) {
                continue;
            }
            if open_until.is_some_and(|t| tokio::time::Instant::now() < t) {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if deliver(&client, &hook, &ev, &stats).await {
                failures_in_row = 0;
                open_until = None;
            } else {
                failures_in_row += 1;
                if failures_in_row >= BREAKER_THRESHOLD {
                    tracing::warn!(url = %hook.url, "webhook circuit open");
                    open_until = Some(tokio::time::Instant::now() + BREAKER_COOLDOWN);
                    failures_in_row = 0;
                }
            }
        }
    }
}

/// Deliver one event with retries; true once the receiver answered 2xx.
async fn deliver(
    client: &reqwest::Client,
    hook: &WebhookConfig,
    ev: &Event,
    stats: &WebhookStats,
) -> bool {
    let body = body_of(ev);
    let mut backoff = Duration::from_millis(hook.initial_backoff_ms.max(1));
    for attempt in 1..=hook.max_attempts.max(1) {
        let ts = chrono::Utc::now().timestamp();
        let res = client
            .post(&hook.url)
            .timeout(Duration::from_millis(hook.timeout_ms.max(1)))
            .header("content-type", "application/json")
            .header("x-signet-event", ev.kind)
            .header("x-signet-timestamp", ts.to_string())
            .header("x-signet-signature", signature(&hook.secret, ts, &body))
            .body(body.clone())
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Ok(r) => {
                tracing::debug!(url = %hook.url, status = r.status().as_u16(), attempt, "webhook refused")
            }
            Err(e) => tracing::debug!(url = %hook.url, error = %e, attempt, "webhook unreachable"),
        }
        stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
        if attempt < hook.max_attempts {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
    tracing::warn!(url = %hook.url, event = ev.id, "webhook delivery failed");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_within_five_minutes_only() {
        let s = signature("k", 1_000, r#"{"a":1}"#);
        assert!(s.starts_with("v1="));
        assert!(verify("k", 1_000, r#"{"a":1}"#, &s, 1_100));
        assert!(!verify("k", 1_000, r#"{"a":1}"#, &s, 1_301));
        assert!(!verify("other", 1_000, r#"{"a":1}"#, &s, 1_000));
        assert!(!verify("k", 1_000, r#"{"a":2}"#, &s, 1_000));
        assert!(!verify("k", 1_000, r#"{"a":1}"#, "v1=zz", 1_000));
    }
}
