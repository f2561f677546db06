//! Bearer tokens: `base64url(claims_json) "." base64url(HMAC-SHA256(secret,
//! encoded_claims))`, both parts unpadded.
//!
//! Verification checks the shape, then the signature in constant time
//! (`Mac::verify_slice`), then the claims. Tokens minted by other Signet
//! tooling carry no `jti` and stay valid.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::Role;
use crate::store::Scope;

type HmacSha256 = Hmac<Sha256>;

/// Seconds a token's `iat` may lie ahead of our clock.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default)]
    pub scope: Scope,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Why a token was refused; the text is the 401 body's `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("invalid signature")]
    InvalidSignature,
    #[error("malformed payload")]
    MalformedPayload,
    #[error("missing timestamps")]
    MissingTimestamps,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token revoked")]
    Revoked,
}

/// The claims as they may arrive: timestamps optional so their absence is
/// its own reason.
#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    role: Role,
    #[serde(default)]
    scope: Option<Scope>,
    iat: Option<i64>,
    exp: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// Sign claims into a token.
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut m = mac(secret);
    m.update(payload.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{payload}.{sig}")
}

/// Verify a token's signature and claims at time `now` (Unix seconds).
/// Revocation is checked by the caller, which owns the revocation list.
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    if payload.is_empty() || sig.is_empty() {
        return Err(TokenError::Malformed);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret);
    m.update(payload.as_bytes());
    m.verify_slice(&sig)
        .map_err(|_| TokenError::InvalidSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::MalformedPayload)?;
    let raw: RawClaims = serde_json::from_slice(&json).map_err(|_| TokenError::MalformedPayload)?;
    let (Some(iat), Some(exp)) = (raw.iat, raw.exp) else {
        return Err(TokenError::MissingTimestamps);
    };
    if now >= exp {
        return Err(TokenError::Expired);
    }
    if iat > now + CLOCK_SKEW_SECS {
        return Err(TokenError::NotYetValid);
    }
    Ok(Claims {
        sub: raw.sub,
        role: raw.role,
        scope: raw.scope.unwrap_or_default(),
        iat,
        exp,
        jti: raw.jti,
    })
}

/// Decode the claims without checking anything (for `token inspect`).
pub fn decode_unverified(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').next()?;
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&json).ok()
}

/// Longest token life a mint accepts (one year).
pub const MAX_TTL_SECS: i64 = 365 * 86_400;

/// Claims for a new token; shared by the API and the CLI.
pub fn new_claims(
    role: super::Role,
    sub: Option<String>,
    scope: crate::store::Scope,
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims() -> Claims {
        Claims {
            sub: "alice".into(),
            role: Role::Agent,
            scope: Scope {
                project: Some("p".into()),
                ..Default::default()
            },
            iat: 1_000,
            exp: 2_000,
            jti: Some("j1".into()),
        }
    }

    fn forge(payload_json: &str) -> String {
        let payload = URL_SAFE_NO_PAD.encode(payload_json);
        let mut m = mac(SECRET);
        m.update(payload.as_bytes());
        format!(
            "{payload}.{}",
            URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        )
    }

    #[test]
    fn a_signed_token_round_trips() {
        let t = sign(&claims(), SECRET);
        assert!(!t.contains('='));
        assert_eq!(verify(&t, SECRET, 1_500), Ok(claims()));
    }

    #[test]
    fn each_defect_has_its_reason() {
        let t = sign(&claims(), SECRET);
        let (p, s) = t.split_once('.').expect("two parts");
        assert_eq!(
            verify(&t, b"another secret", 1_500),
            Err(TokenError::InvalidSignature)
        );
        assert_eq!(verify(&t, SECRET, 2_000), Err(TokenError::Expired));
        assert_eq!(verify(p, SECRET, 1_500), Err(TokenError::Malformed));
        assert_eq!(
            verify(&format!("{t}.x"), SECRET, 1_500),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify(&format!("{p}.!!"), SECRET, 1_500),
            Err(TokenError::Malformed)
        );
        let mut tampered = p.to_string();
        tampered.replace_range(0..1, if p.starts_with('e') { "f" } else { "e" });
        assert_eq!(
            verify(&format!("{tampered}.{s}"), SECRET, 1_500),
            Err(TokenError::InvalidSignature)
        );
        assert_eq!(
            verify(&forge("not json"), SECRET, 1_500),
            Err(TokenError::MalformedPayload)
        );
        assert_eq!(
            verify(
                &forge(r#"{"sub":"a","role":"agent","scope":{}}"#),
                SECRET,
                1_500
            ),
            Err(TokenError::MissingTimestamps)
        );
        assert_eq!(
            verify(
                &forge(r#"{"sub":"a","role":"king","iat":1,"exp":9}"#),
                SECRET,
                5
            ),
            Err(TokenError::MalformedPayload)
        );
        assert_eq!(
            verify(
                &forge(r#"{"sub":"a","role":"agent","iat":5000,"exp":9000}"#),
                SECRET,
                1_500
            ),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn a_token_without_jti_from_other_tooling_is_valid() {
        let t = forge(r#"{"sub":"bot","role":"readonly","scope":{},"iat":1000,"exp":3000}"#);
        let c = verify(&t, SECRET, 1_500).expect("valid");
        assert_eq!(c.jti, None);
        assert_eq!(c.role, Role::Readonly);
    }

    proptest::proptest! {
        #[test]
        fn the_parser_never_panics(s in "\\PC*") {
            let _ = verify(&s, SECRET, 1_500);
            let _ = decode_unverified(&s);
        }

        #[test]
        fn correctly_signed_arbitrary_payloads_are_refused_or_read_never_panic(
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            json in "\\{[\"a-z:,0-9\\[\\]{}\\\\ .-]{0,120}\\}",
        ) {
            use base64::Engine;
            for p in [payload.as_slice(), json.as_bytes()] {
                let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p);
                let mut m = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(SECRET).expect("key");
                hmac::Mac::update(&mut m, body.as_bytes());
                let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(hmac::Mac::finalize(m).into_bytes());
                let _ = verify(&format!("{body}.{sig}"), SECRET, 1_500);
            }
        }

        #[test]
        fn dotted_base64ish_input_never_panics(a in "[A-Za-z0-9_\\-]{0,80}", b in "[A-Za-z0-9_\\-=.]{0,60}") {
            let _ = verify(&format!("{a}.{b}"), SECRET, 1_500);
        }
    }
}
