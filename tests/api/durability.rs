//! Acknowledged writes survive `kill -9` of the daemon process.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::free_port;

fn start(workspace: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_signet"))
        .env("SIGNET_OFFLINE", "1")
        .arg("serve")
        .env("SIGNET_PATH", workspace)
        .env("SIGNET_PORT", port.to_string())
        .env("SIGNET_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn daemon")
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("daemon did not become healthy at {base}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_the_database_stays_intact() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut child = start(dir.path(), port);
    wait_healthy(&client, &base).await;

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let r = client
                    .post(format!("{base}/api/memory/remember"))
                    .json(&json!({"content": format!("durable note {w}-{i}")}))
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status() != 200 {
                    break;
                }
                let Ok(body) = r.json::<serde_json::Value>().await else {
                    break;
                };
                if let Some(id) = body["id"].as_str() {
                    acked.lock().expect("lock").push(id.to_string());
                }
            }
        }));
    }
    // Let the writers run, then kill the daemon without warning.
    while acked.lock().expect("lock").len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 300);

    let mut child = start(dir.path(), port);
    wait_healthy(&client, &base).await;
    let mut missing = Vec::new();
    for id in &acked {
        let r = client
            .get(format!("{base}/api/memory/{id}"))
            .send()
            .await
            .expect("get");
        if r.status() != 200 {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );

    let db = signet::store::db_path(dir.path());
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let live: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM memories WHERE is_deleted = 0",
            [],
            |r| r.get(0),
        )
        .expect("live");
    let indexed: i64 = conn
        .query_row("SELECT COUNT(*) FROM memories_fts_docsize", [], |r| {
            r.get(0)
        })
        .expect("fts rows");
    assert!(live >= acked.len() as i64);
    assert_eq!(indexed, live, "keyword index out of step with live rows");
    child.kill().expect("kill");
    child.wait().expect("reap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_checkpoints_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut child = start(dir.path(), port);
    wait_healthy(&client, &base).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        let r = client
            .post(format!("{base}/api/memory/remember"))
            .json(&json!({"content": format!("note before shutdown {i}")}))
            .send()
            .await
            .expect("send");
        let body: serde_json::Value = r.json().await.expect("json");
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    assert!(dir.path().join(".daemon/pid").exists());
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        !dir.path().join(".daemon/pid").exists(),
        "pid file removed on clean exit"
    );
    let wal = signet::store::db_path(dir.path()).with_extension("db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "WAL checkpointed and truncated on shutdown");
    let conn = rusqlite::Connection::open(signet::store::db_path(dir.path())).expect("open");
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM memories", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 50);
}

#[test]
fn a_malformed_config_file_exits_64_with_one_line() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("agent.yaml"),
        "auth:\n  mode: [not, a, mode]\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_signet"))
        .env("SIGNET_OFFLINE", "1")
        .arg("serve")
        .env("SIGNET_PATH", dir.path())
        .env("SIGNET_PORT", free_port().to_string())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("agent.yaml") && err.contains("mode"), "{err}");
}

#[test]
fn binding_a_public_address_in_local_mode_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_signet"))
        .env("SIGNET_OFFLINE", "1")
        .arg("serve")
        .env("SIGNET_PATH", dir.path())
        .env("SIGNET_BIND", "0.0.0.0")
        .env("SIGNET_PORT", free_port().to_string())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth.mode") && err.contains("127.0.0.1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workspace_is_created_on_first_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("fresh").join("workspace");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut child = start(&ws, port);
    wait_healthy(&client, &base).await;
    assert!(ws.join("memory/memories.db").is_file());
    assert!(ws.join(".daemon/logs").is_dir());
    let pid: u32 = std::fs::read_to_string(ws.join(".daemon/pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("num");
    assert_eq!(pid, child.id());
    child.kill().expect("kill");
    child.wait().expect("reap");
}
