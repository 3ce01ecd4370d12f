//! The SSRF guard: deliveries go only to public addresses, unless an allow-list opens a
//! range. Names are resolved here and only the addresses checked here are handed to the
//! HTTP client, so a name that re-resolves to a private address between check and connect
//! (DNS rebinding) cannot slip through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

#[derive(Debug, thiserror::Error)]
#[error("destination {0} is not a public address and is not allow-listed")]
pub struct Denied(pub String);

#[derive(Debug, thiserror::Error)]
#[error("could not resolve {host}: {reason}")]
pub struct DnsFailure {
    pub host: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid allow-list entry {0:?}: expected an IP address or CIDR range")]
pub struct BadAllowEntry(String);

#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    allow: Vec<IpNet>,
}

impl NetworkPolicy {
    /// Parses comma-separated addresses and CIDR ranges (`127.0.0.1,10.0.0.0/8`).
    pub fn parse(allow: &str) -> Result<Self, BadAllowEntry> {
        let allow = allow
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                IpNet::from_str(s)
                    .or_else(|_| IpAddr::from_str(s).map(IpNet::from))
                    .map_err(|_| BadAllowEntry(s.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allow })
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip)) || is_public(ip)
    }

    /// Checks a URL before any connection: scheme, and the host when it is an IP literal
    /// (the resolver never sees those).
    pub fn check_url(&self, url: &url::Url) -> Result<(), Denied> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Denied(format!("scheme {}", url.scheme())));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err(Denied("a URL without a host".into())),
        };
        if self.permits(ip) {
            Ok(())
        } else {
            Err(Denied(ip.to_string()))
        }
    }
}

/// The HTTP client's resolver: system resolution, then the policy on every address.
pub struct GuardedResolver {
    pub policy: Arc<NetworkPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| DnsFailure {
                    host: host.clone(),
                    reason: e.to_string(),
                })?
                .collect();
            let permitted: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                let first = addrs.first().map(|a| a.ip().to_string()).unwrap_or(host);
                return Err(Box::new(Denied(first)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network", including 0.0.0.0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: instance metadata lives here
        || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || ip.is_documentation()
        || ip.is_multicast()
        || a >= 240) // reserved and broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(embedded(s[6], s[7])); // NAT64
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded(s[1], s[2])); // 6to4
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || s[0..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0])) // discard-only
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn denies_non_public_ranges() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:db8::1",
            "::127.0.0.1",
            "fec0::1",
            "2001::1",
            "100::1",
        ] {
            assert!(!is_public(ip(s)), "{s} should be denied");
        }
    }

    #[test]
    fn permits_public_addresses() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(s)), "{s} should be permitted");
        }
    }

    #[test]
    fn allow_list_opens_ranges() {
        let p = NetworkPolicy::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        assert!(p.permits(ip("127.0.0.1")));
        assert!(!p.permits(ip("127.0.0.2")));
        assert!(p.permits(ip("10.9.9.9")));
        assert!(!p.permits(ip("169.254.169.254")));
        assert!(NetworkPolicy::parse("nope").is_err());
        assert!(NetworkPolicy::parse("").unwrap().allow.is_empty());
    }

    #[test]
    fn checks_urls() {
        let p = NetworkPolicy::default();
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(
            p.check_url(&u("http://169.254.169.254/latest/meta-data/"))
                .is_err()
        );
        assert!(p.check_url(&u("http://[::ffff:127.0.0.1]:8080/")).is_err());
        assert!(p.check_url(&u("ftp://example.com/")).is_err());
        assert!(p.check_url(&u("file:///etc/passwd")).is_err());
        assert!(p.check_url(&u("https://example.com/hook")).is_ok());
        assert!(p.check_url(&u("https://8.8.8.8/hook")).is_ok());
    }

    #[tokio::test]
    async fn resolver_refuses_names_of_private_addresses() {
        let r = GuardedResolver {
            policy: Arc::new(NetworkPolicy::default()),
        };
        let err = r
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .err()
            .unwrap();
        assert!(err.downcast_ref::<Denied>().is_some(), "{err}");
        let open = GuardedResolver {
            policy: Arc::new(NetworkPolicy::parse("127.0.0.0/8,::1").unwrap()),
        };
        assert!(
            open.resolve(Name::from_str("localhost").unwrap())
                .await
                .is_ok()
        );
    }
}
