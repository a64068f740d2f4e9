//! The address a call comes from, which the per-address limits, the
//! login-failure limits and the audit log count by.
//!
//! Behind a reverse proxy every connection comes from the proxy, so its
//! address would make the per-address limits one global limit. The addresses
//! a proxy reports (`Forwarded: for=`, RFC 7239, or else `X-Forwarded-For`)
//! count only when the connection comes from a trusted proxy
//! (`FOLIO_TRUSTED_PROXIES`): then the chain is read from the right, past
//! every trusted proxy, and the first address that is not one is the
//! client's. Anyone can write these headers, so an address left of the first
//! untrusted one is never believed.

use std::net::IpAddr;

use ipnet::IpNet;

/// The client's address, put in a request's extensions by the middleware.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub String);

/// The address the call counts as coming from: `peer`, or, when `peer` is a
/// trusted proxy, the nearest address in the forwarding headers that is not.
pub fn client_address(peer: IpAddr, headers: &http::HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut nearest = peer;
    for hop in forwarded_chain(headers).into_iter().rev() {
        // An address a proxy could not name ("unknown", an obfuscated id) ends
        // the walk: the last proxy that spoke is as near as can be known.
        let Some(address) = hop else { return nearest };
        if !is_trusted(&address) {
            return address;
        }
        nearest = address;
    }
    nearest
}

/// The addresses the proxies reported, nearest last: `Forwarded`'s `for=`
/// elements if that header is present, else `X-Forwarded-For`'s entries.
/// `None` for an entry that is not an address.
fn forwarded_chain(headers: &http::HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|entry| entry.trim().to_owned())
            .filter(|entry| !entry.is_empty())
            .collect()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (name, value) = pair.trim().split_once('=')?;
                        name.eq_ignore_ascii_case("for").then_some(value)
                    })
                    .and_then(node_address)
            })
            .collect();
    }
    values("x-forwarded-for").iter().map(|entry| node_address(entry)).collect()
}

/// An address from a node: `192.0.2.1`, `192.0.2.1:4711`, `"[2001:db8::1]:4711"`.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(address) = node.parse() {
        return Some(address);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_count_only_from_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), IpNet::from(ip("127.0.0.1"))];
        let xff = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_address(ip("198.51.100.7"), &xff, &trusted),
            ip("198.51.100.7"),
            "not a proxy"
        );
        assert_eq!(client_address(ip("10.1.2.3"), &xff, &trusted), ip("203.0.113.9"));
        assert_eq!(client_address(ip("10.1.2.3"), &xff, &[]), ip("10.1.2.3"), "nothing trusted");
        assert_eq!(client_address(ip("10.1.2.3"), &headers(&[]), &trusted), ip("10.1.2.3"), "no header");
    }

    #[test]
    fn the_chain_is_read_from_the_right_past_trusted_proxies_only() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // A client that writes its own header cannot choose its address.
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.5")]);
        assert_eq!(client_address(ip("10.0.0.1"), &spoofed, &trusted), ip("203.0.113.9"));
        // Two header lines are one list.
        let split = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_address(ip("10.0.0.1"), &split, &trusted), ip("203.0.113.9"));
        // All trusted: the farthest one.
        let inside = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.5")]);
        assert_eq!(client_address(ip("10.0.0.1"), &inside, &trusted), ip("10.9.9.9"));
        // An entry that is no address ends the walk at the proxy that wrote it.
        let unknown = headers(&[("x-forwarded-for", "203.0.113.9, unknown, 10.0.0.5")]);
        assert_eq!(client_address(ip("10.0.0.1"), &unknown, &trusted), ip("10.0.0.5"));
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_its_nodes_parse() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let both = headers(&[
            (
                "forwarded",
                r#"for=192.0.2.60;proto=http;by=10.0.0.5, for="[2001:db8:cafe::17]:4711""#,
            ),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(client_address(ip("10.0.0.1"), &both, &trusted), ip("2001:db8:cafe::17"));
        let port = headers(&[("forwarded", "For=192.0.2.43:47011")]);
        assert_eq!(client_address(ip("10.0.0.1"), &port, &trusted), ip("192.0.2.43"));
        let hidden = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(client_address(ip("10.0.0.1"), &hidden, &trusted), ip("10.0.0.1"));
    }
}
