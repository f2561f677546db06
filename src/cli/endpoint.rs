//! Where the command-line clients (`signet mcp`, `signet hook`) find the
//! daemon: one reading of `SIGNET_DAEMON_URL`, `SIGNET_HOST`/`SIGNET_PORT`
//! and `SIGNET_TOKEN`/`SIGNET_API_KEY`, so every client talks to the same
//! daemon with the same credentials.

/// The daemon's address when nothing in the environment says otherwise.
pub const DEFAULT_BASE: &str = "http://127.0.0.1:3850";

/// A running daemon, as a client reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Scheme, host, port and any path prefix, without a trailing slash
    /// (`http://127.0.0.1:3850`); routes are appended to it.
    pub base: String,
    /// The bearer token to send, if any.
    pub token: Option<String>,
}

impl Endpoint {
    /// From the environment: `SIGNET_DAEMON_URL` (a base URL; a trailing
    /// slash or `/mcp` is dropped, so the MCP bridge's URL works too), else
    /// `http://$SIGNET_HOST:$SIGNET_PORT` (127.0.0.1 and 3850); the token
    /// is `SIGNET_TOKEN`, else `SIGNET_API_KEY`. Blank values count as
    /// unset.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Endpoint {
        let set = |k: &str| {
            var(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let base = set("SIGNET_DAEMON_URL").unwrap_or_else(|| {
            format!(
                "http://{}:{}",
                set("SIGNET_HOST").unwrap_or_else(|| "127.0.0.1".into()),
                set("SIGNET_PORT").unwrap_or_else(|| "3850".into())
            )
        });
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix("/mcp").unwrap_or(base);
        Endpoint {
            base: base.trim_end_matches('/').to_string(),
            token: set("SIGNET_TOKEN").or_else(|| set("SIGNET_API_KEY")),
        }
    }

    /// The URL of a route (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_default_is_the_local_daemon_without_a_token() {
        let e = Endpoint::from_env(env(&[]));
        assert_eq!(e.base, DEFAULT_BASE);
        assert_eq!(e.token, None);
        assert_eq!(
            e.url("/api/hooks/recall"),
            "http://127.0.0.1:3850/api/hooks/recall"
        );
    }

    #[test]
    fn host_and_port_build_the_base_when_no_url_is_given() {
        let e = Endpoint::from_env(env(&[("SIGNET_HOST", "10.0.0.2"), ("SIGNET_PORT", "4000")]));
        assert_eq!(e.base, "http://10.0.0.2:4000");
    }

    #[test]
    fn the_daemon_url_wins_and_loses_its_trailing_slash_and_mcp_suffix() {
        for (url, base) in [
            ("https://mem.example.com/", "https://mem.example.com"),
            ("http://h:1/mcp", "http://h:1"),
            ("http://h:1/mcp/", "http://h:1"),
            ("http://h:1/prefix", "http://h:1/prefix"),
            ("  http://h:1  ", "http://h:1"),
        ] {
            let e = Endpoint::from_env(move |k: &str| {
                (k == "SIGNET_DAEMON_URL" || k == "SIGNET_PORT").then(|| url.to_string())
            });
            assert_eq!(e.base, base, "{url}");
        }
    }

    #[test]
    fn the_token_is_signet_token_else_the_api_key_and_blank_is_unset() {
        let e = Endpoint::from_env(env(&[("SIGNET_TOKEN", "t"), ("SIGNET_API_KEY", "k")]));
        assert_eq!(e.token.as_deref(), Some("t"));
        let e = Endpoint::from_env(env(&[("SIGNET_TOKEN", " "), ("SIGNET_API_KEY", "k")]));
        assert_eq!(e.token.as_deref(), Some("k"));
    }
}
