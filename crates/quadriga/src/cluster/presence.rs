//! A client's presence record: a small value it renews while it runs, with
//! a time to live, that workers read to know whether the client is still
//! there (a shell job whose run ended is not run; an output writer whose
//! reader left stops). What the bytes say (a signed time, say) is the
//! caller's business; the broker only stores them.

use std::time::Duration;

use super::broker::Broker;
use super::error::Error;

/// The largest presence record [`Broker::presence`] accepts.
pub const MAX_PRESENCE: usize = 4096;

impl Broker {
    /// The key of `client`'s presence record (in shard 0's slot).
    fn presence_key(&self, client: u64) -> String {
        format!("{}:presence", self.keys().reply(0, client))
    }

    /// Stores this client's presence record (at most [`MAX_PRESENCE`]
    /// bytes) for `ttl`, replacing the last. Safe to repeat.
    pub fn announce(&mut self, record: &[u8], ttl: Duration) -> Result<(), Error> {
        if record.len() > MAX_PRESENCE {
            return Err(Error::new(
                super::error::ErrorKind::Config,
                format!("a presence record of {} bytes", record.len()),
            ));
        }
        let key = self.presence_key(self.client_id());
        let link = self.link();
        let io = link.io_timeout();
        link.call("announcing presence", io, |con| {
            redis::cmd("SET")
                .arg(&key)
                .arg(record)
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query::<()>(con)
        })
    }

    /// Removes this client's presence record (its run is over).
    pub fn withdraw(&mut self) -> Result<(), Error> {
        let key = self.presence_key(self.client_id());
        let link = self.link();
        let io = link.io_timeout();
        link.call("withdrawing presence", io, |con| {
            redis::cmd("DEL").arg(&key).query::<()>(con)
        })
    }

    /// `client`'s presence record, if it has a live one. A record over
    /// [`MAX_PRESENCE`] bytes reads as none.
    pub fn presence(&mut self, client: u64) -> Result<Option<Vec<u8>>, Error> {
        let key = self.presence_key(client);
        let link = self.link();
        let io = link.io_timeout();
        let v: Option<Vec<u8>> = link.call("reading presence", io, |con| {
            redis::cmd("GET").arg(&key).query(con)
        })?;
        Ok(v.filter(|b| b.len() <= MAX_PRESENCE))
    }
}
