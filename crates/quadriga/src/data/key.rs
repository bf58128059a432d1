//! [`Key`]: a group's key (a field's bytes), inline when it is short.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest key kept inline: 22 bytes, so a [`Key`] is 24 bytes, the
/// size of a `Vec<u8>`.
const INLINE: usize = 22;

/// A group's key, such as a CSV field's bytes, for a hash map of partial
/// aggregates: up to 22 bytes are kept inline, so a lookup reads the map's
/// own memory and never follows a pointer to a key elsewhere on the heap
/// (with `Vec<u8>` keys and 100,000 groups, comparing the key behind that
/// pointer took a quarter of the `data` bench suite's q2 in a profile).
/// Longer keys live on the heap.
///
/// It hashes, compares and orders as its bytes, and borrows as `[u8]`, so a
/// map keyed by it is looked up with the field itself; it travels (serde) as
/// its bytes.
///
/// ```
/// use std::collections::HashMap;
/// use quadriga::data::Key;
///
/// let mut sums: HashMap<Key, i64> = HashMap::new();
/// for (field, v) in [(&b"id001"[..], 3), (b"id002", 4), (b"id001", 5)] {
///     match sums.get_mut(field) {
///         Some(sum) => *sum += v,
///         None => {
///             sums.insert(Key::new(field), v);
///         }
///     }
/// }
/// assert_eq!(sums[&b"id001"[..]], 8);
/// assert_eq!(Key::new(b"id002").as_bytes(), b"id002");
/// ```
#[derive(Clone)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    /// A key of `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Key(Repr::Inline {
                len: bytes.len() as u8,
                bytes: inline,
            })
        } else {
            Key(Repr::Heap(bytes.into()))
        }
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(bytes) => bytes,
        }
    }

    /// Its bytes as text, any bytes that are not UTF-8 replaced.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes, which `Borrow` requires.
        self.as_bytes().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&[u8]> for Key {
    fn from(bytes: &[u8]) -> Self {
        Key::new(bytes)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(self.as_bytes()), f)
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_bytes().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(deserializer).map(|bytes| Key::new(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn short_and_long_keys_look_alike_and_are_as_small_as_a_vec() {
        assert_eq!(std::mem::size_of::<Key>(), std::mem::size_of::<Vec<u8>>());
        let short = Key::new(&[7; INLINE]);
        let long = Key::new(&[7; INLINE + 1]);
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert!(matches!(long.0, Repr::Heap(_)));
        assert!(short < long);
        assert_eq!(Key::new(b""), Key::new(b""));
        let mut map = HashMap::new();
        map.insert(short.clone(), 1);
        map.insert(long.clone(), 2);
        assert_eq!(map.get(&[7u8; INLINE][..]), Some(&1));
        assert_eq!(map.get(&[7u8; INLINE + 1][..]), Some(&2));
        for key in [short, long, Key::new(b"id0000072164")] {
            let json = serde_json::to_string(&key).unwrap();
            assert_eq!(serde_json::from_str::<Key>(&json).unwrap(), key);
        }
        assert_eq!(format!("{:?}", Key::new(b"ab")), r#""ab""#);
    }
}
