//! Blocked networks: addresses a fetch may not connect to after DNS resolution, unless a rule
//! names the IP or its network explicitly. This keeps a rule such as `https://*.example.com`
//! from reaching loopback, the LAN or a cloud metadata service through a DNS answer an attacker
//! controls.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Why an address is blocked: the range it falls in and what that range is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockedRange {
    pub network: IpNet,
    pub kind: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> (Ipv4Addr, u8) {
    (Ipv4Addr::new(a, b, c, d), len)
}

/// Checked in order: the first (most specific) match names the range.
const IPV4_BLOCKED: [((Ipv4Addr, u8), &str); 18] = [
    (v4(169, 254, 169, 254, 32), "cloud metadata"),
    (v4(100, 100, 100, 200, 32), "cloud metadata"),
    (v4(168, 63, 129, 16, 32), "cloud metadata"),
    (v4(0, 0, 0, 0, 8), "unspecified (\"this network\")"),
    (v4(10, 0, 0, 0, 8), "private"),
    (v4(100, 64, 0, 0, 10), "carrier-grade NAT"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (v4(169, 254, 0, 0, 16), "link-local"),
    (v4(172, 16, 0, 0, 12), "private"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (v4(192, 0, 2, 0, 24), "documentation"),
    (v4(192, 88, 99, 0, 24), "6to4 relay anycast"),
    (v4(192, 168, 0, 0, 16), "private"),
    (v4(198, 18, 0, 0, 15), "benchmarking"),
    (v4(198, 51, 100, 0, 24), "documentation"),
    (v4(203, 0, 113, 0, 24), "documentation"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(240, 0, 0, 0, 4), "reserved (and broadcast)"),
];

const fn v6(segments: [u16; 8], len: u8) -> (Ipv6Addr, u8) {
    let [a, b, c, d, e, f, g, h] = segments;
    (Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

const IPV6_BLOCKED: [((Ipv6Addr, u8), &str); 12] = [
    (
        v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
        "cloud metadata",
    ),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "local-use NAT64"),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), "Teredo tunnel"),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation"),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique-local"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// The blocked range `ip` falls in, if any. IPv6 forms that carry an IPv4 address
/// (IPv4-mapped, IPv4-compatible, NAT64, 6to4) are judged by the address they carry.
pub fn blocked_range(ip: IpAddr) -> Option<BlockedRange> {
    match ip {
        IpAddr::V4(ip) => blocked_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(range) = blocked_v6(ip) {
                return Some(range);
            }
            embedded_v4(ip).and_then(blocked_v4)
        }
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<BlockedRange> {
    IPV4_BLOCKED.iter().find_map(|((addr, len), kind)| {
        let net = Ipv4Net::new(*addr, *len).ok()?;
        net.contains(&ip).then_some(BlockedRange {
            network: IpNet::V4(net),
            kind,
        })
    })
}

fn blocked_v6(ip: Ipv6Addr) -> Option<BlockedRange> {
    IPV6_BLOCKED.iter().find_map(|((addr, len), kind)| {
        let net = Ipv6Net::new(*addr, *len).ok()?;
        net.contains(&ip).then_some(BlockedRange {
            network: IpNet::V6(net),
            kind,
        })
    })
}

/// The IPv4 address an IPv6 address stands for, where it stands for one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated but still routed by
        // some stacks).
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        // 2002:AABB:CCDD::/48 (6to4).
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Refuses `ip` when it is in a blocked range and `explicitly_allowed` (a rule naming this IP
/// or its network) does not say otherwise. The error is the reason shown to the guest.
pub fn check_address(
    ip: IpAddr,
    explicitly_allowed: impl Fn(IpAddr) -> bool,
) -> Result<(), String> {
    match blocked_range(ip) {
        Some(range) if !explicitly_allowed(ip) => Err(format!(
            "address {ip} is in a blocked network ({} {}); only a rule that names this IP or network, and allows the request, can let it through",
            range.kind, range.network
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ip: &str) -> Option<&'static str> {
        blocked_range(ip.parse().unwrap()).map(|r| r.kind)
    }

    #[test]
    fn the_ranges_of_the_issue_are_blocked() {
        for (ip, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.0.0.2", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("168.63.129.16", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.255", "carrier-grade NAT"),
            ("0.0.0.0", "unspecified (\"this network\")"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved (and broadcast)"),
            ("192.0.2.10", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fd12:3456::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
        ] {
            assert_eq!(kind(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_carrying_ipv4_are_judged_by_the_ipv4() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.1.1.1",
            "64:ff9b::127.0.0.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(kind(ip).is_some(), "{ip}");
        }
        assert_eq!(kind("::ffff:8.8.8.8"), None);
        assert_eq!(kind("64:ff9b::8.8.8.8"), None);
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
            assert!(check_address(ip.parse().unwrap(), |_| false).is_ok());
        }
    }

    #[test]
    fn an_explicit_rule_lets_a_blocked_address_through() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let err = check_address(ip, |_| false).unwrap_err();
        assert!(err.contains("loopback 127.0.0.0/8"), "{err}");
        assert!(check_address(ip, |named| named == ip).is_ok());
    }
}
