//! Origin and host names as the browser boundary and the configuration
//! read them: `scheme://host[:port]` and `host[:port]`, normalised.

/// Normalise an origin (`scheme://host[:port]`): lowercase, default port
/// dropped. `None` when it is not one (`null`, a path, a wildcard).
pub fn normalise_origin(raw: &str) -> Option<String> {
    let raw = raw.trim().to_ascii_lowercase();
    let (scheme, rest) = raw.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return None;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@', '*', ' ']) {
        return None;
    }
    let authority = normalise_authority(rest, scheme)?;
    Some(format!("{scheme}://{authority}"))
}

/// `host[:port]` with the scheme's default port dropped.
pub fn normalise_authority(authority: &str, scheme: &str) -> Option<String> {
    let (host, port) = split_host(authority)?;
    let default = if scheme == "https" { 443 } else { 80 };
    Some(match port {
        Some(p) if p != default => format!("{host}:{p}"),
        _ => host.to_string(),
    })
}

/// Split `host[:port]` (an IPv6 host keeps its brackets).
pub fn split_host(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() {
        return None;
    }
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, p)) if !host.is_empty() => Some((host, Some(p.parse().ok()?))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// Whether a `Host` value names this machine's loopback.
pub fn is_loopback_host(host: &str) -> bool {
    split_host(&host.trim().to_ascii_lowercase())
        .is_some_and(|(h, _)| matches!(h, "localhost" | "127.0.0.1" | "[::1]"))
}
