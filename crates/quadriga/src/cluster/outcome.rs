//! A task's recorded outcome: its encoded output or its [`TaskError`], as
//! stored in its entry's record (an entry's outcomes as one list).

use serde::{Deserialize, Serialize};

use super::error::{Error, ErrorKind};
use crate::TaskError;

/// The stored form's version (its first byte).
const VERSION: u8 = 1;

/// The first byte of a list of outcomes (an entry's, in item order).
const LIST_VERSION: u8 = 2;

/// How a task ended: its output (encoded by the task registry's codec, opaque
/// here) or the error it ended with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The task's encoded output.
    Output(Vec<u8>),
    /// The task's error, any kind (a dead letter records `lost`).
    Error(TaskError),
}

impl Outcome {
    /// The stored bytes: a version byte, then postcard. Equal outcomes encode
    /// to equal bytes, which the completion script relies on to recognise its
    /// own repeat.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding plain data into a Vec cannot fail.
        postcard::to_extend(self, vec![VERSION]).unwrap_or_else(|_| vec![VERSION])
    }

    /// Decodes stored bytes, at most `max_bytes` of them.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Outcome, Error> {
        let codec = |why: String| Error::new(ErrorKind::Codec, why);
        if bytes.len() > max_bytes {
            return Err(codec(format!(
                "the stored outcome is {} bytes, over the limit of {max_bytes}",
                bytes.len()
            )));
        }
        match bytes.split_first() {
            Some((&VERSION, body)) => postcard::from_bytes(body)
                .map_err(|e| codec(format!("the stored outcome does not decode: {e}"))),
            Some((v, _)) => Err(codec(format!("unknown outcome format version {v}"))),
            None => Err(codec("the stored outcome is empty".into())),
        }
    }
}

impl Outcome {
    /// The stored form of an entry's outcomes, one per item in order: a
    /// version byte, then postcard. Equal lists encode to equal bytes.
    pub fn encode_many(outcomes: &[Outcome]) -> Vec<u8> {
        postcard::to_extend(outcomes, vec![LIST_VERSION]).unwrap_or_else(|_| vec![LIST_VERSION])
    }

    /// Decodes a stored list of outcomes, at most `max_bytes` of them and at
    /// most [`MAX_ITEMS`](super::MAX_ITEMS) outcomes.
    pub fn decode_many(bytes: &[u8], max_bytes: usize) -> Result<Vec<Outcome>, Error> {
        let codec = |why: String| Error::new(ErrorKind::Codec, why);
        if bytes.len() > max_bytes {
            return Err(codec(format!(
                "the stored outcomes are {} bytes, over the limit of {max_bytes}",
                bytes.len()
            )));
        }
        let list: Vec<Outcome> = match bytes.split_first() {
            // Serde's sequence visitor caps what it allocates ahead by the
            // claimed count, so a lying length costs no more than the bytes.
            Some((&LIST_VERSION, body)) => postcard::from_bytes(body)
                .map_err(|e| codec(format!("the stored outcomes do not decode: {e}")))?,
            Some((v, _)) => return Err(codec(format!("unknown outcomes format version {v}"))),
            None => return Err(codec("the stored outcomes are empty".into())),
        };
        if list.len() > super::entry::MAX_ITEMS {
            return Err(codec(format!("{} stored outcomes", list.len())));
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_encodes_deterministically() {
        for o in [
            Outcome::Output(vec![1, 2, 3]),
            Outcome::Error(TaskError::failed("nope")),
        ] {
            let bytes = o.encode();
            assert_eq!(bytes, o.encode());
            assert_eq!(Outcome::decode(&bytes, 1 << 20).unwrap(), o);
        }
        assert!(Outcome::decode(b"", 10).is_err());
        assert!(Outcome::decode(b"\x02x", 10).is_err());
        assert!(Outcome::decode(&[1; 11], 10).is_err());
    }

    #[test]
    fn lists_round_trip_and_refuse_foreign_bytes() {
        let list = vec![
            Outcome::Output(vec![7]),
            Outcome::Error(TaskError::cancelled("no")),
        ];
        let bytes = Outcome::encode_many(&list);
        assert_eq!(bytes, Outcome::encode_many(&list));
        assert_eq!(Outcome::decode_many(&bytes, 1 << 20).unwrap(), list);
        assert!(Outcome::decode_many(&bytes, bytes.len() - 1).is_err());
        assert!(Outcome::decode_many(b"", 10).is_err());
        // One outcome is not a list, and a huge claimed count is refused.
        assert!(Outcome::decode_many(&list[0].encode(), 10).is_err());
        assert!(Outcome::decode_many(&[2, 0xff, 0xff, 0xff, 0xff, 0x0f], 100).is_err());
    }
}
