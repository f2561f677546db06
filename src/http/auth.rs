//! The edge's half of auth: turn a request (headers + TCP peer) into a
//! verified [`Caller`], check the route's [`Permission`], and consult the
//! rate-limit ledger.
//!
//! - `local`: no tokens; every caller is an unscoped admin; no limits.
//! - `team`: a valid bearer token on every request but `/health`.
//! - `hybrid`: a loopback peer (by TCP address) that named a loopback
//!   `Host` and sent no forwarding header needs no token and is admin;
//!   everyone else needs one. A token sent by a local caller is still
//!   verified and used; a credential the daemon does not understand is a
//!   401, never ignored.

use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::HeaderMap;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::AppState;
use crate::auth::locality::{Forwarding, TrustedProxies};
use crate::auth::{token, Claims, Revocations, Role};
use crate::config::{AuthMode, AuthSettings};
use crate::memory::{Caller, ANONYMOUS};

pub use crate::auth::Permission;

const ACTOR_TYPES: &[&str] = &["operator", "agent", "pipeline", "harness", "sdk", "daemon"];

/// Everything the edge needs to authenticate.
pub struct AuthState {
    pub mode: AuthMode,
    pub settings: AuthSettings,
    /// The signing secret (absent in local mode).
    pub secret: Option<Arc<Vec<u8>>>,
    pub revocations: Arc<Revocations>,
    pub trusted: TrustedProxies,
}

/// A request's authenticated identity before the permission check.
#[derive(Debug, Clone)]
pub struct Identity {
    pub role: Role,
    pub claims: Option<Claims>,
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_string)
}

/// The bearer token, if an `Authorization` header was sent. A header the
/// daemon does not understand (another scheme, an empty or unreadable
/// token) is an error, never ignored: ignoring it would turn a caller who
/// meant to authenticate into hybrid mode's local admin.
fn bearer(h: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = h.get("authorization") else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::Unauthorized("unreadable Authorization header".into()))?
        .trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        let scheme: String = scheme
            .chars()
            .filter(|c| !c.is_control())
            .take(32)
            .collect();
        return Err(ApiError::Unauthorized(format!(
            "unsupported authorization scheme '{scheme}'; send Authorization: Bearer <token>"
        )));
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(ApiError::Unauthorized("empty bearer token".into()));
    }
    Ok(Some(token))
}

fn forwarding(h: &HeaderMap) -> Forwarding<'_> {
    let any = h.keys().any(|k| {
        let k = k.as_str();
        k == "forwarded" || k == "x-real-ip" || k.starts_with("x-forwarded-")
    });
    Forwarding {
        any,
        x_forwarded_for: h
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect(),
        x_real_ip: h.get("x-real-ip").and_then(|v| v.to_str().ok()),
        forwarded: h
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect(),
    }
}

impl AuthState {
    /// Verify a bearer token, revocation included.
    pub fn verify(&self, raw: &str) -> Result<Claims, ApiError> {
        let secret = self
            .secret
            .as_deref()
            .ok_or_else(|| ApiError::Unauthorized("token auth is not enabled".into()))?;
        let now = chrono::Utc::now().timestamp();
        let claims =
            token::verify(raw, secret, now).map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        if self.revocations.is_revoked(&claims) {
            return Err(ApiError::Unauthorized(
                token::TokenError::Revoked.to_string(),
            ));
        }
        Ok(claims)
    }

    /// Who the request is, by mode.
    pub fn identify(&self, h: &HeaderMap, peer: Option<SocketAddr>) -> Result<Identity, ApiError> {
        let local_admin = Identity {
            role: Role::Admin,
            claims: None,
        };
        match self.mode {
            AuthMode::Local => Ok(local_admin),
            AuthMode::Team | AuthMode::Hybrid => {
                if let Some(raw) = bearer(h)? {
                    let claims = self.verify(raw)?;
                    return Ok(Identity {
                        role: claims.role,
                        claims: Some(claims),
                    });
                }
                if self.mode == AuthMode::Hybrid
                    && super::edge::is_local(h, peer, &forwarding(h), &self.trusted)
                {
                    return Ok(local_admin);
                }
                Err(ApiError::Unauthorized("authentication required".into()))
            }
        }
    }
}

/// Build the caller from an identity and the request's headers.
pub fn caller_of(id: Identity, h: &HeaderMap) -> Caller {
    let (actor, verified, scope) = match &id.claims {
        Some(c) => {
            let scope = if c.role == Role::Admin {
                Default::default()
            } else {
                c.scope.clone()
            };
            (c.sub.clone(), true, scope)
        }
        None => (
            header(h, "x-signet-actor").unwrap_or_else(|| ANONYMOUS.into()),
            false,
            Default::default(),
        ),
    };
    Caller {
        actor,
        verified,
        actor_type: header(h, "x-signet-actor-type").filter(|t| ACTOR_TYPES.contains(&t.as_str())),
        session_id: header(h, "x-signet-session-id"),
        request_id: header(h, "x-signet-request-id"),
        scope,
        claims: id.claims,
        role: Some(id.role),
    }
}

/// Extract the caller of a request allowed to use `perm` (401/403 else).
pub fn require(
    st: AppState,
    perm: Permission,
) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and(warp::addr::remote())
        .and_then(move |h: HeaderMap, peer: Option<SocketAddr>| {
            let st = st.clone();
            async move {
                let id = st.auth.identify(&h, peer).map_err(warp::reject::custom)?;
                if let Some(c) = &id.claims {
                    st.telemetry.record_actor(&c.sub);
                }
                // The domain's rule, applied early so a refused caller's
                // body is never parsed; every operation admits it again.
                let caller = caller_of(id, &h);
                caller
                    .permit(perm)
                    .map_err(|e| warp::reject::custom(ApiError::from(e)))?;
                Ok::<_, Rejection>(caller)
            }
        })
}

/// Extract the caller of any authenticated request (no permission needed).
pub fn authenticated(st: AppState) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and(warp::addr::remote())
        .and_then(move |h: HeaderMap, peer: Option<SocketAddr>| {
            let st = st.clone();
            async move {
                let id = st.auth.identify(&h, peer).map_err(warp::reject::custom)?;
                Ok::<_, Rejection>(caller_of(id, &h))
            }
        })
}
