//! `signet doctor`: offline checks of a workspace, one line each —
//! `ok`, `warn` or `fail`, with the fix — and a non-zero exit on any fail.

use std::os::unix::fs::PermissionsExt;

use rusqlite::{Connection, OpenFlags};

use crate::auth::secret;
use crate::config::{AuthMode, Config, Env};
use crate::store;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub check: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "fail",
        };
        write!(f, "{l} {}: {}", self.check, self.detail)
    }
}

fn finding(level: Level, check: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        level,
        check,
        detail: detail.into(),
    }
}

/// Run every check against the workspace the environment points at.
pub fn run(env: &dyn Env) -> Vec<Finding> {
    let mut out = Vec::new();
    let config = match Config::load(env) {
        Ok(c) => {
            let file = c
                .config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "no config file (defaults)".into());
            out.push(finding(Level::Ok, "config", format!("{file} parses")));
            for k in &c.unknown_keys {
                out.push(finding(
                    Level::Warn,
                    "config",
                    format!("unknown key '{k}' is ignored; check its spelling"),
                ));
            }
            c
        }
        Err(e) => {
            out.push(finding(
                Level::Fail,
                "config",
                format!("{e}; fix the file (config/agent.yaml in the repo documents every key)"),
            ));
            return out;
        }
    };
    check_secret(&config, &mut out);
    check_port(&config, &mut out);
    check_database(&config, &mut out);
    check_model(&config, &mut out);
    out
}

fn check_secret(config: &Config, out: &mut Vec<Finding>) {
    let p = secret::path(&config.workspace);
    if config.settings.auth.mode == AuthMode::Local {
        out.push(finding(Level::Ok, "secret", "not needed in local mode"));
        return;
    }
    match std::fs::metadata(&p) {
        Err(_) => out.push(finding(
            Level::Warn,
            "secret",
            format!(
                "{} absent; it is created on the next start (all earlier tokens will be void)",
                p.display()
            ),
        )),
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                out.push(finding(
                    Level::Fail,
                    "secret",
                    format!(
                        "{} has mode {mode:o}; others can read the signing key: chmod 600 {}",
                        p.display(),
                        p.display()
                    ),
                ));
            } else if m.len() != secret::SECRET_LEN as u64 {
                out.push(finding(
                    Level::Fail,
                    "secret",
                    format!(
                        "{} holds {} bytes, expected {}; delete it to rotate (voids every token)",
                        p.display(),
                        m.len(),
                        secret::SECRET_LEN
                    ),
                ));
            } else {
                out.push(finding(
                    Level::Ok,
                    "secret",
                    format!("{} present, mode 600", p.display()),
                ));
            }
        }
    }
}

fn check_port(config: &Config, out: &mut Vec<Finding>) {
    let host = if config.bind == "localhost" {
        "127.0.0.1"
    } else {
        config.bind.as_str()
    };
    match std::net::TcpListener::bind((host, config.port)) {
        Ok(_) => out.push(finding(
            Level::Ok,
            "port",
            format!("{host}:{} is free", config.port),
        )),
        Err(_) => match super::pid::running_pid(config) {
            Some(pid) => out.push(finding(
                Level::Ok,
                "port",
                format!(
                    "{host}:{} is held by this workspace's daemon (pid {pid})",
                    config.port
                ),
            )),
            None => out.push(finding(
                Level::Fail,
                "port",
                format!(
                    "{host}:{} is in use by another program; stop it or set SIGNET_PORT",
                    config.port
                ),
            )),
        },
    }
}

