//! Concurrency and supervision through the real server.

use serde_json::json;
use signet::actors::store_writer::WriterMsg;

use crate::helpers::{into_resp, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_patches_with_the_same_if_version_update_exactly_once() {
    let app = spawn_app().await;
    let id = app.remember("the original text").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50 {
        let client = app.client.clone();
        let url = app.url(&format!("/api/memory/{id}"));
        set.spawn(async move {
            let r = client
                .patch(url)
                .json(&json!({"content": format!("rewrite number {i}"), "reason": "race", "if_version": 1}))
                .send()
                .await
                .expect("send");
            into_resp(r).await
        });
    }
    let mut updated = 0;
    let mut conflicts = 0;
    while let Some(r) = set.join_next().await {
        let r = r.expect("join");
        match (r.status, r.body["status"].as_str()) {
            (200, Some("updated")) => updated += 1,
            (409, Some("version_conflict")) => {
                conflicts += 1;
                assert_eq!(r.body["currentVersion"], 2);
            }
            other => panic!("unexpected {other:?}: {:?}", r.body),
        }
    }
    assert_eq!((updated, conflicts), (1, 49));
    let rec = app.get(&format!("/api/memory/{id}")).await;
    assert_eq!(rec.body["version"], 2);
    let h = app.get(&format!("/api/memory/{id}/history")).await;
    let events: Vec<&str> = h.body["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect();
    assert_eq!(events, vec!["created", "updated"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_remembers_are_group_committed_and_all_readable() {
    let app = spawn_app().await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = app.client.clone();
        let url = app.url("/api/memory/remember");
        set.spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"content": format!("parallel memory {i}")}))
                .send()
                .await
                .expect("send");
            into_resp(r).await
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        let r = r.expect("join");
        assert_eq!(r.status, 200, "{:?}", r.body);
        ids.push(r.body["id"].as_str().expect("id").to_string());
    }
    let stats = app.app.as_ref().expect("app").writer_stats.clone();
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        batches < 200,
        "expected group commits, got {batches} batches for 200 writes"
    );
    let list = app.get("/api/memories?limit=1000").await;
    assert_eq!(list.body["stats"]["total"], 200);
    for id in ids.iter().take(20) {
        assert_eq!(app.get(&format!("/api/memory/{id}")).await.status, 200);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_after_the_store_writer_panics_still_succeeds() {
    let app = spawn_app().await;
    let before = app.remember("written before the fault").await;
    let handle = app.app.as_ref().expect("app");
    let writer = handle.registry.writer().expect("writer running");
    writer
        .send_message(WriterMsg::InjectPanic)
        .expect("send fault");
    // No waiting: the next write must succeed by itself (committed by the
    // failing writer's thread if it got into its inbox first, else by the
    // restarted writer).
    let after = app.remember("written after the fault").await;
    assert_ne!(before, after);
    assert_eq!(app.get(&format!("/api/memory/{before}")).await.status, 200);
    assert_eq!(app.get(&format!("/api/memory/{after}")).await.status, 200);
    let restarted = async {
        while handle.restarts.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), restarted)
        .await
        .expect("the supervisor restarts the writer");
    let third = app.remember("written by the restarted writer").await;
    assert_eq!(app.get(&format!("/api/memory/{third}")).await.status, 200);
    let restarts = handle.restarts.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(restarts, 1);
    let new_writer = handle.registry.writer().expect("writer running again");
    assert_ne!(new_writer.get_id(), writer.get_id());
    let status = app.get("/api/status").await;
    assert_eq!(status.body["writer"]["restarts"], 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_keeps_failing_is_given_up_and_the_server_stops() {
    let mut app = spawn_app().await;
    let handle = app.app.take().expect("app");
    let mut last = None;
    let mut failed = 0;
    for _ in 0..=signet::actors::supervisor::MAX_RESTARTS {
        // Wait for a writer we have not failed yet, then fail it.
        let mut writer = None;
        for _ in 0..300 {
            writer = handle
                .registry
                .writer()
                .filter(|w| Some(w.get_id()) != last);
            if writer.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let w = writer.expect("supervisor restarted the writer");
        last = Some(w.get_id());
        w.send_message(WriterMsg::InjectPanic)
            .expect("deliver fault");
        failed += 1;
    }
    assert_eq!(failed, signet::actors::supervisor::MAX_RESTARTS + 1);
    // The supervisor gave up: the server shuts down on its own.
    tokio::time::timeout(std::time::Duration::from_secs(20), handle.wait())
        .await
        .expect("server stops after the restart limit")
        .ok();
    assert!(app.client.get(app.url("/health")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_writes_the_store_after_a_clean_stop() {
    let dir = tempfile::tempdir().expect("tmp");
    let app = crate::helpers::spawn_in(dir.path().to_path_buf(), |_| {}).await;
    // One group commit each: many small keyword-index segments, which the
    // writer merges once it has been idle for a moment.
    for i in 0..40 {
        app.remember(&format!("note {i} written one at a time before the stop"))
            .await;
    }
    let registry = app.app.as_ref().expect("app").registry.clone();
    app.stop().await;
    let wal = signet::store::db_path(dir.path()).with_extension("db-wal");
    let len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(len(), 0, "the final checkpoint truncated the WAL");
    // A write that reaches the stopped writer (a caller holding its ref) is
    // refused, not committed after the final checkpoint.
    let late = registry
        .call_writer(std::time::Duration::from_millis(500), |reply| {
            WriterMsg::Write(signet::actors::store_writer::WriteOp::Revoke {
                kind: "jti",
                value: "late".into(),
                at: 0,
                by: "test".into(),
                reply,
            })
        })
        .await;
    assert!(late.is_err(), "a write after the stop was taken");
    // Past the writer's idle delay: a writer thread still alive would merge
    // the index now, after the final checkpoint.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(len(), 0, "nothing wrote after the final checkpoint");
    let conn = rusqlite::Connection::open(signet::store::db_path(dir.path())).expect("open");
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM memories", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 40);
}
