//! What the broker recorded, read straight from Redis: the tests that check
//! outcomes byte for byte (cancel, faults, Redis Cluster) share this reader.

/// Every task outcome recorded in the entry records matching `pattern`, as
/// (`<record key>#<item index>`, the outcome's stored bytes), sorted: an
/// item's own outcome (`x:<index>`, a cancel) over its entry's list
/// (`out`), over the entry's dead letter (`dead`).
pub(crate) fn recorded(con: &mut redis::Connection, pattern: &str) -> Vec<(String, Vec<u8>)> {
    use std::collections::HashMap;
    let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(con).unwrap();
    let mut out = Vec::new();
    for key in keys {
        let fields: HashMap<String, Vec<u8>> = redis::cmd("HGETALL").arg(&key).query(con).unwrap();
        let num = |f: &str| -> u64 { String::from_utf8_lossy(&fields[f]).parse().unwrap() };
        let (lo, n) = (num("lo"), num("n"));
        let list = fields
            .get("out")
            .map(|b| quadriga::cluster::Outcome::decode_many(b, 1 << 30).unwrap());
        for i in lo..lo + n {
            let bytes = if let Some(b) = fields.get(&format!("x:{i}")) {
                Some(b.clone())
            } else if let Some(list) = &list {
                Some(list[(i - lo) as usize].encode())
            } else {
                fields.get("dead").cloned()
            };
            if let Some(bytes) = bytes {
                out.push((format!("{key}#{i}"), bytes));
            }
        }
    }
    out.sort();
    out
}
