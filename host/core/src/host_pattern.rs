//! Outbound host patterns, in the grammar Spin users know:
//!
//! ```text
//! pattern = scheme "://" host [ ":" port ]
//! scheme  = "*" | "http" | "https"
//! host    = "*" | "*." domain | domain | ipv4 | "[" ipv6 "]" | ipv4 "/" bits | "[" ipv6 "]/" bits
//! port    = "*" | number | number "-" number
//! ```
//!
//! No paths, no userinfo, no query. Without a port a pattern means the scheme's default port
//! (80 for http, 443 for https; either for `*`). `*.example.com` matches subdomains only, not
//! `example.com` itself.
//!
//! This module parses and matches; it does no IO. Resolving names and checking the resolved
//! addresses is [`crate::address`]'s and the host's egress client's job.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A parsed host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: SchemePattern,
    host: HostMatcher,
    port: PortPattern,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemePattern {
    Any,
    Exact(Scheme),
}

/// The schemes cordon's HTTP client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatcher {
    Any,
    /// A domain name, lowercase, without a trailing dot.
    Domain(String),
    /// `*.domain`: strict subdomains of the domain.
    Subdomains(String),
    Ip(IpAddr),
    Cidr(IpNet),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// The default port of the destination's scheme.
    SchemeDefault,
    Any,
    Range(u16, u16),
}

impl PortPattern {
    /// The ports this pattern allows for `scheme`, as an inclusive range.
    fn range(self, scheme: Scheme) -> (u16, u16) {
        match self {
            PortPattern::SchemeDefault => (scheme.default_port(), scheme.default_port()),
            PortPattern::Any => (0, u16::MAX),
            PortPattern::Range(lo, hi) => (lo, hi),
        }
    }
}

/// Where a request goes, after its URL was parsed and normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub scheme: Scheme,
    pub host: DestinationHost,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationHost {
    /// Lowercase, IDNA-encoded, without a trailing dot.
    Domain(String),
    /// IPv4-mapped IPv6 addresses are turned into IPv4 here.
    Ip(IpAddr),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            DestinationHost::Domain(d) => write!(f, "{}://{}:{}", self.scheme.as_str(), d, self.port),
            DestinationHost::Ip(IpAddr::V6(ip)) => {
                write!(f, "{}://[{}]:{}", self.scheme.as_str(), ip, self.port)
            }
            DestinationHost::Ip(ip) => write!(f, "{}://{}:{}", self.scheme.as_str(), ip, self.port),
        }
    }
}

/// Why a string is not a host pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host pattern {text:?} is invalid: {reason}")]
pub struct InvalidHostPattern {
    pub text: String,
    pub reason: String,
}

/// Why a URL cannot be a destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUrl {
    #[error("{0:?} is not a valid URL: {1}")]
    Unparsable(String, String),
    #[error("scheme {0:?} is not supported; use http or https")]
    Scheme(String),
    #[error(
        "URLs with a user name or password are refused; send credentials in a header with a secret placeholder"
    )]
    Userinfo,
    #[error("the URL has no host")]
    NoHost,
}

/// Turns an IPv4-mapped IPv6 address into the IPv4 address it carries, so that
/// `[::ffff:127.0.0.1]` is treated exactly like `127.0.0.1`.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

