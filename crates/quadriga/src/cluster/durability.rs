//! What the server promises about keeping writes, read on connect.
//!
//! | settings | a `kill -9` of redis-server | the host losing power |
//! |---|---|---|
//! | `appendonly no` (Debian's default) | loses everything since the last snapshot | the same |
//! | `appendonly yes`, `appendfsync everysec` | keeps every acknowledged write | may lose about the last second |
//! | `appendonly yes`, `appendfsync always` | keeps every acknowledged write | keeps every acknowledged write |
//!
//! Replication is asynchronous: a failover to a replica can lose writes the
//! old primary had acknowledged, whatever these settings say.

use std::fmt;

/// The server's persistence settings, as `CONFIG GET` reported them (`None`
/// where the command was refused, as managed services often do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durability {
    /// `appendonly`: whether every write goes to the append-only file.
    pub appendonly: Option<bool>,
    /// `appendfsync`: `always`, `everysec` or `no`.
    pub appendfsync: Option<String>,
}

impl Durability {
    /// Writes survive a crash of the server process (`appendonly yes`).
    pub fn is_durable(&self) -> bool {
        self.appendonly == Some(true)
    }

    /// What a user should be told, if anything: that queued work can be lost
    /// on a restart, and how to fix it.
    pub fn warning(&self) -> Option<String> {
        match (self.appendonly, self.appendfsync.as_deref()) {
            (None, _) => Some(
                "could not read the broker's persistence settings (CONFIG GET refused): \
                 queued tasks may not survive a restart of the broker"
                    .into(),
            ),
            (Some(false), _) => Some(
                "the broker runs with `appendonly no`: a restart of redis-server loses queued \
                 tasks and results; set `appendonly yes` and `appendfsync always` (or everysec)"
                    .into(),
            ),
            (Some(true), Some("always")) => None,
            (Some(true), Some("everysec")) => Some(
                "the broker runs with `appendfsync everysec`: a host crash may lose about the \
                 last second of queued tasks and results (`appendfsync always` keeps them)"
                    .into(),
            ),
            (Some(true), other) => Some(format!(
                "the broker runs with `appendfsync {}`: a host crash may lose recent writes \
                 (`appendfsync always` keeps them)",
                other.unwrap_or("?")
            )),
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: Option<bool>| match b {
            Some(true) => "yes",
            Some(false) => "no",
            None => "?",
        };
        write!(
            f,
            "appendonly {}, appendfsync {}",
            yes_no(self.appendonly),
            self.appendfsync.as_deref().unwrap_or("?")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_unless_every_write_is_synced() {
        let d = |a, s: Option<&str>| Durability {
            appendonly: a,
            appendfsync: s.map(Into::into),
        };
        assert_eq!(d(Some(true), Some("always")).warning(), None);
        assert!(d(Some(true), Some("always")).is_durable());
        assert!(
            d(Some(true), Some("everysec"))
                .warning()
                .unwrap()
                .contains("second")
        );
        assert!(!d(Some(false), Some("always")).is_durable());
        assert!(
            d(Some(false), None)
                .warning()
                .unwrap()
                .contains("appendonly no")
        );
        assert!(!d(None, None).is_durable());
        assert!(d(None, None).warning().unwrap().contains("CONFIG GET"));
    }
}
