//! Space is given back: new stores use incremental auto-vacuum, small old
//! ones are converted at start, and a retention sweep that purges rows
//! shrinks the database.

use std::path::Path;

use serde_json::json;

use crate::helpers::*;

fn pragma(db: &Path, p: &str) -> i64 {
    signet::store::register_vec_extension();
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open");
    c.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
        .expect(p)
}

#[tokio::test]
async fn a_sweep_that_purges_rows_shrinks_the_database() {
    let t = spawn_with(|c| c.settings.embedding.provider = "none".into()).await;
    let db = signet::store::db_path(&t.workspace);
    assert_eq!(pragma(&db, "auto_vacuum"), 2, "a new store is incremental");
    // 100 memories, each with 30 history rows (2 KB each) older than the
    // history retention, and 2,000 tombstones (2 KB each) past the recover
    // window: the sweep archives the tombstones to a gzip file beside the
    // database and deletes both.
    let big = "lorem ipsum dolor sit amet ".repeat(75);
    let mut body = String::new();
    for i in 0..2_000 {
        body.push_str(
            &json!({"content": format!("forgotten {i}: {big}"), "is_deleted": true,
                    "deleted_at": "2020-01-01T00:00:00.000Z"})
            .to_string(),
        );
        body.push('\n');
    }
    for i in 0..100 {
        let history: Vec<_> = (0..30)
            .map(|k| json!({"event": "updated", "oldContent": format!("{i}/{k} {big}"),
                            "newContent": format!("{i}/{k} {big}"), "createdAt": "2020-01-01T00:00:00.000Z"}))
            .collect();
        body.push_str(&json!({"content": format!("memory {i}"), "history": history}).to_string());
        body.push('\n');
    }
    let r = into_resp(
        t.client
            .post(t.url("/api/memory/import"))
            .body(body)
            .send()
            .await
            .expect("import"),
    )
    .await;
    assert_eq!(r.body["imported"], 2_100, "{}", r.body);
    let before = pragma(&db, "page_count");
    let r = t.post("/api/repair/retention-sweep", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["counts"]["history"], 3_000, "{}", r.body);
    assert_eq!(r.body["counts"]["tombstones"], 2_000, "{}", r.body);
    let freed = r.body["counts"]["vacuumedPages"]
        .as_i64()
        .expect("vacuumedPages");
    let after = pragma(&db, "page_count");
    assert!(
        freed > 0 && after < before / 3,
        "{before} pages → {after} ({freed} freed)"
    );
    assert_eq!(pragma(&db, "freelist_count"), 0);
    assert_eq!(t.get("/api/memories?limit=1").await.body["count"], 100);
    let d = t.get("/api/diagnostics/storage").await.body;
    assert_eq!(d["autoVacuum"], "incremental", "{d}");

    // The archive is export lines: `signet import` brings the tombstones
    // back (into another workspace here), recoverable again.
    let archive = db.parent().expect("dir").join("archive");
    let files: Vec<_> = std::fs::read_dir(&archive)
        .expect("archive dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let other = tempfile::tempdir().expect("dir");
    std::fs::write(
        other.path().join("agent.yaml"),
        "embedding:\n  provider: none\n",
    )
    .expect("yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["import", files[0].to_str().expect("utf-8")])
        .env("SIGNET_PATH", other.path())
        .env_remove("SIGNET_DAEMON_URL")
        .output()
        .expect("signet import");
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(rep["report"]["imported"], 2_000, "{rep}");
    t.stop().await;
}

#[tokio::test]
async fn a_small_store_without_auto_vacuum_is_converted_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let t = spawn_in(dir.path().to_path_buf(), |c| {
        c.settings.embedding.provider = "none".into()
    })
    .await;
    let id = t.remember("kept across the conversion").await;
    t.stop().await;
    let db = signet::store::db_path(dir.path());
    {
        let c = rusqlite::Connection::open(&db).expect("open");
        c.execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
            .expect("to none");
    }
    assert_eq!(pragma(&db, "auto_vacuum"), 0);
    let t = spawn_in(dir.path().to_path_buf(), |c| {
        c.settings.embedding.provider = "none".into()
    })
    .await;
    assert_eq!(pragma(&db, "auto_vacuum"), 2);
    assert_eq!(t.get(&format!("/api/memory/{id}")).await.status, 200);
    t.stop().await;
}
