//! Auth routes: mint, whoami, status and revoke.

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::auth::{self, Permission};
use super::error::reply;
use super::{body, boxed, json, with_state, AppState};
use crate::memory::tokens::{MintRequest, RevokeRequest};
use crate::memory::Caller;

/// POST /api/auth/token
pub fn mint(st: AppState) -> BoxedFilter<(Response,)> {
    let limit = st.config.settings.server.max_body_bytes;
    boxed(
        warp::path!("api" / "auth" / "token")
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Admin))
            .and(body::json::<MintRequest>(limit))
            .and(with_state(st))
            .and_then(|caller: Caller, b: MintRequest, st: AppState| async move {
                reply(st.tokens.mint(&caller, b).await)
            }),
    )
}

/// Body of a session-token request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionTokenRequest {
    session_key: Option<String>,
}

/// POST /api/auth/session-token: a short-lived token for one harness
/// session, scoped like the caller's token.
pub fn session_token(st: AppState) -> BoxedFilter<(Response,)> {
    let limit = st.config.settings.server.max_body_bytes;
    boxed(
        warp::path!("api" / "auth" / "session-token")
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Recall))
            .and(body::json::<SessionTokenRequest>(limit))
            .and(with_state(st))
            .and_then(
                |caller: Caller, b: SessionTokenRequest, st: AppState| async move {
                    reply(st.tokens.mint_session(&caller, b.session_key).await)
                },
            ),
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
                // The role and what it may do, so a front (the dashboard)
                // can hide what the server would refuse anyway.
                let role = caller.role.unwrap_or(crate::auth::Role::Admin);
                let permissions: Vec<&str> = Permission::ALL
                    .into_iter()
                    .filter(|p| role.allows(*p))
                    .map(Permission::as_str)
                    .collect();
                json(&json!({
                    "authenticated": caller.claims.is_some(),
                    "claims": caller.claims,
                    "mode": st.auth.mode,
                    "role": role,
                    "permissions": permissions,
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

/// POST /api/auth/revoke
pub fn revoke(st: AppState) -> BoxedFilter<(Response,)> {
    let limit = st.config.settings.server.max_body_bytes;
    boxed(
        warp::path!("api" / "auth" / "revoke")
            .and(warp::post())
            .and(auth::require(st.clone(), Permission::Admin))
            .and(body::json::<RevokeRequest>(limit))
            .and(with_state(st))
            .and_then(
                |caller: Caller, b: RevokeRequest, st: AppState| async move {
                    reply(st.tokens.revoke(&caller, b).await)
                },
            ),
    )
}
