//! The browser boundary, checked before any route runs.
//!
//! A local memory daemon must not be reachable from the web pages its user
//! visits: a `fetch(url, {mode: "no-cors", method: "POST"})` from any site
//! would otherwise plant memories (a prompt injection into every later
//! session), and a DNS-rebinding page (its own name resolving to
//! 127.0.0.1) could read them all.
//!
//! - **Host** (local and hybrid mode; team mode when
//!   `server.allowedHosts` is set): `localhost`, `127.0.0.1`, `[::1]` on any
//!   port, or a host listed in `server.allowedHosts`. Anything else is a
//!   page that reached us under a foreign name: 403.
//! - **Origin**: absent (curl, SDKs, agents), the daemon's own origin (the
//!   origin's host and port are the request's `Host`, or a trusted proxy's
//!   `X-Forwarded-Host`), or listed in `server.allowedOrigins`. Anything
//!   else, `null` included, is a cross-site request: 403.
//! - **Sec-Fetch-Site** `cross-site`/`same-site` without an allowed origin
//!   (a navigation or `no-cors` request that sent no `Origin`): 403.
//!
//! CORS: preflights are answered (204) only for an allowed origin, which
//! is echoed in `Access-Control-Allow-Origin`; never `*`.

pub use crate::net::{is_loopback_host, normalise_origin};
use crate::net::{normalise_authority, split_host};
use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use crate::auth::locality::{self, TrustedProxies};
use crate::config::{AuthMode, Config};

/// Methods a cross-origin caller may use, for preflights.
const ALLOW_METHODS: &str = "GET, POST, PATCH, PUT, DELETE, OPTIONS";
/// Request headers a cross-origin caller may send, for preflights.
const ALLOW_HEADERS: &str = "authorization, content-type, last-event-id, x-signet-actor, \
     x-signet-actor-type, x-signet-session-id, x-signet-request-id, x-signet-no-hooks";
/// Response headers a cross-origin page may read.
const EXPOSE_HEADERS: &str = "x-signet-request-id, retry-after";

/// The boundary's settings, resolved once at start.
#[derive(Debug, Clone)]
pub struct EdgePolicy {
    mode: AuthMode,
    /// `scheme://host[:port]`, lowercased, default ports dropped.
    allowed_origins: Vec<String>,
    /// Host names (any port) or `host:port`, lowercased.
    allowed_hosts: Vec<String>,
    trusted: TrustedProxies,
}

/// The request's `Host`, if sent and readable.
pub fn host_header(h: &HeaderMap) -> Option<&str> {
    h.get("host").and_then(|v| v.to_str().ok()).map(str::trim)
}

/// A CORS preflight from an allowed origin: answered with 204.
#[derive(Debug)]
pub struct Preflight(HeaderValue);

impl warp::reject::Reject for Preflight {}

impl Preflight {
    /// The 204 answer.
    pub fn response(&self) -> Response {
        let mut r = warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response();
        let h = r.headers_mut();
        h.insert("access-control-allow-origin", self.0.clone());
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert("access-control-max-age", HeaderValue::from_static("600"));
        h.insert("vary", HeaderValue::from_static("origin"));
        r
    }
}

