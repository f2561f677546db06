//! Webhooks against real receivers on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signet::webhooks::{verify, WebhookConfig};
use warp::Filter;

use crate::helpers::spawn_with;

/// What a receiver saw: (timestamp header, signature header, body).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A receiver that fails the first `fail_first` requests with 500, and
/// sleeps `delay` before answering.
async fn receiver(fail_first: usize, delay: Duration) -> (String, Seen, Arc<AtomicUsize>) {
    let seen: Seen = Arc::default();
    let hits = Arc::new(AtomicUsize::new(0));
    let (s2, h2) = (seen.clone(), hits.clone());
    let route = warp::post()
        .and(warp::header::<String>("x-signet-timestamp"))
        .and(warp::header::<String>("x-signet-signature"))
        .and(warp::body::bytes())
        .then(move |ts: String, sig: String, body: bytes::Bytes| {
            let (seen, hits) = (s2.clone(), h2.clone());
            async move {
                tokio::time::sleep(delay).await;
                let n = hits.fetch_add(1, Ordering::SeqCst);
                if n < fail_first {
                    return warp::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                seen.lock().expect("lock").push((
                    ts,
                    sig,
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                warp::http::StatusCode::OK
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/hook"), seen, hits)
}

fn hook(url: &str, events: &[&str]) -> WebhookConfig {
    WebhookConfig {
        url: url.into(),
        secret: "whsec-test".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        max_attempts: 5,
        initial_backoff_ms: 50,
        timeout_ms: 1_000,
    }
}

async fn wait_for(seen: &Seen, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while seen.lock().expect("lock").len() < n {
        assert!(
            Instant::now() < deadline,
            "receiver saw {} of {n} deliveries",
            seen.lock().expect("lock").len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gets_signed_events_it_can_verify() {
    let (url, seen, _) = receiver(0, Duration::ZERO).await;
    let app = spawn_with(|c| c.settings.webhooks = vec![hook(&url, &["memory.created"])]).await;
    let id = app.remember("webhook payload").await;
    // A delete is not subscribed: only the create arrives.
    let r = app
        .raw("DELETE", &format!("/api/memory/{id}?reason=x"), None)
        .await;
    assert_eq!(r.status, 200);
    wait_for(&seen, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = seen.lock().expect("lock").clone();
    assert_eq!(got.len(), 1, "only subscribed events: {got:?}");
    let (ts, sig, body) = &got[0];
    let ts: i64 = ts.parse().expect("timestamp");
    assert!(verify(
        "whsec-test",
        ts,
        body,
        sig,
        chrono::Utc::now().timestamp()
    ));
    assert!(!verify(
        "wrong-secret",
        ts,
        body,
        sig,
        chrono::Utc::now().timestamp()
    ));
    let v: serde_json::Value = serde_json::from_str(body).expect("json");
    assert_eq!(v["event"], "memory.created");
    assert_eq!(v["data"]["id"], id.as_str());
    assert!(v["id"].as_u64().expect("event id") >= 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_then_recovers_gets_the_retried_event() {
    let (url, seen, hits) = receiver(2, Duration::ZERO).await;
    let app = spawn_with(|c| c.settings.webhooks = vec![hook(&url, &[])]).await;
    let id = app.remember("retry me").await;
    wait_for(&seen, 1, Duration::from_secs(10)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "two failures then the successful retry"
    );
    let body: serde_json::Value =
        serde_json::from_str(&seen.lock().expect("lock")[0].2).expect("json");
    assert_eq!(body["data"]["id"], id.as_str());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_receiver_does_not_block_writes_or_other_receivers() {
    let (hung_url, _hung_seen, _) = receiver(0, Duration::from_secs(30)).await;
    let (ok_url, ok_seen, _) = receiver(0, Duration::ZERO).await;
    let app =
        spawn_with(|c| c.settings.webhooks = vec![hook(&hung_url, &[]), hook(&ok_url, &[])]).await;
    let started = Instant::now();
    for i in 0..50 {
        app.remember(&format!("written while a receiver hangs {i}"))
            .await;
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "50 remembers took {took:?}");
    wait_for(&ok_seen, 50, Duration::from_secs(15)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_never_fails_a_write() {
    // Nothing listens on this port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let app = spawn_with(|c| {
        c.settings.webhooks = vec![hook(&format!("http://127.0.0.1:{port}/x"), &[])]
    })
    .await;
    for i in 0..10 {
        app.remember(&format!("no receiver {i}")).await;
    }
    assert_eq!(app.get("/api/memories").await.body["stats"]["total"], 10);
    app.stop().await;
}
