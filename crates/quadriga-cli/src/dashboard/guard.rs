//! Who may ask what: the `Host` check (against DNS rebinding) on every
//! request, and for actions the token and the `Origin` check (against
//! cross-site requests).
//!
//! * Bound to a loopback address, the dashboard answers only requests whose
//!   `Host` names loopback with its port (`127.0.0.1:P`, `localhost:P`,
//!   `[::1]:P`): a page of another site whose name was rebound to 127.0.0.1
//!   sends its own name and is refused. Bound elsewhere (told so by
//!   `--listen`), any name may reach it, so only the token guards actions.
//! * An action (a POST) needs the actions on (a key was given), the token in
//!   the `X-Quadriga-Token` header (compared in constant time; the header
//!   also forces a browser's CORS preflight, which is never granted), and,
//!   when a browser sends `Origin`, an origin of `http://` and the `Host`.

use std::net::SocketAddr;

use hyper::HeaderMap;
use hyper::header::{HOST, ORIGIN};

use subtle::ConstantTimeEq;

/// The header an action's token travels in.
pub(crate) const TOKEN_HEADER: &str = "x-quadriga-token";

/// The checks for one listening address and key.
#[derive(Debug)]
pub(crate) struct Guard {
    /// `Some(port)`: bound to loopback, only loopback names with this port.
    loopback_port: Option<u16>,
    /// The action token, when actions are on.
    token: Option<String>,
}

/// Why a request is refused (all are 403).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The `Host` is not one this dashboard answers to.
    Host,
    /// Actions are off (no key).
    ActionsOff,
    /// The token is missing or wrong.
    Token,
    /// The `Origin` is another site's.
    Origin,
}

impl Refusal {
    /// What to tell the client.
    pub(crate) fn message(&self) -> &'static str {
        match self {
            Refusal::Host => "this Host is not served (the dashboard listens on loopback)",
            Refusal::ActionsOff => {
                "actions are off: start the dashboard with --key-file F (or QUADRIGA_KEY)"
            }
            Refusal::Token => "a missing or wrong X-Quadriga-Token",
            Refusal::Origin => "a request from another origin",
        }
    }
}

impl Guard {
    pub(crate) fn new(listen: SocketAddr, token: Option<String>) -> Self {
        Guard {
            loopback_port: listen.ip().is_loopback().then_some(listen.port()),
            token,
        }
    }

    /// Whether actions are on.
    pub(crate) fn actions(&self) -> bool {
        self.token.is_some()
    }

    /// The check every request passes: its `Host`.
    pub(crate) fn request(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(port) = self.loopback_port else {
            return Ok(());
        };
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        match host {
            Some(h) if is_loopback_host(h, port) => Ok(()),
            _ => Err(Refusal::Host),
        }
    }

    /// The checks an action passes, besides [`request`](Self::request).
    pub(crate) fn action(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        self.request(headers)?;
        let Some(token) = &self.token else {
            return Err(Refusal::ActionsOff);
        };
        match headers.get(TOKEN_HEADER) {
            Some(given) if token_matches(token, given.as_bytes()) => {}
            _ => return Err(Refusal::Token),
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let host = headers.get(HOST).map(|h| h.as_bytes()).unwrap_or_default();
            let expected = [b"http://".as_slice(), host].concat();
            if origin.as_bytes() != expected.as_slice() {
                return Err(Refusal::Origin);
            }
        }
        Ok(())
    }
}

/// `127.0.0.1:P`, `localhost:P` or `[::1]:P` (any 127/8 address).
fn is_loopback_host(host: &str, port: u16) -> bool {
    let Some((name, p)) = host.rsplit_once(':') else {
        return false;
    };
    if p.parse::<u16>() != Ok(port) {
        return false;
    }
    name.eq_ignore_ascii_case("localhost")
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `given` is `expected`, compared in constant time (the length is
/// not secret: every token has 64 characters).
fn token_matches(expected: &str, given: &[u8]) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn on_loopback_only_loopback_names_with_the_port_are_served() {
        let g = Guard::new("127.0.0.1:8470".parse().unwrap(), None);
        for ok in [
            "127.0.0.1:8470",
            "localhost:8470",
            "LOCALHOST:8470",
            "[::1]:8470",
        ] {
            assert_eq!(g.request(&headers(&[("host", ok)])), Ok(()), "{ok}");
        }
        for bad in [
            "evil.example:8470",
            "127.0.0.1:80",
            "127.0.0.1",
            "10.0.0.1:8470",
        ] {
            assert_eq!(
                g.request(&headers(&[("host", bad)])),
                Err(Refusal::Host),
                "{bad}"
            );
        }
        assert_eq!(g.request(&HeaderMap::new()), Err(Refusal::Host));
        let open = Guard::new("0.0.0.0:8470".parse().unwrap(), None);
        assert_eq!(open.request(&headers(&[("host", "box:8470")])), Ok(()));
    }

    #[test]
    fn an_action_needs_the_key_the_token_and_the_same_origin() {
        let host = ("host", "127.0.0.1:8470");
        let off = Guard::new("127.0.0.1:8470".parse().unwrap(), None);
        assert_eq!(off.action(&headers(&[host])), Err(Refusal::ActionsOff));
        let token = "ab".repeat(32);
        let g = Guard::new("127.0.0.1:8470".parse().unwrap(), Some(token.clone()));
        assert_eq!(g.action(&headers(&[host])), Err(Refusal::Token));
        assert_eq!(
            g.action(&headers(&[host, (TOKEN_HEADER, &"cd".repeat(32))])),
            Err(Refusal::Token)
        );
        assert_eq!(g.action(&headers(&[host, (TOKEN_HEADER, &token)])), Ok(()));
        assert_eq!(
            g.action(&headers(&[
                host,
                (TOKEN_HEADER, &token),
                ("origin", "http://127.0.0.1:8470")
            ])),
            Ok(())
        );
        assert_eq!(
            g.action(&headers(&[
                host,
                (TOKEN_HEADER, &token),
                ("origin", "http://evil.example")
            ])),
            Err(Refusal::Origin)
        );
        assert_eq!(
            g.action(&headers(&[
                ("host", "evil.example:8470"),
                (TOKEN_HEADER, &token)
            ])),
            Err(Refusal::Host)
        );
    }
}