fn check_database(config: &Config, out: &mut Vec<Finding>) {
    let db = config.db_path();
    if !db.is_file() {
        out.push(finding(
            Level::Warn,
            "database",
            format!("{} absent; it is created on the first start", db.display()),
        ));
        return;
    }
    store::register_vec_extension();
    let conn = match Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Ok(c) => c,
        Err(e) => {
            out.push(finding(
                Level::Fail,
                "database",
                format!(
                    "cannot open {}: {e}; restore a backup (signet restore)",
                    db.display()
                ),
            ));
            return;
        }
    };
    let integrity: Result<String, _> = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0));
    match integrity {
        Ok(s) if s == "ok" => out.push(finding(
            Level::Ok,
            "database",
            format!("{} passes integrity_check", db.display()),
        )),
        Ok(s) => {
            out.push(finding(
                Level::Fail,
                "database",
                format!("integrity_check: {s}; restore a backup (signet restore)"),
            ));
            return;
        }
        Err(e) => {
            out.push(finding(
                Level::Fail,
                "database",
                format!("integrity_check failed: {e}; restore a backup (signet restore)"),
            ));
            return;
        }
    }
    let pragma = |p: &str| conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0));
    match (pragma("auto_vacuum"), pragma("freelist_count"), pragma("page_size")) {
        (Ok(mode), Ok(free), Ok(size)) if mode != 0 => out.push(finding(
            Level::Ok,
            "free space",
            format!(
                "{free} free pages ({:.1} MB); incremental auto-vacuum gives them back after each retention sweep",
                (free * size) as f64 / 1e6
            ),
        )),
        (Ok(_), Ok(free), Ok(size)) => out.push(finding(
            Level::Warn,
            "free space",
            format!(
                "{free} free pages ({:.1} MB) and no auto-vacuum: deleted rows never shrink the file; with the daemon stopped run: sqlite3 {} 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM;' (databases up to 64 MB are converted when the daemon starts)",
                (free * size) as f64 / 1e6,
                db.display()
            ),
        )),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            out.push(finding(Level::Fail, "free space", e.to_string()))
        }
    }
    match store::vec::version(&conn) {
        Ok(v) => out.push(finding(Level::Ok, "sqlite-vec", format!("loaded {v}"))),
        Err(e) => out.push(finding(
            Level::Fail,
            "sqlite-vec",
            format!("does not load: {e}"),
        )),
    }
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    match (
        count("SELECT COUNT(*) FROM memories WHERE is_deleted = 0"),
        count("SELECT COUNT(*) FROM memories_fts_docsize"),
    ) {
        (Ok(live), Ok(fts)) if live == fts => out.push(finding(Level::Ok, "keyword index", format!("{fts} rows for {live} live memories"))),
        (Ok(live), Ok(fts)) => out.push(finding(
            Level::Fail,
            "keyword index",
            format!("{fts} rows for {live} live memories; rebuild it with: INSERT INTO memories_fts(memories_fts) VALUES('rebuild')"),
        )),
        (Err(e), _) | (_, Err(e)) => out.push(finding(Level::Fail, "keyword index", e.to_string())),
    }
    match (
        count("SELECT COUNT(*) FROM memory_vectors"),
        count("SELECT COUNT(*) FROM memories WHERE is_deleted = 0"),
    ) {
        (Ok(v), Ok(live)) if v <= live => out.push(finding(
            Level::Ok,
            "vector index",
            format!("{v} vectors for {live} live memories"),
        )),
        (Ok(v), Ok(live)) => out.push(finding(
            Level::Warn,
            "vector index",
            format!("{v} vectors for {live} live memories: orphaned vectors"),
        )),
        (Err(e), _) | (_, Err(e)) => out.push(finding(Level::Fail, "vector index", e.to_string())),
    }
}

fn check_model(config: &Config, out: &mut Vec<Finding>) {
    let e = &config.settings.embedding;
    if e.provider != "native" {
        out.push(finding(
            Level::Ok,
            "embedding",
            format!("provider {} (no local model needed)", e.provider),
        ));
        return;
    }
    match crate::embed::model_files::find_local(e, &config.workspace) {
        Ok(Some(dir)) => out.push(finding(
            Level::Ok,
            "embedding",
            format!("model files present in {}", dir.display()),
        )),
        Ok(None) => out.push(finding(
            Level::Warn,
            "embedding",
            format!(
                "native model not found locally; {}; recall stays keyword-only until it is installed (`signet model fetch`)",
                if e.auto_fetch { "the daemon will fetch it at start" } else { "embedding.autoFetch is off" }
            ),
        )),
        Err(err) => out.push(finding(Level::Fail, "embedding", err.to_string())),
    }
}

/// True when no check failed.
pub fn passed(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.level != Level::Fail)
}
