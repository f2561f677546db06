//! Hybrid mode's "is this caller local?", decided from the TCP peer
//! address, never from `Host`.
//!
//! A loopback peer is local unless it sent any forwarding header
//! (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`): a local reverse proxy would
//! otherwise turn every remote client into a local one. A peer listed in
//! `auth.trustedProxies` may forward: the client is then the right-most
//! address of `X-Forwarded-For` that is not itself a trusted proxy.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parsed `auth.trustedProxies`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parse CIDRs (a bare address means that one host).
    pub fn parse(list: &[String]) -> Result<Self, String> {
        list.iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("auth.trustedProxies: '{s}' is not a CIDR or IP address"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Number of configured ranges.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when none are configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The forwarding headers of a request, as far as locality cares.
#[derive(Debug, Default, Clone)]
pub struct Forwarding<'a> {
    /// Any of `Forwarded`, `X-Forwarded-*`, `X-Real-IP` present.
    pub any: bool,
    /// Every `X-Forwarded-For` value, in order.
    pub x_forwarded_for: Vec<&'a str>,
    /// `X-Real-IP`, if sent.
    pub x_real_ip: Option<&'a str>,
    /// Every `Forwarded` value, in order.
    pub forwarded: Vec<&'a str>,
}

/// The `for=` addresses of `Forwarded` values (RFC 7239), in order.
fn forwarded_for<'a>(values: &[&'a str]) -> Vec<&'a str> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .flat_map(|elem| elem.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            k.trim().eq_ignore_ascii_case("for").then(|| {
                let v = v.trim().trim_matches('"');
                // [v6]:port, v4:port
                let v = v
                    .strip_prefix('[')
                    .and_then(|r| r.split(']').next())
                    .unwrap_or(v);
                match v.rsplit_once(':') {
                    Some((host, port))
                        if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) =>
                    {
                        host
                    }
                    _ => v,
                }
            })
        })
        .collect()
}

/// The client address: the peer, or behind a trusted proxy the right-most
/// untrusted hop of `X-Forwarded-For`. `None` when a forwarding header came
/// from an untrusted peer, or the chain cannot be read.
pub fn client_addr(
    peer: Option<IpAddr>,
    fwd: &Forwarding<'_>,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    if !fwd.any {
        return Some(peer);
    }
    if !trusted.contains(peer) {
        return None;
    }
    let mut hops: Vec<&str> = fwd
        .x_forwarded_for
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    if hops.is_empty() {
        hops = forwarded_for(&fwd.forwarded);
    }
    if hops.is_empty() {
        hops.extend(fwd.x_real_ip.map(str::trim));
    }
    if hops.is_empty() {
        // A proxy that forwards without naming the client: the client is
        // unknown, so it is not local.
        return None;
    }
    for hop in hops.iter().rev() {
        let ip = canonical(hop.parse::<IpAddr>().ok()?);
        if !trusted.contains(ip) {
            return Some(ip);
        }
    }
    hops.first().and_then(|h| h.parse().ok()).map(canonical)
}

/// Whether the caller counts as local (hybrid mode's token-less admin).
pub fn is_local(peer: Option<IpAddr>, fwd: &Forwarding<'_>, trusted: &TrustedProxies) -> bool {
    client_addr(peer, fwd, trusted).is_some_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn loopback_without_forwarding_is_local_and_remote_is_not() {
        let t = TrustedProxies::default();
        assert!(is_local(ip("127.0.0.1"), &Forwarding::default(), &t));
        assert!(is_local(ip("::1"), &Forwarding::default(), &t));
        assert!(is_local(ip("::ffff:127.0.0.1"), &Forwarding::default(), &t));
        assert!(!is_local(ip("10.0.0.5"), &Forwarding::default(), &t));
        assert!(!is_local(None, &Forwarding::default(), &t));
    }

    #[test]
    fn any_forwarding_header_from_an_untrusted_peer_voids_locality() {
        let t = TrustedProxies::default();
        let f = Forwarding {
            any: true,
            x_forwarded_for: vec!["127.0.0.1"],
            ..Default::default()
        };
        assert!(!is_local(ip("127.0.0.1"), &f, &t));
        let f = Forwarding {
            any: true,
            ..Default::default()
        };
        assert!(!is_local(ip("127.0.0.1"), &f, &t));
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
        let t =
            TrustedProxies::parse(&["127.0.0.0/8".into(), "172.18.0.0/16".into()]).expect("cidrs");
        let f = |v| Forwarding {
            any: true,
            x_forwarded_for: vec![v],
            ..Default::default()
        };
        assert_eq!(
            client_addr(ip("127.0.0.1"), &f("203.0.113.9, 172.18.0.2"), &t),
            ip("203.0.113.9")
        );
        // A spoofed left-most entry does not help: the right-most untrusted hop wins.
        assert_eq!(
            client_addr(ip("127.0.0.1"), &f("127.0.0.1, 198.51.100.7"), &t),
            ip("198.51.100.7")
        );
        assert!(is_local(ip("127.0.0.1"), &f("127.0.0.1"), &t));
        assert!(!is_local(ip("127.0.0.1"), &f("198.51.100.7"), &t));
        assert_eq!(client_addr(ip("127.0.0.1"), &f("garbage"), &t), None);
        assert!(TrustedProxies::parse(&["not a cidr".into()]).is_err());
        // Without X-Forwarded-For, X-Real-IP and Forwarded name the client.
        let real = Forwarding {
            any: true,
            x_real_ip: Some("203.0.113.7"),
            ..Default::default()
        };
        assert_eq!(client_addr(ip("127.0.0.1"), &real, &t), ip("203.0.113.7"));
        let fwd = Forwarding {
            any: true,
            forwarded: vec!["for=\"[2001:db8::1]:4711\";proto=https, for=198.51.100.2"],
            ..Default::default()
        };
        assert_eq!(client_addr(ip("127.0.0.1"), &fwd, &t), ip("198.51.100.2"));
        let only_proto = Forwarding {
            any: true,
            ..Default::default()
        };
        assert!(!is_local(ip("127.0.0.1"), &only_proto, &t));
    }
}
