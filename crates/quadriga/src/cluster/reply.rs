//! Reading Redis replies defensively: each helper names what it expected, so
//! an odd reply becomes a protocol error, never a panic.

use redis::Value;

use super::error::Error;

/// The bytes of a string reply.
pub(crate) fn bytes<'a>(v: &'a Value, what: &str) -> Result<&'a [u8], Error> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        Value::Okay => Ok(b"OK"),
        other => Err(Error::protocol(what, format!("{other:?} is not a string"))),
    }
}

/// A string reply as text.
pub(crate) fn text(v: &Value, what: &str) -> Result<String, Error> {
    let b = bytes(v, what)?;
    String::from_utf8(b.to_vec()).map_err(|_| Error::protocol(what, "a string is not UTF-8"))
}

/// An integer reply (or a string holding one).
pub(crate) fn int(v: &Value, what: &str) -> Result<i64, Error> {
    match v {
        Value::Int(n) => Ok(*n),
        other => {
            let t = text(other, what)?;
            t.parse()
                .map_err(|_| Error::protocol(what, format!("`{t}` is not an integer")))
        }
    }
}

/// The elements of an array reply (nil reads as empty).
pub(crate) fn array<'a>(v: &'a Value, what: &str) -> Result<&'a [Value], Error> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(Error::protocol(what, format!("{other:?} is not an array"))),
    }
}

/// Field/value pairs: a flat array (RESP2) or a map (RESP3).
pub(crate) fn pairs<'a>(v: &'a Value, what: &str) -> Result<Vec<(&'a Value, &'a Value)>, Error> {
    match v {
        Value::Map(m) => Ok(m.iter().map(|(k, v)| (k, v)).collect()),
        other => {
            let items = array(other, what)?;
            if items.len() % 2 != 0 {
                return Err(Error::protocol(what, "an odd number of field/value items"));
            }
            Ok(items.chunks_exact(2).map(|p| (&p[0], &p[1])).collect())
        }
    }
}
