//! Self-hosting tools through the real binary: service install, backup
//! under load, restore, doctor.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{free_port, spawn_app, spawn_in};

fn signet(args: &[&str], workspace: &Path, home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signet"))
        .env("SIGNET_OFFLINE", "1")
        .args(args)
        .env("SIGNET_PATH", workspace)
        .env("HOME", home)
        .env("SIGNET_PORT", "3999")
        .env_remove("SIGNET_BIND")
        .env_remove("SIGNET_HOST")
        .output()
        .expect("run signet")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn daemon_install_writes_a_systemd_user_unit_and_uninstall_removes_it() {
    let home = tempfile::tempdir().expect("home");
    let ws = tempfile::tempdir().expect("ws");
    let unit = home.path().join(".config/systemd/user/signet.service");

    let dry = signet(
        &["daemon", "install", "--dry-run", "--platform", "systemd"],
        ws.path(),
        home.path(),
    );
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(text(&dry).contains("would write"));
    assert!(!unit.exists(), "dry run writes nothing");

    let out = signet(
        &["daemon", "install", "--no-start", "--platform", "systemd"],
        ws.path(),
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let body = std::fs::read_to_string(&unit).expect("unit written");
    let bin = std::fs::canonicalize(env!("CARGO_BIN_EXE_signet")).expect("bin");
    assert!(
        body.contains(&format!("ExecStart={} serve", bin.display())),
        "{body}"
    );
    assert!(body.contains("Restart=on-failure"));
    assert!(body.contains("RestartSec=5"));
    assert!(body.contains("Environment=SIGNET_PORT=3999"));
    assert!(body.contains(&format!("Environment=SIGNET_PATH={}", ws.path().display())));
    let log = ws.path().join(".daemon/logs/daemon.log");
    assert!(body.contains(&format!("StandardOutput=append:{}", log.display())));
    assert!(body.contains("WantedBy=default.target"));
    assert!(ws.path().join(".daemon/logs").is_dir());

    let st = signet(
        &["daemon", "status", "--platform", "systemd"],
        ws.path(),
        home.path(),
    );
    assert!(text(&st).contains("installed:"), "{}", text(&st));

    let out = signet(
        &["daemon", "uninstall", "--no-stop", "--platform", "systemd"],
        ws.path(),
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!unit.exists());
    let st = signet(
        &["daemon", "status", "--platform", "systemd"],
        ws.path(),
        home.path(),
    );
    assert!(text(&st).contains("not installed"), "{}", text(&st));
}

#[test]
fn daemon_install_writes_a_launchd_agent_with_keepalive() {
    let home = tempfile::tempdir().expect("home");
    let ws = tempfile::tempdir().expect("ws");
    let out = signet(
        &["daemon", "install", "--no-start", "--platform", "launchd"],
        ws.path(),
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let plist = home
        .path()
        .join("Library/LaunchAgents/ai.signet.daemon.plist");
    let body = std::fs::read_to_string(&plist).expect("plist written");
    let bin = std::fs::canonicalize(env!("CARGO_BIN_EXE_signet")).expect("bin");
    assert!(body.contains("<string>ai.signet.daemon</string>"));
    assert!(body.contains(&format!("<string>{}</string>", bin.display())));
    assert!(body.contains("<key>KeepAlive</key>\n  <true/>"));
    assert!(body.contains("<key>RunAtLoad</key>\n  <true/>"));
    assert!(body.contains("<key>SIGNET_PATH</key>"));
    assert!(body.contains("<string>3999</string>"));
    assert!(body.contains("daemon.log"));
    let out = signet(
        &["daemon", "uninstall", "--no-stop", "--platform", "launchd"],
        ws.path(),
        home.path(),
    );
    assert!(out.status.success());
    assert!(!plist.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_write_load_holds_every_earlier_write_and_passes_integrity_check() {
    let app = spawn_app().await;
    let ws = app.workspace.clone();
    std::fs::create_dir_all(ws.join(".daemon")).expect("dir");
    let secret = ws.join(".daemon/auth-secret");
    std::fs::write(&secret, [9u8; 32]).expect("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(ws.join("agent.yaml"), "search:\n  top_k: 20\n").expect("config");

    let mut before = Vec::new();
    for i in 0..200 {
        before.push(
            app.remember(&format!("written before the backup {i}"))
                .await,
        );
    }
    // Keep writing while the backup runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let during: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, url, stop, during) = (
            app.client.clone(),
            app.url("/api/memory/remember"),
            stop.clone(),
            during.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = client
                    .post(&url)
                    .json(&json!({"content": format!("during backup {w}-{i}")}))
                    .send()
                    .await
                    .expect("send");
                let body: serde_json::Value = r.json().await.expect("json");
                during
                    .lock()
                    .expect("lock")
                    .push(body["id"].as_str().expect("id").to_string());
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dest = tempfile::tempdir().expect("dest");
    let target = dest.path().join("snap");
    let home = tempfile::tempdir().expect("home");
    let (ws2, target2, home2) = (ws.clone(), target.clone(), home.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        signet(&["backup", target2.to_str().expect("utf8")], &ws2, &home2)
    })
    .await
    .expect("join");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !during.lock().expect("lock").is_empty(),
        "writes ran during the backup"
    );

    let db = signet::store::db_path(&target);
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("backup opens");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(ok, "ok");
    for id in &before {
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM memories WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .expect("q");
        assert_eq!(n, 1, "acknowledged write {id} missing from the backup");
    }
    let copied = target.join(".daemon/auth-secret");
    assert_eq!(
        std::fs::read(&copied).expect("secret copied"),
        vec![9u8; 32]
    );
    assert_eq!(
        std::fs::metadata(&copied)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(target.join("agent.yaml").is_file());
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(target.join("backup.json")).expect("manifest"),
    )
    .expect("json");
    assert!(manifest["memories"].as_i64().expect("count") >= 200);

    // Restore is refused while this workspace's daemon runs.
    let (ws3, target3, home3) = (ws.clone(), target.clone(), home.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        signet(&["restore", target3.to_str().expect("utf8")], &ws3, &home3)
    })
    .await
    .expect("join");
    assert!(!out.status.success());
    assert!(text(&out).contains("stop it first"), "{}", text(&out));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_workspace_serves_the_backed_up_data() {
    let app = spawn_app().await;
    let kept = app.remember("this memory is in the backup").await;
    let ws = app.workspace.clone();
    let dest = tempfile::tempdir().expect("dest");
    let snap = dest.path().join("snap");
    let config = signet::config::Config::for_workspace(&ws);
    signet::cli::backup::backup(&config, &snap).expect("backup");
    let lost = app.remember("this memory comes after the backup").await;
    app.stop().await;

    let home = tempfile::tempdir().expect("home");
    let out = signet(&["restore", snap.to_str().expect("utf8")], &ws, home.path());
    assert!(out.status.success(), "{}", text(&out));

    let app = spawn_in(ws.clone(), |_| {}).await;
    assert_eq!(app.get(&format!("/api/memory/{kept}")).await.status, 200);
    assert_eq!(app.get(&format!("/api/memory/{lost}")).await.status, 404);
    assert_eq!(app.get("/api/memories").await.body["stats"]["total"], 1);
    app.stop().await;
}

fn doctor(ws: &Path) -> (bool, String) {
    let home = tempfile::tempdir().expect("home");
    let out = Command::new(env!("CARGO_BIN_EXE_signet"))
        .env("SIGNET_OFFLINE", "1")
        .arg("doctor")
        .env("SIGNET_PATH", ws)
        .env("HOME", home.path())
        .env("SIGNET_PORT", free_port().to_string())
        .output()
        .expect("doctor");
    (out.status.success(), text(&out))
}

async fn healthy_workspace(mode: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("ws");
    std::fs::write(
        dir.path().join("agent.yaml"),
        format!("auth:\n  mode: {mode}\nembedding:\n  provider: none\n"),
    )
    .expect("yaml");
    let app = spawn_in(dir.path().to_path_buf(), |c| {
        c.settings.auth.mode = if mode == "team" {
            signet::config::AuthMode::Team
        } else {
            signet::config::AuthMode::Local
        };
        c.settings.embedding.provider = "none".into();
    })
    .await;
    let mut req = app
        .client
        .post(app.url("/api/memory/remember"))
        .json(&json!({"content": "a memory for the doctor"}));
    if mode == "team" {
        let secret = signet::auth::secret::load(dir.path()).expect("secret created on start");
        let now = chrono::Utc::now().timestamp();
        let claims = signet::auth::Claims {
            sub: "doctor-test".into(),
            role: signet::auth::Role::Agent,
            scope: Default::default(),
            iat: now,
            exp: now + 600,
            jti: None,
        };
        req = req.bearer_auth(signet::auth::token::sign(&claims, &secret));
    }
    assert_eq!(req.send().await.expect("send").status(), 200);
    app.stop().await;
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_healthy_workspace_with_every_line_ok() {
    let ws = healthy_workspace("team").await;
    let (ok, out) = doctor(ws.path());
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 7, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("ok ")), "{out}");
    assert!(out.contains("secret:") && out.contains("mode 600"));
    assert!(
        out.contains("keyword index: 1 rows for 1 live memories"),
        "{out}"
    );
    assert!(out.contains("sqlite-vec: loaded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_bad_yaml_with_the_file_and_key() {
    let ws = healthy_workspace("local").await;
    std::fs::write(ws.path().join("agent.yaml"), "search:\n  top_k: many\n").expect("yaml");
    let (ok, out) = doctor(ws.path());
    assert!(!ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("fail config:") && l.contains("top_k")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_a_world_readable_secret() {
    let ws = healthy_workspace("team").await;
    let secret = ws.path().join(".daemon/auth-secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (ok, out) = doctor(ws.path());
    assert!(!ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("fail secret:") && l.contains("chmod 600")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_a_corrupted_database() {
    let ws = healthy_workspace("local").await;
    let db = signet::store::db_path(ws.path());
    let mut bytes = std::fs::read(&db).expect("db");
    // Keep the header, wreck the pages after it.
    for b in bytes.iter_mut().skip(4096).take(8192) {
        *b = 0xA5;
    }
    std::fs::write(&db, bytes).expect("write");
    let (ok, out) = doctor(ws.path());
    assert!(!ok);
    assert!(
        out.lines().any(|l| l.starts_with("fail database:")),
        "{out}"
    );
}
