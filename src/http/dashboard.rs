//! The web dashboard: static files compiled into the binary, served at `/`
//! (the page) and `/dashboard/<file>` (its modules and styles).
//!
//! The files hold no data and need no token (in team mode the page asks
//! for one and sends it on every API call). Every answer carries a
//! Content-Security-Policy that allows only the daemon's own scripts,
//! styles and connections (no inline script, no framing, no other
//! origin), and an `ETag` so a reload revalidates instead of downloading.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::boxed;

/// The policy on every dashboard file.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_bytes!(concat!("../../dashboard/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard (`dashboard/` in the repository).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("chart.js", JS),
    asset!("events.js", JS),
    asset!("views/memories.js", JS),
    asset!("views/detail.js", JS),
    asset!("views/live.js", JS),
    asset!("views/health.js", JS),
    asset!("views/performance.js", JS),
    asset!("views/access.js", JS),
];

/// Each asset's strong `ETag`, computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.body))[..20]))
            .collect()
    })
}

fn serve(name: &str, if_none_match: Option<String>) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return super::error::ApiError::NotFound("not found".into()).to_response();
    };
    let (asset, tag) = (&ASSETS[i], &etags()[i]);
    let fresh = if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut r = if fresh {
        warp::reply::with_status(warp::reply(), StatusCode::NOT_MODIFIED).into_response()
    } else {
        Response::new(asset.body.into())
    };
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(asset.mime));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert("etag", v);
    }
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// GET `/` and `/dashboard/<file>` (HEAD too).
pub fn route() -> BoxedFilter<(Response,)> {
    let method = warp::get().or(warp::head()).unify();
    let index = warp::path::end().map(|| "index.html".to_string());
    let file = warp::path("dashboard")
        .and(warp::path::tail())
        .map(|t: warp::path::Tail| t.as_str().to_string());
    boxed(
        index
            .or(file)
            .unify()
            .and(method)
            .and(warp::header::optional::<String>("if-none-match"))
            .map(|name: String, inm: Option<String>| serve(&name, inm)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).expect("utf-8");
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let spec = line
                    .split(['"', '\''])
                    .nth(1)
                    .expect("import has a quoted path");
                let dir = a.name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let resolved = parts.join("/");
                assert!(
                    names.contains(&resolved.as_str()),
                    "{} imports {spec}, which is not embedded",
                    a.name
                );
            }
        }
    }

    #[test]
    fn a_matching_etag_is_not_modified_and_unknown_files_are_404() {
        let tag = etags()[0].clone();
        assert_eq!(serve("index.html", Some(tag)).status(), 304);
        assert_eq!(serve("index.html", Some("\"x\"".into())).status(), 200);
        assert_eq!(serve("../Cargo.toml", None).status(), 404);
    }
}
