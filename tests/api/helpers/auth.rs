//! Auth modes, scopes and rate limits for the config, and tokens signed with
//! the secret of the workspace a daemon created.

use signet::auth::{Claims, Role};
use signet::config::{AuthMode, Config, RateLimit};
use signet::store::Scope;

use super::TestApp;

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Team mode: every call needs a token.
pub fn team(cfg: &mut Config) {
    cfg.settings.auth.mode = AuthMode::Team;
}

/// A scope confined to project `p`.
pub fn project(p: &str) -> Scope {
    Scope {
        project: Some(p.into()),
        ..Default::default()
    }
}

/// At most `max` calls a minute.
pub fn limit(max: u32) -> RateLimit {
    RateLimit {
        window_ms: 60_000,
        max,
    }
}

/// The workspace secret of a daemon started in team or hybrid mode.
pub fn secret_of(t: &TestApp) -> Vec<u8> {
    signet::auth::secret::load(&t.workspace).expect("workspace secret")
}

/// Sign claims with the daemon's secret.
pub fn sign(t: &TestApp, claims: &Claims) -> String {
    signet::auth::token::sign(claims, &secret_of(t))
}

/// A valid one-hour token with a fresh `jti`.
pub fn token(t: &TestApp, role: Role, sub: &str, scope: Scope) -> String {
    let iat = now();
    sign(
        t,
        &Claims {
            sub: sub.into(),
            role,
            scope,
            iat,
            exp: iat + 3600,
            jti: Some(uuid::Uuid::new_v4().to_string()),
        },
    )
}

/// An unscoped admin token.
pub fn admin(t: &TestApp) -> String {
    token(t, Role::Admin, "test-admin", Scope::default())
}
