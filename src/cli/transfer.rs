//! `signet export` and `signet import` (also `--from-signet`).
//!
//! Export reads the store directly, read-only, in one read transaction: a
//! consistent snapshot whether or not a daemon is writing. Import goes
//! through the daemon when one holds the workspace (`POST
//! /api/memory/import`, streamed, with `SIGNET_TOKEN`); otherwise it takes
//! the workspace lock itself and runs the same domain operation on the
//! engine (store writer, batches, vector index), without a server.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use super::endpoint::Endpoint;
use crate::config::Config;
use crate::memory::transfer::{ImportReport, Importer, BATCH};
use crate::memory::Caller;
use crate::store::lock::{LockError, WorkspaceLock};
use crate::store::transfer::{self, Line, SignetNotes};

/// Export every memory of the workspace as NDJSON to `out` (a file written
/// whole, then renamed into place) or stdout. Returns the count.
pub fn export(config: &Config, out: Option<&Path>) -> Result<u64, String> {
    let db = config.db_path();
    if !db.is_file() {
        return Err(format!("no database at {}", db.display()));
    }
    crate::store::register_vec_extension();
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    conn.execute_batch("BEGIN").map_err(|e| e.to_string())?;
    let n = match out {
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            let n = transfer::export(&conn, &mut w).map_err(|e| e.to_string())?;
            w.flush().map_err(|e| format!("cannot write: {e}"))?;
            n
        }
        Some(path) => {
            let tmp = PathBuf::from(format!("{}.partial", path.display()));
            let file = std::fs::File::create(&tmp)
                .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let n = transfer::export(&conn, &mut w).map_err(|e| e.to_string())?;
            w.into_inner()
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?
                .sync_all()
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, path)
                .map_err(|e| format!("cannot move {} into place: {e}", tmp.display()))?;
            n
        }
    };
    conn.execute_batch("COMMIT").map_err(|e| e.to_string())?;
    Ok(n)
}

/// What to import.
#[derive(Debug, Clone)]
pub enum Source {
    /// An NDJSON file (`-` for stdin).
    File(PathBuf),
    /// A Signet `memories.db`, read-only.
    Signet(PathBuf),
}

/// What an import did, and (from Signet) what it left behind.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Imported {
    /// `daemon` (through the running daemon) or `direct`.
    pub via: &'static str,
    pub report: ImportReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signet: Option<SignetNotes>,
    /// What was not brought over, and why, in words.
    pub skipped: Vec<String>,
}

fn skipped(config: &Config, report: &ImportReport, notes: Option<&SignetNotes>) -> Vec<String> {
    let mut out = Vec::new();
    if report.existing > 0 {
        out.push(format!(
            "{} memories whose id is already here were left as they are",
            report.existing
        ));
    }
    if report.duplicates > 0 {
        out.push(format!(
            "{} live memories duplicate a live memory here (same content or source in the same project) and were not added",
            report.duplicates
        ));
    }
    if report.refused > 0 {
        out.push(format!(
            "{} lines were refused (see errors)",
            report.refused
        ));
    }
    let Some(notes) = notes else { return out };
    let e = &config.settings.embedding;
    for (model, n) in &notes.vectors_by_model {
        if e.provider == "none" {
            out.push(format!(
                "{n} vectors of {model} not used: embedding is off here"
            ));
        } else if *model != e.model {
            out.push(format!(
                "{n} vectors of {model} not used: this workspace embeds with {}; the memories are queued for embedding",
                e.model
            ));
        }
    }
    for (field, n) in &notes.dropped_fields {
        out.push(format!(
            "{n} memories carried a Signet `{field}` value, which has no place here"
        ));
    }
    out
}

fn gzipped(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// The lines of a file (`.gz`: gzip, such as the tombstone archive), or
/// stdin for `-`.
fn open_lines(path: &Path) -> Result<Box<dyn BufRead + Send>, String> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::BufReader::new(std::io::stdin())));
    }
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if gzipped(path) {
        return Ok(Box::new(std::io::BufReader::new(
            flate2::read::MultiGzDecoder::new(f),
        )));
    }
    Ok(Box::new(std::io::BufReader::new(f)))
}

