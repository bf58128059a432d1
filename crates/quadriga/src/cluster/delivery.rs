//! [`Delivery`]: one stream entry handed to a consumer, decoded or refused.

use redis::Value;

use super::entry::{Entry, FIELD};
use super::error::{Error, ErrorKind};
use super::reply;

/// One entry delivered to this consumer (read, reclaimed, or resumed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The shard whose stream holds it.
    pub shard: u16,
    /// Its stream id (`<ms>-<n>`).
    pub id: String,
    /// How many times it has been delivered, this time included (0 when not
    /// known).
    pub deliveries: u64,
    /// The decoded entry, or why it is not one of ours (then it should be
    /// dead-lettered with that reason).
    pub entry: Result<Entry, Error>,
}

impl Delivery {
    /// Builds a delivery from a stream entry's id and fields, decoding the
    /// entry within `max_bytes`.
    pub(crate) fn parse(
        shard: u16,
        id: String,
        deliveries: u64,
        fields: &Value,
        max_bytes: usize,
    ) -> Delivery {
        let entry = decode_fields(shard, fields, max_bytes);
        Delivery {
            shard,
            id,
            deliveries,
            entry,
        }
    }
}

fn decode_fields(shard: u16, fields: &Value, max_bytes: usize) -> Result<Entry, Error> {
    let foreign = |why: String| Error::new(ErrorKind::Codec, why);
    let pairs = reply::pairs(fields, "stream entry fields")
        .map_err(|e| foreign(format!("a foreign entry: {}", e.message())))?;
    let mut names = Vec::new();
    for (name, value) in &pairs {
        let name = reply::bytes(name, "field name").unwrap_or(b"?");
        if name == FIELD.as_bytes() && pairs.len() == 1 {
            let bytes = reply::bytes(value, "entry field")
                .map_err(|e| foreign(format!("a foreign entry: {}", e.message())))?;
            let entry = Entry::decode(bytes, max_bytes)
                .map_err(|e| foreign(format!("an undecodable entry: {}", e.message())))?;
            if entry.shard != shard {
                return Err(foreign(format!(
                    "a misplaced entry: it names shard {} but sits in shard {shard}",
                    entry.shard
                )));
            }
            return Ok(entry);
        }
        if names.len() < 8 {
            names.push(String::from_utf8_lossy(&name[..name.len().min(64)]).into_owned());
        }
    }
    Err(foreign(format!(
        "a foreign entry: {} field(s) ({}), not the one field `{FIELD}` quadriga writes",
        pairs.len(),
        names.join(", ")
    )))
}
