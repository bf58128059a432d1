//! Where the broker is: one Redis server (`redis://`, `rediss://`,
//! `unix://`) or a Redis Cluster given by seed nodes
//! (`redis+cluster://host:port,host:port/`, `rediss+cluster://` with TLS).
//!
//! The URL is the only switch, because it is the one thing every process
//! is given (the pool's `connect`, a worker's `QUADRIGA_CLUSTER_WORKER`).
//! A cluster URL names one or more seed nodes; the client learns the rest
//! of the cluster from them. Its user and password apply to every node.

use super::error::{Error, ErrorKind};

/// The scheme of a Redis Cluster URL.
pub(crate) const CLUSTER_SCHEME: &str = "redis+cluster://";
/// The scheme of a Redis Cluster URL over TLS.
pub(crate) const CLUSTER_TLS_SCHEME: &str = "rediss+cluster://";

/// A parsed broker address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Address {
    /// One server: the URL as given, for the `redis` crate to parse.
    Single(String),
    /// A Redis Cluster: one `redis://` (or `rediss://`) URL per seed node,
    /// each with the credentials.
    Cluster(Vec<String>),
}

impl Address {
    /// Parses `url`. Errors never repeat the URL (it may hold a password).
    pub(crate) fn parse(url: &str) -> Result<Address, Error> {
        let (rest, scheme) = if let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) {
            (rest, "redis://")
        } else if let Some(rest) = url.strip_prefix(CLUSTER_TLS_SCHEME) {
            (rest, "rediss://")
        } else {
            return Ok(Address::Single(url.to_owned()));
        };
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "bad Redis Cluster URL: {why} (expected \
                     {CLUSTER_SCHEME}[user:password@]host:port[,host:port...][/])"
                ),
            )
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !(path.is_empty() || path == "/" || path == "/0") {
            return Err(bad(
                "a cluster has only database 0, and takes no path or query",
            ));
        }
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(i) => (&authority[..=i], &authority[i + 1..]),
            None => ("", authority),
        };
        let mut seeds = Vec::new();
        for host in hosts.split(',') {
            let Some((name, port)) = host.rsplit_once(':') else {
                return Err(bad("every seed node needs host:port"));
            };
            if name.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad("every seed node needs host:port"));
            }
            seeds.push(format!("{scheme}{userinfo}{host}/"));
        }
        Ok(Address::Cluster(seeds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_url_is_one_server() {
        assert_eq!(
            Address::parse("redis://127.0.0.1:6379/").unwrap(),
            Address::Single("redis://127.0.0.1:6379/".into())
        );
    }

    #[test]
    fn a_cluster_url_gives_one_seed_per_node_with_the_credentials() {
        assert_eq!(
            Address::parse("redis+cluster://u:p@a:7000,b:7001/").unwrap(),
            Address::Cluster(vec![
                "redis://u:p@a:7000/".into(),
                "redis://u:p@b:7001/".into()
            ])
        );
        assert_eq!(
            Address::parse("rediss+cluster://h:1").unwrap(),
            Address::Cluster(vec!["rediss://h:1/".into()])
        );
    }

    #[test]
    fn bad_cluster_urls_are_refused_without_echoing_them() {
        for url in [
            "redis+cluster://:secret@a/",
            "redis+cluster://:secret@a:0/",
            "redis+cluster://:secret@a:1,/",
            "redis+cluster://:secret@a:1/3",
            "redis+cluster://:secret@a:1/?x=1",
        ] {
            let err = Address::parse(url).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{url}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }
}