impl EdgePolicy {
    /// Resolve the configured lists (already validated by the config).
    pub fn new(config: &Config) -> EdgePolicy {
        let s = &config.settings.server;
        EdgePolicy {
            mode: config.settings.auth.mode,
            allowed_origins: s
                .allowed_origins
                .iter()
                .filter_map(|o| normalise_origin(o))
                .collect(),
            allowed_hosts: s
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            trusted: TrustedProxies::parse(&config.settings.auth.trusted_proxies)
                .unwrap_or_default(),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if is_loopback_host(&host) {
            return true;
        }
        let name = split_host(&host).map(|(h, _)| h);
        self.allowed_hosts
            .iter()
            .any(|a| *a == host || Some(a.as_str()) == name)
    }

    /// Whether `Host` must be checked in this mode.
    fn checks_host(&self) -> bool {
        self.mode != AuthMode::Team || !self.allowed_hosts.is_empty()
    }

    /// Whether `origin` is the daemon's own origin or an allowed one.
    fn origin_allowed(&self, origin: &str, r: &Signals) -> bool {
        let Some(origin) = normalise_origin(origin) else {
            return false;
        };
        if self.allowed_origins.contains(&origin) {
            return true;
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        // Same origin: the browser sent `Host` for the URL it loaded.
        let own = |host: &str| {
            normalise_authority(&host.trim().to_ascii_lowercase(), scheme).as_deref()
                == Some(authority)
        };
        if r.host.as_deref().is_some_and(own) {
            return true;
        }
        // Behind a trusted proxy the public name is in X-Forwarded-Host.
        let trusted_peer = r.peer.is_some_and(|p| self.trusted.contains(p.ip()));
        trusted_peer
            && r.forwarded_host
                .as_deref()
                .and_then(|v| v.split(',').next())
                .is_some_and(own)
    }

    /// Let the request through, or refuse it (403), or answer its
    /// preflight.
    pub fn check(&self, r: &Signals) -> Result<(), Rejection> {
        if self.checks_host() {
            if let Some(host) = r.host.as_deref() {
                if !self.host_allowed(host.trim()) {
                    return Err(warp::reject::custom(ApiError::Forbidden(format!(
                        "host '{}' is not allowed; a page reached this daemon under a foreign name \
                         (list the name in server.allowedHosts to serve it)",
                        printable(host)
                    ))));
                }
            }
        }
        if let Some(origin) = r.origin.as_deref() {
            if !self.origin_allowed(origin, r) {
                return Err(cross_site(&format!(
                    "origin '{}' is not allowed",
                    printable(origin)
                )));
            }
            if r.preflight {
                let value = HeaderValue::from_str(origin.trim())
                    .map_err(|_| cross_site("unreadable origin"))?;
                return Err(warp::reject::custom(Preflight(value)));
            }
            return Ok(());
        }
        match r.fetch_site.as_deref().map(str::trim) {
            Some(site)
                if site.eq_ignore_ascii_case("cross-site")
                    || site.eq_ignore_ascii_case("same-site") =>
            {
                Err(cross_site(&format!("Sec-Fetch-Site: {}", printable(site))))
            }
            _ => Ok(()),
        }
    }

    /// Add the CORS headers to an answer for an allowed cross-origin
    /// caller (`origin` as sent).
    pub fn decorate(&self, origin: Option<&str>, resp: &mut Response) {
        let Some(origin) = origin.map(str::trim) else {
            return;
        };
        let allowed = normalise_origin(origin).is_some_and(|o| self.allowed_origins.contains(&o));
        if !allowed {
            return;
        }
        if let Ok(v) = HeaderValue::from_str(origin) {
            let out = resp.headers_mut();
            out.insert("access-control-allow-origin", v);
            out.insert(
                "access-control-expose-headers",
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
            out.append("vary", HeaderValue::from_static("origin"));
        }
    }
}

/// What the boundary reads of a request.
#[derive(Debug, Default, Clone)]
pub struct Signals {
    pub host: Option<String>,
    pub origin: Option<String>,
    pub fetch_site: Option<String>,
    pub forwarded_host: Option<String>,
    /// An `OPTIONS` request with `Access-Control-Request-Method`.
    pub preflight: bool,
    pub peer: Option<SocketAddr>,
}

fn cross_site(why: &str) -> Rejection {
    warp::reject::custom(ApiError::Forbidden(format!(
        "cross-site request refused: {why} (allow an origin with server.allowedOrigins)"
    )))
}

/// A header value fit for an error message (bounded, no control chars).
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(120).collect()
}

/// The boundary as a filter: passes nothing on, or rejects.
pub fn guard(policy: Arc<EdgePolicy>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    use warp::header::optional;
    warp::method()
        .and(optional::<String>("host"))
        .and(optional::<String>("origin"))
        .and(optional::<String>("sec-fetch-site"))
        .and(optional::<String>("x-forwarded-host"))
        .and(optional::<String>("access-control-request-method"))
        .and(warp::addr::remote())
        .and_then(
            move |method: warp::http::Method,
                  host,
                  origin,
                  fetch_site,
                  forwarded_host,
                  acrm: Option<String>,
                  peer| {
                let policy = policy.clone();
                let signals = Signals {
                    host,
                    origin,
                    fetch_site,
                    forwarded_host,
                    preflight: method == warp::http::Method::OPTIONS && acrm.is_some(),
                    peer,
                };
                async move { policy.check(&signals) }
            },
        )
        .untuple_one()
}

/// Whether the request came from a local caller by every sign: a loopback
/// TCP peer, a loopback `Host`, and no forwarding header from an untrusted
/// peer (hybrid mode's token-less admin).
pub fn is_local(
    h: &HeaderMap,
    peer: Option<SocketAddr>,
    fwd: &locality::Forwarding<'_>,
    trusted: &TrustedProxies,
) -> bool {
    host_header(h).is_none_or(is_loopback_host)
        && locality::is_local(peer.map(|p| p.ip()), fwd, trusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalise_and_refuse_what_is_not_one() {
        assert_eq!(
            normalise_origin("HTTP://LocalHost:80").as_deref(),
            Some("http://localhost")
        );
        assert_eq!(
            normalise_origin("https://mem.example.com:443/").as_deref(),
            Some("https://mem.example.com")
        );
        assert_eq!(
            normalise_origin("http://[::1]:3850").as_deref(),
            Some("http://[::1]:3850")
        );
        for bad in [
            "null",
            "*",
            "http://*",
            "file:///etc",
            "http://a/b",
            "http://a:99999",
            "http://",
            "http://u@h",
        ] {
            assert_eq!(normalise_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn loopback_hosts_on_any_port() {
        for ok in [
            "localhost",
            "localhost:3850",
            "127.0.0.1:1",
            "[::1]:3850",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "attacker.example:3850",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "[::2]:3850",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn header_parsing_never_panics_and_never_allows_a_foreign_origin(
            origin in "\\PC{0,60}",
            host in "\\PC{0,40}",
            site in "\\PC{0,20}",
        ) {
            let mut config = Config::for_workspace(std::path::Path::new("/nonexistent"));
            config.settings.auth.mode = AuthMode::Local;
            let policy = EdgePolicy::new(&config);
            let _ = normalise_origin(&origin);
            let _ = is_loopback_host(&host);
            let signals = Signals {
                host: Some("127.0.0.1:3850".to_string()),
                origin: Some(origin.clone()),
                fetch_site: Some(site),
                ..Default::default()
            };
            let allowed = policy.check(&signals).is_ok();
            // Only the daemon's own origin passes with an Origin header.
            if allowed {
                let own = normalise_origin(&origin);
                proptest::prop_assert_eq!(own.as_deref(), Some("http://127.0.0.1:3850"));
            }
            let signals = Signals { host: Some(host.clone()), ..Default::default() };
            if policy.check(&signals).is_ok() {
                proptest::prop_assert!(is_loopback_host(&host));
            }
        }
    }
}
