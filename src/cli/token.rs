//! `signet token create|inspect`: offline token tools working from the
//! workspace secret (the bootstrap path of a fresh team server).

use crate::auth::token::new_claims;
use crate::auth::{secret, token, Role};
use crate::config::Config;
use crate::store::Scope;

/// Parse a duration: plain seconds or a number with `s`, `m`, `h`, `d`.
pub fn parse_ttl(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 3600, 90m, 12h, 7d)"))?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(format!("'{s}': unit must be s, m, h or d")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too long"))
}

/// Parse `--scope key=value` pairs.
pub fn parse_scope(pairs: &[String]) -> Result<Scope, String> {
    let mut scope = Scope::default();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("scope '{p}' must look like project=NAME"))?;
        let slot = match k.trim() {
            "project" => &mut scope.project,
            "agent" => &mut scope.agent,
            "user" => &mut scope.user,
            other => {
                return Err(format!(
                    "scope key '{other}' must be project, agent or user"
                ))
            }
        };
        *slot = Some(v.trim().to_string());
    }
    Ok(scope)
}

/// Mint a token signed with the workspace secret; returns the token.
pub fn create(
    config: &Config,
    role: &str,
    sub: Option<String>,
    scope: &[String],
    ttl: Option<&str>,
) -> Result<String, String> {
    let role = Role::parse(role).ok_or_else(|| {
        format!("role must be one of admin, operator, agent, readonly; got '{role}'")
    })?;
    let ttl = match ttl {
        Some(t) => parse_ttl(t)?,
        None => config.settings.auth.default_token_ttl_seconds as i64,
    };
    let scope = parse_scope(scope)?;
    let secret = secret::load_or_create(&config.workspace).map_err(|e| e.to_string())?;
    let claims = new_claims(role, sub, scope, ttl, chrono::Utc::now().timestamp())?;
    Ok(token::sign(&claims, &secret))
}

/// Describe a token: its claims and, when the workspace secret is readable,
/// whether it verifies.
pub fn inspect(config: &Config, raw: &str) -> Result<serde_json::Value, String> {
    let claims = token::decode_unverified(raw)
        .ok_or_else(|| "not a token: cannot decode its payload".to_string())?;
    let verdict = match secret::load(&config.workspace) {
        Ok(s) => match token::verify(raw, &s, chrono::Utc::now().timestamp()) {
            Ok(_) => "valid".to_string(),
            Err(e) => e.to_string(),
        },
        Err(_) => "unverified (no workspace secret)".to_string(),
    };
    Ok(serde_json::json!({ "claims": claims, "verification": verdict }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_and_scopes_parse() {
        assert_eq!(parse_ttl("3600"), Ok(3600));
        assert_eq!(parse_ttl("90m"), Ok(5400));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("5w").is_err());
        let s = parse_scope(&["project=a".into(), "user=u".into()]).expect("ok");
        assert_eq!(
            (s.project.as_deref(), s.agent, s.user.as_deref()),
            (Some("a"), None, Some("u"))
        );
        assert!(parse_scope(&["team=x".into()]).is_err());
        assert!(parse_scope(&["project".into()]).is_err());
    }

    #[test]
    fn a_created_token_verifies_against_the_workspace_secret() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = Config::for_workspace(dir.path());
        let t = create(
            &cfg,
            "agent",
            Some("bot".into()),
            &["project=p".into()],
            Some("1h"),
        )
        .expect("token");
        let info = inspect(&cfg, &t).expect("inspect");
        assert_eq!(info["verification"], "valid");
        assert_eq!(info["claims"]["sub"], "bot");
        assert_eq!(info["claims"]["scope"]["project"], "p");
        assert!(create(&cfg, "king", None, &[], None).is_err());
    }
}
