//! Who is calling: the edge builds a [`Caller`] for every request and checks
//! the route's [`Permission`].
//!
//! In `local` mode (the only mode this build serves; see `app::check_auth`)
//! every caller is allowed and unscoped, and the acting identity is the
//! `x-signet-actor` header, else `anonymous`.

use std::convert::Infallible;

use warp::http::HeaderMap;
use warp::Filter;

use super::AppState;
use crate::memory::Caller;

/// What a route needs the caller to be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Remember,
    Recall,
    Modify,
    Forget,
    Recover,
    Diagnostics,
    Admin,
}

impl Permission {
    /// The wire name used in permission errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Remember => "remember",
            Permission::Recall => "recall",
            Permission::Modify => "modify",
            Permission::Forget => "forget",
            Permission::Recover => "recover",
            Permission::Diagnostics => "diagnostics",
            Permission::Admin => "admin",
        }
    }
}

const ACTOR_TYPES: &[&str] = &["operator", "agent", "pipeline", "harness", "sdk", "daemon"];

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_string)
}

/// Build the caller of a local-mode request from its headers.
pub fn local_caller(h: &HeaderMap) -> Caller {
    Caller {
        actor: header(h, "x-signet-actor").unwrap_or_else(|| crate::memory::ANONYMOUS.into()),
        verified: false,
        actor_type: header(h, "x-signet-actor-type").filter(|t| ACTOR_TYPES.contains(&t.as_str())),
        session_id: header(h, "x-signet-session-id"),
        request_id: header(h, "x-signet-request-id"),
        scope: Default::default(),
    }
}

/// Extract the caller of a request allowed to use `perm`.
pub fn require(
    _st: AppState,
    _perm: Permission,
) -> impl Filter<Extract = (Caller,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|h: HeaderMap| local_caller(&h))
}
