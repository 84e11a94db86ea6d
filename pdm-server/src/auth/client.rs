//! Who the client is: its address, for throttling sign-ins and for the session record.
//!
//! Behind a reverse proxy every connection comes from the proxy, and throttling by that address
//! would lock everyone out together. `auth.trusted_proxies` names the proxies (addresses or
//! CIDR ranges): when the peer is one of them, the client is the right-most address of
//! `X-Forwarded-For` that is not a trusted proxy (entries further left were written by the
//! client itself and prove nothing). A peer that is not trusted is the client, whatever headers
//! it sends.

use std::net::IpAddr;

/// An address range: an address and the number of leading bits that must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Reads `10.0.0.0/8`, `2001:db8::/32` or a single address.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or a CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => match b.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Cidr { addr, bits })
    }

    /// Its prefix length (0: every address).
    pub fn prefix_len(&self) -> u8 {
        self.bits
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xff_u8 << (8 - rest);
        (a[full] & mask) == (b[full] & mask)
    }
}

/// The client's address: `peer` unless it is a trusted proxy, then the right-most untrusted
/// address of the `X-Forwarded-For` values (`forwarded`, in header order). An entry that is
/// not an address ends the walk: the client is then the last trusted hop's peer.
pub fn client_addr<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ranges_match_by_prefix() {
        let net = Cidr::parse("10.1.0.0/16").expect("cidr");
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let one = Cidr::parse("192.168.1.7").expect("address");
        assert!(one.contains(ip("192.168.1.7")) && !one.contains(ip("192.168.1.8")));
        let v6 = Cidr::parse("2001:db8::/32").expect("v6");
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        let odd = Cidr::parse("10.0.0.0/9").expect("odd prefix");
        assert!(odd.contains(ip("10.127.0.1")) && !odd.contains(ip("10.128.0.1")));
        assert!(Cidr::parse("0.0.0.0/0")
            .expect("all")
            .contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "::/129", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trusting_every_address_is_refused() {
        for all in ["0.0.0.0/0", "::/0"] {
            let c = crate::auth::AuthConfig {
                trusted_proxies: vec!["10.0.0.0/8".into(), all.into()],
                ..Default::default()
            };
            let err = c.check().unwrap_err().to_string();
            assert!(err.contains("auth.trusted_proxies[1]"), "{err}");
        }
    }

    #[test]
    fn the_client_is_the_last_untrusted_hop() {
        let trusted = [Cidr::parse("10.0.0.0/8").expect("cidr")];
        let proxy = ip("10.0.0.2");
        // No proxy in between: the peer, whatever it claims.
        assert_eq!(
            client_addr(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &trusted),
            ip("203.0.113.9")
        );
        // Through the proxy: the address it appended.
        assert_eq!(
            client_addr(proxy, ["198.51.100.7"].into_iter(), &trusted),
            ip("198.51.100.7")
        );
        // A forged entry on the left is skipped; trusted hops on the right too.
        assert_eq!(
            client_addr(
                proxy,
                ["6.6.6.6, 198.51.100.7", "10.0.0.5"].into_iter(),
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Nothing forwarded: the proxy itself. Garbage: the last address before it.
        assert_eq!(client_addr(proxy, std::iter::empty(), &trusted), proxy);
        assert_eq!(
            client_addr(proxy, ["garbage, 10.0.0.7"].into_iter(), &trusted),
            ip("10.0.0.7")
        );
        // No trusted proxies configured: always the peer.
        assert_eq!(client_addr(proxy, ["198.51.100.7"].into_iter(), &[]), proxy);
    }
}
