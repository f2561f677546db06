//! Token operations: mint and revoke. Admitted like every other operation
//! (admin permission, the ledger's admin limit); the revocation is
//! persisted through the store writer before the in-memory list, which
//! every request's verification reads, learns of it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Caller, MemoryError, MemoryService, Operation};
use crate::auth::token::{self, new_claims};
use crate::auth::{Revocations, Role};
use crate::config::{AuthMode, AuthSettings};
use crate::store::Scope;

/// A mint request (`POST /api/auth/token`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MintRequest {
    pub role: Option<String>,
    pub sub: Option<String>,
    pub scope: Option<Scope>,
    pub ttl_seconds: Option<i64>,
}

/// A minted token, shown once.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Minted {
    pub token: String,
    pub expires_at: String,
    pub jti: Option<String>,
    pub sub: String,
    pub role: Role,
    pub scope: Scope,
}

impl Minted {
    /// The answer for `claims` signed with `secret`.
    fn signed(claims: crate::auth::Claims, secret: &[u8]) -> Self {
        Minted {
            token: token::sign(&claims, secret),
            expires_at: iso(claims.exp),
            jti: claims.jti,
            sub: claims.sub,
            role: claims.role,
            scope: claims.scope,
        }
    }
}

/// A revocation request: exactly one of a token id or a subject.
#[derive(Debug, Default, Deserialize)]
pub struct RevokeRequest {
    pub jti: Option<String>,
    pub sub: Option<String>,
}

/// The token operations over the workspace secret.
pub struct Tokens {
    memories: MemoryService,
    mode: AuthMode,
    settings: AuthSettings,
    secret: Option<Arc<Vec<u8>>>,
    revocations: Arc<Revocations>,
}

fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(crate::store::to_iso)
        .unwrap_or_default()
}

impl Tokens {
    /// Token operations for the auth settings, with the secret (absent in
    /// local mode) and the shared revocation list.
    pub fn new(
        memories: MemoryService,
        settings: AuthSettings,
        secret: Option<Arc<Vec<u8>>>,
        revocations: Arc<Revocations>,
    ) -> Self {
        Tokens {
            memories,
            mode: settings.mode,
            settings,
            secret,
            revocations,
        }
    }

    /// Sign a new token with the requested role, subject, scope and life.
    pub async fn mint(&self, caller: &Caller, req: MintRequest) -> Result<Minted, MemoryError> {
        self.memories.admit(caller, Operation::ManageTokens).await?;
        let secret = self.signing_secret()?;
        let role_name = req.role.unwrap_or_default();
        let role = Role::parse(&role_name).ok_or_else(|| {
            MemoryError::BadRequest(format!(
                "role must be one of admin, operator, agent, readonly; got '{role_name}'"
            ))
        })?;
        let ttl = req
            .ttl_seconds
            .unwrap_or(self.settings.default_token_ttl_seconds as i64);
        let now = chrono::Utc::now().timestamp();
        let claims = new_claims(role, req.sub, req.scope.unwrap_or_default(), ttl, now)
            .map_err(MemoryError::BadRequest)?;
        tracing::info!(sub = %claims.sub, role = role.as_str(), by = %caller.actor, "token minted");
        Ok(Minted::signed(claims, secret))
    }

    /// The secret tokens are signed with; none in local mode.
    fn signing_secret(&self) -> Result<&[u8], MemoryError> {
        match (self.mode, &self.secret) {
            (AuthMode::Local, _) | (_, None) => Err(MemoryError::BadRequest(
                "tokens are not used in local mode; set auth.mode to team or hybrid".into(),
            )),
            (_, Some(s)) => Ok(s.as_slice()),
        }
    }

    /// A token for one harness session, minted by the caller's own token:
    /// the same subject and scope, at most an agent's role (a readonly
    /// parent gives a readonly token), living `auth.sessionTokenTtlSeconds`
    /// or until the parent expires, whichever is sooner. Revoking the
    /// parent's subject revokes it too.
    pub async fn mint_session(
        &self,
        caller: &Caller,
        session_key: Option<String>,
    ) -> Result<Minted, MemoryError> {
        self.memories.admit(caller, Operation::Recall).await?;
        let secret = self.signing_secret()?;
        let Some(parent) = &caller.claims else {
            return Err(MemoryError::Forbidden(
                "a session token is minted with a token".into(),
            ));
        };
        if session_key.as_ref().is_some_and(|k| k.len() > 256) {
            return Err(MemoryError::BadRequest(
                "sessionKey must be at most 256 characters".into(),
            ));
        }
        let role = match parent.role {
            Role::Readonly => Role::Readonly,
            _ => Role::Agent,
        };
        let now = chrono::Utc::now().timestamp();
        let ttl = (self.settings.session_token_ttl_seconds as i64).min(parent.exp - now);
        if ttl < 1 {
            return Err(MemoryError::Forbidden(
                "the parent token has expired".into(),
            ));
        }
        let claims = new_claims(
            role,
            Some(parent.sub.clone()),
            parent.scope.clone(),
            ttl,
            now,
        )
        .map_err(MemoryError::BadRequest)?;
        tracing::info!(sub = %claims.sub, role = role.as_str(), session = ?session_key, "session token minted");
        Ok(Minted::signed(claims, secret))
    }

    /// Revoke a token id or every token of a subject issued until now.
    pub async fn revoke(
        &self,
        caller: &Caller,
        req: RevokeRequest,
    ) -> Result<serde_json::Value, MemoryError> {
        self.memories.admit(caller, Operation::ManageTokens).await?;
        if self.mode == AuthMode::Local {
            return Err(MemoryError::BadRequest(
                "tokens are not used in local mode".into(),
            ));
        }
        let (kind, value) = match (req.jti, req.sub) {
            (Some(j), None) if !j.trim().is_empty() => ("jti", j),
            (None, Some(s)) if !s.trim().is_empty() => ("sub", s),
            _ => {
                return Err(MemoryError::BadRequest(
                    "give exactly one of jti or sub".into(),
                ));
            }
        };
        let now = chrono::Utc::now().timestamp();
        self.memories
            .revoke(caller, kind, value.clone(), now)
            .await?;
        match kind {
            "jti" => self.revocations.revoke_jti(&value),
            _ => self.revocations.revoke_sub(&value, now),
        }
        tracing::info!(kind, by = %caller.actor, "token revoked");
        Ok(serde_json::json!({ "revoked": true, kind: value, "revokedAt": iso(now) }))
    }
}
