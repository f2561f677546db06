//! `signet backup <dest>` and `signet restore <src>`.
//!
//! A backup is a directory shaped like a workspace: `memory/memories.db`
//! (a consistent copy made through SQLite's online backup API in one step,
//! so it is one snapshot even while the daemon writes), the config file,
//! `.daemon/auth-secret` (mode 0600 kept) and `backup.json`. Restore refuses
//! while a daemon holds the workspace, checks the copy, and swaps files in
//! by rename so a crash leaves either the old or the new database.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::auth::secret;
use crate::config::{Config, CONFIG_FILES};
use crate::store;

/// What a backup holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub created_at: String,
    pub version: String,
    pub memories: i64,
    pub files: Vec<String>,
}

fn copy_private(from: &Path, to: &Path, mode: Option<u32>) -> Result<(), String> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::copy(from, to)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    if let Some(m) = mode {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(m))
            .map_err(|e| format!("cannot chmod {}: {e}", to.display()))?;
    }
    Ok(())
}

/// Copy the live database of `config`'s workspace to `dest`.
pub fn backup(config: &Config, dest: &Path) -> Result<Manifest, String> {
    let src_db = config.db_path();
    if !src_db.is_file() {
        return Err(format!("no database at {}", src_db.display()));
    }
    let dest_db = store::db_path(dest);
    if dest_db.exists() {
        return Err(format!(
            "{} already holds a backup; choose an empty directory",
            dest.display()
        ));
    }
    if let Some(dir) = dest_db.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    store::register_vec_extension();
    let src = Connection::open_with_flags(&src_db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", src_db.display()))?;
    src.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let tmp = dest_db.with_extension("db.partial");
    {
        let mut out =
            Connection::open(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        let b = rusqlite::backup::Backup::new(&src, &mut out)
            .map_err(|e| format!("backup failed to start: {e}"))?;
        // One step copies every page inside one read transaction: a single
        // snapshot, never restarted by the daemon's concurrent writes.
        b.step(-1).map_err(|e| format!("backup failed: {e}"))?;
    }
    let check = Connection::open(&tmp).map_err(|e| e.to_string())?;
    let ok: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if ok != "ok" {
        return Err(format!("the copy failed its integrity check: {ok}"));
    }
    check
        .execute_batch("PRAGMA journal_mode = DELETE;")
        .map_err(|e| e.to_string())?;
    let memories: i64 = check
        .query_row(
            "SELECT COUNT(*) FROM memories WHERE is_deleted = 0",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    drop(check);
    std::fs::rename(&tmp, &dest_db).map_err(|e| e.to_string())?;
    let mut files = vec!["memory/memories.db".to_string()];
    if let Some(cfg) = crate::config::find_config_file(&config.workspace) {
        if let Some(name) = cfg.file_name() {
            copy_private(&cfg, &dest.join(name), None)?;
            files.push(name.to_string_lossy().into_owned());
        }
    }
    let sec = secret::path(&config.workspace);
    if sec.is_file() {
        copy_private(&sec, &secret::path(dest), Some(0o600))?;
        files.push(".daemon/auth-secret".into());
    }
    let manifest = Manifest {
        created_at: store::now_iso(),
        version: env!("CARGO_PKG_VERSION").into(),
        memories,
        files,
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    std::fs::write(dest.join("backup.json"), text).map_err(|e| e.to_string())?;
    Ok(manifest)
}

fn swap_in(from: &Path, to: &Path, mode: Option<u32>) -> Result<(), String> {
    let staged: PathBuf = to.with_extension("restore-tmp");
    copy_private(from, &staged, mode)?;
    std::fs::File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| e.to_string())?;
    std::fs::rename(&staged, to)
        .map_err(|e| format!("cannot move {} into place: {e}", to.display()))
}

/// Restore the backup at `src` into `config`'s workspace.
pub fn restore(config: &Config, src: &Path) -> Result<Vec<String>, String> {
    if let Some(pid) = super::pid::running_pid(config) {
        return Err(format!(
            "a daemon (pid {pid}) holds {}; stop it first (signet daemon uninstall, systemctl --user stop signet, or kill {pid})",
            config.workspace.display()
        ));
    }
    let src_db = store::db_path(src);
    let probe = Connection::open_with_flags(&src_db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{} is not a backup: {e}", src.display()))?;
    let ok: String = probe
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("{} is not a backup: {e}", src.display()))?;
    if ok != "ok" {
        return Err(format!("the backup failed its integrity check: {ok}"));
    }
    drop(probe);
    let mut out = Vec::new();
    let dest_db = config.db_path();
    if let Some(dir) = dest_db.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    // Stale WAL files belong to the database being replaced.
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(dest_db.with_extension(ext));
    }
    swap_in(&src_db, &dest_db, None)?;
    out.push(format!("restored {}", dest_db.display()));
    for name in CONFIG_FILES {
        let f = src.join(name);
        if f.is_file() {
            swap_in(&f, &config.workspace.join(name), None)?;
            out.push(format!("restored {name}"));
        }
    }
    let sec = secret::path(src);
    if sec.is_file() {
        std::fs::create_dir_all(config.daemon_dir()).map_err(|e| e.to_string())?;
        swap_in(&sec, &secret::path(&config.workspace), Some(0o600))?;
        out.push("restored .daemon/auth-secret".into());
    }
    Ok(out)
}