impl Destination {
    /// Parses a URL the way the HTTP client will, so the host checked is the host contacted.
    /// The `url` crate follows WHATWG: `http://2130706433/` is `127.0.0.1`, backslashes are
    /// slashes, tabs and newlines are removed, names are lowercased and IDNA-encoded.
    pub fn from_url(url: &url::Url) -> Result<Destination, InvalidUrl> {
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(InvalidUrl::Scheme(other.to_owned())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidUrl::Userinfo);
        }
        let host = match url.host() {
            None => return Err(InvalidUrl::NoHost),
            Some(url::Host::Ipv4(ip)) => DestinationHost::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => DestinationHost::Ip(canonical_ip(IpAddr::V6(ip))),
            Some(url::Host::Domain(domain)) => {
                let domain = domain.strip_suffix('.').unwrap_or(domain);
                if domain.is_empty() {
                    return Err(InvalidUrl::NoHost);
                }
                DestinationHost::Domain(domain.to_ascii_lowercase())
            }
        };
        let port = url.port().unwrap_or(scheme.default_port());
        Ok(Destination { scheme, host, port })
    }

    pub fn parse(text: &str) -> Result<Destination, InvalidUrl> {
        let url =
            url::Url::parse(text).map_err(|e| InvalidUrl::Unparsable(text.to_owned(), e.to_string()))?;
        Destination::from_url(&url)
    }
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<HostPattern, InvalidHostPattern> {
        let fail = |reason: &str| InvalidHostPattern {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| fail("expected scheme://host[:port], for example https://api.example.com"))?;
        let scheme = match scheme {
            "*" => SchemePattern::Any,
            "http" => SchemePattern::Exact(Scheme::Http),
            "https" => SchemePattern::Exact(Scheme::Https),
            _ => return Err(fail("the scheme must be http, https or *")),
        };
        if rest.contains('@') {
            return Err(fail("user names are not allowed in host patterns"));
        }
        if rest.contains(['?', '#']) {
            return Err(fail(
                "queries and fragments are not allowed; give only scheme://host[:port]",
            ));
        }
        let (host_text, port_text) = split_host_port(rest).map_err(|r| fail(&r))?;
        let host = parse_host(host_text).map_err(|r| fail(&r))?;
        let port = match port_text {
            None => PortPattern::SchemeDefault,
            Some(p) => parse_port(p).map_err(|r| fail(&r))?,
        };
        Ok(HostPattern {
            scheme,
            host,
            port,
            text: text.to_owned(),
        })
    }

    /// Whether a request to `destination` fits this pattern.
    pub fn matches(&self, destination: &Destination) -> bool {
        let scheme_ok = match self.scheme {
            SchemePattern::Any => true,
            SchemePattern::Exact(s) => s == destination.scheme,
        };
        let port_ok = match self.port {
            PortPattern::SchemeDefault => destination.port == destination.scheme.default_port(),
            PortPattern::Any => true,
            PortPattern::Range(lo, hi) => (lo..=hi).contains(&destination.port),
        };
        let host_ok = match (&self.host, &destination.host) {
            (HostMatcher::Any, _) => true,
            (HostMatcher::Domain(p), DestinationHost::Domain(d)) => p == d,
            (HostMatcher::Subdomains(p), DestinationHost::Domain(d)) => d
                .strip_suffix(p.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            (HostMatcher::Ip(p), DestinationHost::Ip(ip)) => p == ip,
            (HostMatcher::Cidr(net), DestinationHost::Ip(ip)) => net.contains(ip),
            _ => false,
        };
        scheme_ok && port_ok && host_ok
    }

    /// Whether every destination `other` matches, this pattern matches too. Used to tell
    /// whether a connector's request is already inside the operator's grant. It may answer
    /// `false` for an exotic pair that is in fact covered (an address against a one-address
    /// CIDR range); that only makes cordon ask for an approval it did not need.
    pub fn covers(&self, other: &HostPattern) -> bool {
        let schemes: &[Scheme] = match other.scheme {
            SchemePattern::Any => &[Scheme::Http, Scheme::Https],
            SchemePattern::Exact(Scheme::Http) => &[Scheme::Http],
            SchemePattern::Exact(Scheme::Https) => &[Scheme::Https],
        };
        let ports_ok = schemes.iter().all(|&scheme| {
            let scheme_ok = match self.scheme {
                SchemePattern::Any => true,
                SchemePattern::Exact(s) => s == scheme,
            };
            let (lo, hi) = other.port.range(scheme);
            let (self_lo, self_hi) = self.port.range(scheme);
            scheme_ok && self_lo <= lo && hi <= self_hi
        });
        let host_ok = match (&self.host, &other.host) {
            (HostMatcher::Any, _) => true,
            (_, HostMatcher::Any) => false,
            (HostMatcher::Domain(p), HostMatcher::Domain(d)) => p == d,
            (HostMatcher::Subdomains(p), HostMatcher::Domain(d) | HostMatcher::Subdomains(d)) => {
                (d == p && matches!(other.host, HostMatcher::Subdomains(_)))
                    || d.strip_suffix(p.as_str())
                        .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
            }
            (HostMatcher::Ip(p), HostMatcher::Ip(ip)) => p == ip,
            (HostMatcher::Cidr(net), HostMatcher::Ip(ip)) => net.contains(ip),
            (HostMatcher::Cidr(net), HostMatcher::Cidr(inner)) => net.contains(inner),
            _ => false,
        };
        ports_ok && host_ok
    }

    /// Whether this pattern names `ip` explicitly, as an address or a CIDR range. Only such a
    /// pattern lets a request reach a loopback, private or otherwise special address: a
    /// wildcard or a domain name never does.
    pub fn names_address(&self, ip: IpAddr) -> bool {
        match &self.host {
            HostMatcher::Ip(p) => *p == ip,
            HostMatcher::Cidr(net) => net.contains(&ip),
            _ => false,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn split_host_port(rest: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(after_bracket) = rest.strip_prefix('[') {
        // [ipv6] or [ipv6]/bits, then optional :port
        let close = after_bracket
            .find(']')
            .ok_or("missing ']' after an IPv6 address")?;
        let end = close + 2; // '[' + address + ']'
        let mut host_end = end;
        let tail = &rest[end..];
        if let Some(bits) = tail.strip_prefix('/') {
            let digits = bits.find(|c: char| !c.is_ascii_digit()).unwrap_or(bits.len());
            host_end = end + 1 + digits;
        }
        let host = &rest[..host_end];
        return match &rest[host_end..] {
            "" => Ok((host, None)),
            t if t.starts_with(':') => Ok((host, Some(&t[1..]))),
            _ => Err("paths are not allowed; give only scheme://host[:port]".to_owned()),
        };
    }
    if rest.contains('/') {
        // ipv4/bits[:port] is allowed; any other '/' is a path.
        if let Some((addr, tail)) = rest.split_once('/') {
            let digits = tail.find(|c: char| !c.is_ascii_digit()).unwrap_or(tail.len());
            let after = &tail[digits..];
            if digits > 0
                && addr.parse::<std::net::Ipv4Addr>().is_ok()
                && (after.is_empty() || after.starts_with(':'))
            {
                let host = &rest[..addr.len() + 1 + digits];
                return Ok((host, after.strip_prefix(':')));
            }
        }
        return Err("paths are not allowed; give only scheme://host[:port]".to_owned());
    }
    match rest.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((rest, None)),
    }
}

fn parse_host(text: &str) -> Result<HostMatcher, String> {
    if text.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if text == "*" {
        return Ok(HostMatcher::Any);
    }
    if let Some(inner) = text.strip_prefix('[') {
        let (addr, bits) = match inner.split_once(']') {
            Some((addr, tail)) => (addr, tail.strip_prefix('/')),
            None => return Err("missing ']'".to_owned()),
        };
        let ip: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv6 address"))?;
        return match bits {
            None => Ok(HostMatcher::Ip(canonical_ip(IpAddr::V6(ip)))),
            Some(bits) => cidr(IpAddr::V6(ip), bits),
        };
    }
    if let Some((addr, bits)) = text.split_once('/') {
        let ip: std::net::Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        return cidr(IpAddr::V4(ip), bits);
    }
    if let Ok(ip) = text.parse::<std::net::Ipv4Addr>() {
        return Ok(HostMatcher::Ip(IpAddr::V4(ip)));
    }
    let (wildcard, domain) = match text.strip_prefix("*.") {
        Some(domain) => (true, domain),
        None => (false, text),
    };
    let domain = domain.strip_suffix('.').unwrap_or(domain).to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.contains('*') {
        return Err("'*' is allowed only as the whole host or as a leading '*.'".to_owned());
    }
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(format!(
            "{domain:?} is not a domain name (use ASCII or punycode: letters, digits, '-', separated by dots)"
        ));
    }
    if domain.split('.').all(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return Err(format!(
            "{domain:?} looks like a numeric address; write a dotted IPv4 address"
        ));
    }
    Ok(if wildcard {
        HostMatcher::Subdomains(domain)
    } else {
        HostMatcher::Domain(domain)
    })
}

fn cidr(ip: IpAddr, bits: &str) -> Result<HostMatcher, String> {
    let bits: u8 = bits
        .parse()
        .map_err(|_| format!("{bits:?} is not a prefix length"))?;
    let net = IpNet::new(ip, bits).map_err(|_| format!("prefix length /{bits} is too long for {ip}"))?;
    if net.network() != ip {
        return Err(format!(
            "{ip}/{bits} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(HostMatcher::Cidr(net))
}

fn parse_port(text: &str) -> Result<PortPattern, String> {
    if text == "*" {
        return Ok(PortPattern::Any);
    }
    let number = |s: &str| -> Result<u16, String> {
        match s.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("{s:?} is not a port (1 to 65535)")),
            Ok(p) => Ok(p),
        }
    };
    match text.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (number(lo)?, number(hi)?);
            if lo > hi {
                return Err(format!("port range {lo}-{hi} is empty"));
            }
            Ok(PortPattern::Range(lo, hi))
        }
        None => {
            let p = number(text)?;
            Ok(PortPattern::Range(p, p))
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for HostPattern {
    type Err = InvalidHostPattern;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostPattern::parse(s)
    }
}

impl Serialize for HostPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HostPattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(pattern: &str, url: &str) -> bool {
        let pattern = HostPattern::parse(pattern).unwrap_or_else(|e| panic!("{e}"));
        let destination = Destination::parse(url).unwrap_or_else(|e| panic!("{e}"));
        pattern.matches(&destination)
    }

    #[test]
    fn covering_table() {
        let table: &[(&str, &str, bool)] = &[
            ("https://api.example.com", "https://api.example.com", true),
            ("https://api.example.com", "https://api.example.com:443", true),
            ("https://api.example.com", "https://api.example.com:8443", false),
            ("https://api.example.com", "*://api.example.com", false),
            ("*://api.example.com", "https://api.example.com", true),
            ("*://api.example.com", "*://api.example.com", true),
            ("https://*.example.com", "https://api.example.com", true),
            ("https://*.example.com", "https://example.com", false),
            ("https://*.example.com", "https://*.api.example.com", true),
            ("https://*.example.com", "https://*.example.com", true),
            ("https://*.api.example.com", "https://*.example.com", false),
            ("https://*.example.com", "https://api.example.com.evil.net", false),
            ("https://*.example.com", "https://badexample.com", false),
            ("https://*", "https://anything.test", true),
            ("https://api.example.com", "https://*", false),
            ("http://127.0.0.1:*", "http://127.0.0.1:8080", true),
            ("http://127.0.0.1:8000-9000", "http://127.0.0.1:8080-8090", true),
            ("http://127.0.0.1:8000-9000", "http://127.0.0.1:*", false),
            ("http://127.0.0.1:8080", "http://127.0.0.1:*", false),
            ("http://10.0.0.0/8:*", "http://10.1.2.3:80", true),
            ("http://10.0.0.0/8", "http://10.1.0.0/16", true),
            ("http://10.1.0.0/16", "http://10.0.0.0/8", false),
            ("http://10.1.2.3", "http://10.0.0.0/8", false),
            ("http://127.0.0.1:*", "http://[::1]:*", false),
        ];
        for &(outer, inner, expected) in table {
            let outer_pattern = HostPattern::parse(outer).unwrap_or_else(|e| panic!("{e}"));
            let inner_pattern = HostPattern::parse(inner).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                outer_pattern.covers(&inner_pattern),
                expected,
                "{outer} covers {inner}"
            );
        }
    }

    #[test]
    fn matching_table() {
        let table: &[(&str, &str, bool)] = &[
            // exact hosts and default ports
            ("https://api.example.com", "https://api.example.com/x", true),
            ("https://api.example.com", "https://api.example.com:443/", true),
            ("https://api.example.com", "https://api.example.com:8443/", false),
            ("https://api.example.com", "http://api.example.com/", false),
            ("https://api.example.com", "https://other.example.com/", false),
            ("https://api.example.com", "https://API.Example.COM/", true),
            ("https://api.example.com", "https://api.example.com./", true),
            (
                "https://api.example.com",
                "https://api.example.com.evil.net/",
                false,
            ),
            // scheme wildcard keeps each scheme's default port
            ("*://api.example.com", "http://api.example.com/", true),
            ("*://api.example.com", "https://api.example.com/", true),
            ("*://api.example.com", "http://api.example.com:443/", false),
            // subdomain wildcard excludes the bare domain
            ("https://*.example.com", "https://a.example.com/", true),
            ("https://*.example.com", "https://a.b.example.com/", true),
            ("https://*.example.com", "https://example.com/", false),
            ("https://*.example.com", "https://badexample.com/", false),
            // ports
            ("http://localhost:8080", "http://localhost:8080/", true),
            ("http://localhost:8080", "http://localhost:8081/", false),
            ("http://localhost:8000-8999", "http://localhost:8500/", true),
            ("http://localhost:8000-8999", "http://localhost:9000/", false),
            ("http://localhost:*", "http://localhost:1/", true),
            // everything
            ("*://*:*", "http://anything.example:1234/", true),
            ("*://*:*", "https://10.0.0.1/", true),
            // addresses and ranges
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/", true),
            ("http://127.0.0.1:8080", "http://2130706433:8080/", true),
            ("http://127.0.0.1:8080", "http://[::ffff:127.0.0.1]:8080/", true),
            ("http://127.0.0.1:8080", "http://localhost:8080/", false),
            ("http://10.0.0.0/8:*", "http://10.1.2.3:5/", true),
            ("http://10.0.0.0/8:*", "http://11.1.2.3:5/", false),
            ("http://[::1]:80", "http://[::1]/", true),
            ("http://[2001:db8::]/32:*", "http://[2001:db8::5]:9/", true),
            ("http://[2001:db8::]/32:*", "http://[2001:db9::5]:9/", false),
        ];
        for (pattern, url, expected) in table {
            assert_eq!(allows(pattern, url), *expected, "{pattern} vs {url}");
        }
    }

    #[test]
    fn rejects_malformed_patterns_with_a_reason() {
        let table: &[(&str, &str)] = &[
            ("api.example.com", "scheme://host"),
            ("ftp://example.com", "scheme must be"),
            ("https://example.com/path", "paths are not allowed"),
            ("https://user@example.com", "user names"),
            ("https://example.com:0", "not a port"),
            ("https://example.com:70000", "not a port"),
            ("https://example.com:9-3", "empty"),
            ("https://ex*ample.com", "'*' is allowed only"),
            ("https://*", ""),
            ("https://10.0.0.1/8", "host bits"),
            ("https://[::1", "']'"),
            ("https://", "empty"),
            ("https://exa mple.com", "not a domain"),
            ("https://example.com?x=1", "queries"),
            ("https://2130706433", "numeric"),
        ];
        for (text, reason) in table {
            match HostPattern::parse(text) {
                Err(e) => assert!(e.to_string().contains(reason), "{text}: {e}"),
                Ok(p) if text == &"https://*" => {
                    assert!(p.matches(&Destination::parse("https://x.y/").unwrap()))
                }
                Ok(p) => panic!("{text} parsed as {p:?}"),
            }
        }
    }

    #[test]
    fn denies_userinfo_in_urls() {
        assert_eq!(
            Destination::parse("https://good@evil.example/"),
            Err(InvalidUrl::Userinfo)
        );
        assert_eq!(
            Destination::parse("https://a:b@evil.example/"),
            Err(InvalidUrl::Userinfo)
        );
    }

    #[test]
    fn refuses_non_http_schemes() {
        assert!(matches!(
            Destination::parse("file:///etc/passwd"),
            Err(InvalidUrl::Scheme(_))
        ));
        assert!(matches!(
            Destination::parse("gopher://x/"),
            Err(InvalidUrl::Scheme(_))
        ));
    }

    #[test]
    fn backslash_urls_are_read_as_the_client_reads_them() {
        // WHATWG treats '\' as '/', so the host is evil.example, never good.example.
        let d = Destination::parse("http://evil.example\\@good.example/").unwrap();
        assert_eq!(d.host, DestinationHost::Domain("evil.example".into()));
    }

    #[test]
    fn names_address_only_for_ip_patterns() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            HostPattern::parse("http://127.0.0.1:1")
                .unwrap()
                .names_address(ip)
        );
        assert!(
            HostPattern::parse("http://127.0.0.0/8:*")
                .unwrap()
                .names_address(ip)
        );
        assert!(
            !HostPattern::parse("http://localhost:*")
                .unwrap()
                .names_address(ip)
        );
        assert!(!HostPattern::parse("*://*:*").unwrap().names_address(ip));
    }

    #[test]
    fn round_trips_through_serde() {
        let p: HostPattern = serde_json::from_str("\"https://*.example.com\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"https://*.example.com\"");
        assert!(serde_json::from_str::<HostPattern>("\"nope\"").is_err());
    }
}
