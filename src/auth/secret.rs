//! The workspace's signing secret: 32 random bytes at
//! `.daemon/auth-secret`, mode 0600. Created on the first start in a
//! non-local mode; deleting it and restarting rotates it (every token dies).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Length of the secret in bytes.
pub const SECRET_LEN: usize = 32;

/// Where the secret lives.
pub fn path(workspace: &Path) -> PathBuf {
    workspace.join(".daemon").join("auth-secret")
}

/// Problems with the secret; each names the fix.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read {0}: {1} (fix its permissions, or delete it to rotate the secret)")]
    Unreadable(PathBuf, std::io::Error),
    #[error("{0} holds {1} bytes, expected {SECRET_LEN} (delete it to generate a new one; every token is then void)")]
    WrongSize(PathBuf, usize),
    #[error("cannot create {0}: {1}")]
    Create(PathBuf, std::io::Error),
    #[error("no secret at {0}: start the daemon once with auth.mode team or hybrid to create it")]
    Missing(PathBuf),
}

/// Read the secret.
pub fn load(workspace: &Path) -> Result<Vec<u8>, SecretError> {
    let p = path(workspace);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SecretError::Missing(p)),
        Err(e) => return Err(SecretError::Unreadable(p, e)),
    };
    if bytes.len() != SECRET_LEN {
        return Err(SecretError::WrongSize(p, bytes.len()));
    }
    Ok(bytes)
}

/// Read the secret, creating it (mode 0600) if absent.
pub fn load_or_create(workspace: &Path) -> Result<Vec<u8>, SecretError> {
    match load(workspace) {
        Err(SecretError::Missing(p)) => {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| SecretError::Create(p.clone(), e))?;
            }
            let mut bytes = vec![0u8; SECRET_LEN];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&p)
                .map_err(|e| SecretError::Create(p.clone(), e))?;
            f.write_all(&bytes)
                .map_err(|e| SecretError::Create(p.clone(), e))?;
            f.sync_all()
                .map_err(|e| SecretError::Create(p.clone(), e))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| SecretError::Create(p.clone(), e))?;
            tracing::info!(path = %p.display(), "created auth secret");
            Ok(bytes)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_then_reused() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = load_or_create(dir.path()).expect("create");
        let b = load_or_create(dir.path()).expect("reuse");
        assert_eq!(a, b);
        assert_eq!(a.len(), SECRET_LEN);
        let mode = std::fs::metadata(path(dir.path()))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_wrong_size_secret_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join(".daemon")).expect("dir");
        std::fs::write(path(dir.path()), b"short").expect("write");
        let err = load_or_create(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("expected 32"), "{err}");
    }
}
