//! Auth routes: mint, whoami, status and revoke.

use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::auth::{self, Permission};
use super::error::ApiError;
use super::{body, boxed, json, with_state, AppState};
use crate::auth::ledger::RateOp;
use crate::auth::{token, Claims, Role};
use crate::config::AuthMode;
use crate::memory::Caller;
use crate::store::Scope;

/// Body of a mint request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MintBody {
    role: Option<String>,
    sub: Option<String>,
    scope: Option<Scope>,
    ttl_seconds: Option<i64>,
}

/// Longest token life a mint accepts (one year).
pub const MAX_TTL_SECS: i64 = 365 * 86_400;

/// Claims for a new token; shared by the API and the CLI.
pub fn new_claims(
    role: Role,
    sub: Option<String>,
    scope: Scope,
    ttl: i64,
    now: i64,
) -> Result<Claims, String> {
    if !(1..=MAX_TTL_SECS).contains(&ttl) {
        return Err(format!("ttlSeconds must be within 1..{MAX_TTL_SECS}"));
    }
    let sub = sub.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if sub.as_ref().is_some_and(|s| s.len() > 128) {
        return Err("sub must be at most 128 characters".into());
    }
    let jti = uuid::Uuid::new_v4().to_string();
    Ok(Claims {
        sub: sub.unwrap_or_else(|| format!("{}-{}", role.as_str(), &jti[..8])),
        role,
        scope,
        iat: now,
        exp: now + ttl,
        jti: Some(jti),
    })
}

fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(crate::store::to_iso)
        .unwrap_or_default()
}

/// POST /api/auth/token
pub fn mint(st: AppState) -> BoxedFilter<(Response,)> {
    let limit = st.config.settings.server.max_body_bytes;
    boxed(
        warp::path!("api" / "auth" / "token")
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Admin))
            .and(body::json::<MintBody>(limit))
            .and(with_state(st))
            .and_then(|caller: Caller, b: MintBody, st: AppState| async move {
                let out: Result<Response, ApiError> = async {
                    auth::limit(&st.auth, &st.registry, &caller, &[RateOp::Admin]).await?;
                    let secret = match (st.auth.mode, &st.auth.secret) {
                        (AuthMode::Local, _) | (_, None) => {
                            return Err(ApiError::BadRequest("tokens are not used in local mode; set auth.mode to team or hybrid".into()))
                        }
                        (_, Some(s)) => s,
                    };
                    let role_name = b.role.unwrap_or_default();
                    let role = Role::parse(&role_name).ok_or_else(|| {
                        ApiError::BadRequest(format!("role must be one of admin, operator, agent, readonly; got '{role_name}'"))
                    })?;
                    let ttl = b.ttl_seconds.unwrap_or(st.auth.settings.default_token_ttl_seconds as i64);
                    let now = chrono::Utc::now().timestamp();
                    let claims = new_claims(role, b.sub, b.scope.unwrap_or_default(), ttl, now).map_err(ApiError::BadRequest)?;
                    let t = token::sign(&claims, secret);
                    tracing::info!(sub = %claims.sub, role = role.as_str(), by = %caller.actor, "token minted");
                    Ok(json(&json!({
                        "token": t,
                        "expiresAt": iso(claims.exp),
                        "jti": claims.jti,
                        "sub": claims.sub,
                        "role": role,
                        "scope": claims.scope,
                    })))
                }
                .await;
                Ok::<_, std::convert::Infallible>(out.unwrap_or_else(|e| e.to_response()))
            }),
    )
}

/// GET /api/auth/whoami
pub fn whoami(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "auth" / "whoami")
            .and(warp::get())
            .and(auth::authenticated(st.clone()))
            .and(with_state(st))
            .map(|caller: Caller, st: AppState| {
                json(&json!({
                    "authenticated": caller.claims.is_some(),
                    "claims": caller.claims,
                    "mode": st.auth.mode,
                }))
            }),
    )
}

/// GET /api/auth/status
pub fn status(st: AppState) -> BoxedFilter<(Response,)> {
    boxed(
        warp::path!("api" / "auth" / "status")
            .and(warp::get())
            .and(auth::authenticated(st.clone()))
            .and(with_state(st))
            .map(|_caller: Caller, st: AppState| {
                let a = &st.auth.settings;
                let rl =
                    |l: crate::config::RateLimit| json!({ "windowMs": l.window_ms, "max": l.max });
                json(&json!({
                    "mode": st.auth.mode,
                    "secretPresent": st.auth.secret.is_some(),
                    "defaultTokenTtlSeconds": a.default_token_ttl_seconds,
                    "sessionTokenTtlSeconds": a.session_token_ttl_seconds,
                    "trustedProxies": a.trusted_proxies,
                    "rateLimits": {
                        "forget": rl(a.rate_limits.forget),
                        "modify": rl(a.rate_limits.modify),
                        "batchForget": rl(a.rate_limits.batch_forget),
                        "forceDelete": rl(a.rate_limits.force_delete),
                        "admin": rl(a.rate_limits.admin),
                    },
                }))
            }),
    )
}

#[derive(Debug, Deserialize)]
struct RevokeBody {
    jti: Option<String>,
    sub: Option<String>,
}

/// POST /api/auth/revoke
pub fn revoke(st: AppState) -> BoxedFilter<(Response,)> {
    let limit = st.config.settings.server.max_body_bytes;
    boxed(
        warp::path!("api" / "auth" / "revoke")
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Admin))
            .and(body::json::<RevokeBody>(limit))
            .and(with_state(st))
            .and_then(|caller: Caller, b: RevokeBody, st: AppState| async move {
                let out: Result<Response, ApiError> = async {
                    auth::limit(&st.auth, &st.registry, &caller, &[RateOp::Admin]).await?;
                    if st.auth.mode == AuthMode::Local {
                        return Err(ApiError::BadRequest(
                            "tokens are not used in local mode".into(),
                        ));
                    }
                    let (kind, value) = match (b.jti, b.sub) {
                        (Some(j), None) if !j.trim().is_empty() => ("jti", j),
                        (None, Some(s)) if !s.trim().is_empty() => ("sub", s),
                        _ => {
                            return Err(ApiError::BadRequest(
                                "give exactly one of jti or sub".into(),
                            ))
                        }
                    };
                    let now = chrono::Utc::now().timestamp();
                    st.memories
                        .revoke(&caller, kind, value.clone(), now)
                        .await?;
                    match kind {
                        "jti" => st.auth.revocations.revoke_jti(&value),
                        _ => st.auth.revocations.revoke_sub(&value, now),
                    }
                    tracing::info!(kind, by = %caller.actor, "token revoked");
                    Ok(json(
                        &json!({ "revoked": true, kind: value, "revokedAt": iso(now) }),
                    ))
                }
                .await;
                Ok::<_, std::convert::Infallible>(out.unwrap_or_else(|e| e.to_response()))
            }),
    )
}
