//! One lazily opened connection with explicit timeouts. A connection that
//! broke, or timed out, mid-call is thrown away (a late reply must never be
//! read as the answer to the next command) and the next call opens a new one.

use std::time::Duration;

use redis::{Client, Connection};

use super::error::{Error, ErrorKind};

/// A connection to the broker, opened on first use and after any failure.
pub(crate) struct Link {
    client: Client,
    con: Option<Connection>,
    connect_timeout: Duration,
    io_timeout: Duration,
    /// `host:port` (never the URL, which may hold a password).
    addr: String,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("addr", &self.addr)
            .field("connected", &self.con.is_some())
            .finish()
    }
}

impl Link {
    pub(crate) fn new(
        url: &str,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<Self, Error> {
        let client = Client::open(url).map_err(|e| {
            // The parser's message does not repeat the URL (which may hold a
            // password), so it is safe to show.
            Error::new(ErrorKind::Config, format!("bad broker URL: {e}"))
        })?;
        let addr = client.get_connection_info().addr().to_string();
        Ok(Self {
            client,
            con: None,
            connect_timeout,
            io_timeout,
            addr,
        })
    }

    /// A second link to the same broker, with its own connection.
    pub(crate) fn fresh(&self) -> Self {
        Self {
            client: self.client.clone(),
            con: None,
            connect_timeout: self.connect_timeout,
            io_timeout: self.io_timeout,
            addr: self.addr.clone(),
        }
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    pub(crate) fn io_timeout(&self) -> Duration {
        self.io_timeout
    }

    /// Runs `f` on the connection, opening it first if needed, with `reply`
    /// as the read timeout. Any failure that leaves the connection in doubt
    /// drops it.
    pub(crate) fn call<T>(
        &mut self,
        what: &str,
        reply: Duration,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let con = match &mut self.con {
            Some(con) => con,
            slot @ None => {
                let con = self
                    .client
                    .get_connection_with_timeout(self.connect_timeout)
                    .map_err(|e| {
                        let mut err = Error::from_redis(&e, false, what);
                        if err.kind() == ErrorKind::Unreachable {
                            err = Error::new(
                                ErrorKind::Unreachable,
                                format!(
                                    "{what}: no connection to the broker at {} within {:?}: {e}",
                                    self.addr, self.connect_timeout
                                ),
                            );
                        }
                        err
                    })?;
                slot.insert(con)
            }
        };
        let timeouts = con
            .set_read_timeout(Some(reply))
            .and_then(|()| con.set_write_timeout(Some(self.io_timeout)));
        let result = timeouts.and_then(|()| f(con));
        result.map_err(|e| {
            let err = Error::from_redis(&e, true, what);
            if err.kind() != ErrorKind::Protocol {
                self.con = None;
            }
            err
        })
    }
}