/// Import `source` into `config`'s workspace.
pub async fn import(
    config: Config,
    source: Source,
    endpoint: Endpoint,
) -> Result<Imported, String> {
    let (signet, notes) = match &source {
        Source::Signet(p) => {
            let (lines, notes) = transfer::read_signet(p)?;
            (Some(lines), Some(notes))
        }
        Source::File(_) => (None, None),
    };
    std::fs::create_dir_all(config.daemon_dir())
        .map_err(|e| format!("cannot create {}: {e}", config.daemon_dir().display()))?;
    let report = match WorkspaceLock::acquire(&config.workspace, &config.daemon_dir()) {
        Err(LockError::Held { .. }) => {
            let body = match (&source, signet) {
                (_, Some(lines)) => reqwest::Body::from(ndjson(&lines)?),
                (Source::File(p), None) if gzipped(p) => {
                    let mut all = Vec::new();
                    std::io::Read::read_to_end(&mut open_lines(p)?, &mut all)
                        .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                    reqwest::Body::from(all)
                }
                (Source::File(p), None) if p != Path::new("-") => {
                    let f = tokio::fs::File::open(p)
                        .await
                        .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
                    reqwest::Body::wrap_stream(tokio_util_stream(f))
                }
                (Source::File(_), None) => {
                    let mut all = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut all)
                        .map_err(|e| format!("cannot read stdin: {e}"))?;
                    reqwest::Body::from(all)
                }
                (Source::Signet(p), None) => {
                    return Err(format!("{} was not read", p.display()));
                }
            };
            let report = through_daemon(&endpoint, body).await?;
            return Ok(Imported {
                via: "daemon",
                skipped: skipped(&config, &report, notes.as_ref()),
                report,
                signet: notes,
            });
        }
        Err(e) => return Err(e.to_string()),
        Ok(lock) => {
            let report = direct(config.clone(), source, signet).await;
            drop(lock);
            report?
        }
    };
    Ok(Imported {
        via: "direct",
        skipped: skipped(&config, &report, notes.as_ref()),
        report,
        signet: notes,
    })
}

fn ndjson(lines: &[Line]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut out, l).map_err(|e| e.to_string())?;
        out.push(b'\n');
    }
    Ok(out)
}

/// A file as a stream of chunks for a request body.
fn tokio_util_stream(
    f: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    futures_util::stream::unfold(f, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}

async fn through_daemon(endpoint: &Endpoint, body: reqwest::Body) -> Result<ImportReport, String> {
    let url = endpoint.url("/api/memory/import");
    let mut req = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-ndjson")
        .header("x-signet-actor-type", "operator")
        .body(body);
    if let Some(t) = &endpoint.token {
        req = req.bearer_auth(t);
    }
    let r = req
        .send()
        .await
        .map_err(|e| format!("the daemon holds the workspace but {url} failed: {e}"))?;
    let status = r.status();
    let text = r.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(text);
        return Err(format!("the daemon refused the import ({status}): {msg}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("unreadable answer from the daemon: {e}"))
}

/// No daemon: the engine (store writer, vector index) without a server.
async fn direct(
    config: Config,
    source: Source,
    signet: Option<Vec<Line>>,
) -> Result<ImportReport, String> {
    let engine = crate::app::Engine::start(Arc::new(config))
        .await
        .map_err(|e| format!("cannot open the workspace: {e:#}"))?;
    let caller = Caller::daemon("signet import", "operator");
    let result = async {
        let mut importer = Importer::start(&engine.memories, &caller)
            .await
            .map_err(|e| e.to_string())?;
        let mut pending = Vec::with_capacity(BATCH);
        match (signet, &source) {
            (Some(lines), _) => {
                for (i, l) in lines.into_iter().enumerate() {
                    pending.push((i as u64 + 1, Ok(l)));
                    if pending.len() >= BATCH {
                        let batch = std::mem::take(&mut pending);
                        importer.push(batch).await.map_err(|e| e.to_string())?;
                    }
                }
            }
            (None, Source::File(p)) => {
                let mut reader = open_lines(p)?;
                let mut n = 0u64;
                let mut raw = String::new();
                loop {
                    raw.clear();
                    let got = reader
                        .read_line(&mut raw)
                        .map_err(|e| format!("line {}: {e}", n + 1))?;
                    if got == 0 {
                        break;
                    }
                    n += 1;
                    if raw.trim().is_empty() {
                        continue;
                    }
                    let parsed = serde_json::from_str::<Line>(raw.trim_end())
                        .map_err(|e| format!("not a memory line: {e}"));
                    pending.push((n, parsed));
                    if pending.len() >= BATCH {
                        let batch = std::mem::take(&mut pending);
                        importer.push(batch).await.map_err(|e| e.to_string())?;
                    }
                }
            }
            (None, Source::Signet(_)) => {}
        }
        if !pending.is_empty() {
            importer.push(pending).await.map_err(|e| e.to_string())?;
        }
        importer.finish().await.map_err(|e| e.to_string())
    }
    .await;
    engine
        .shutdown()
        .await
        .map_err(|e| format!("closing the workspace: {e:#}"))?;
    result
}
