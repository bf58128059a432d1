//! The dashboard's key and the action token derived from it.
//!
//! The key comes from `--key-file F` (a file that only its owner may read,
//! its trailing newline ignored) or the environment variable `QUADRIGA_KEY`,
//! and has at least 16 bytes. It never leaves the process: the page gets a
//! token, the hex of HMAC-SHA256(key, "quadriga dashboard"), which the
//! dashboard prints in a URL at start and which every action must carry.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The environment variable that holds the key when no file is given.
pub(crate) const KEY_ENV: &str = "QUADRIGA_KEY";

/// The fewest bytes a key may have.
pub(crate) const MIN_KEY_BYTES: usize = 16;

/// What the token is an HMAC of.
const CONTEXT: &[u8] = b"quadriga dashboard";

/// A loaded key (its bytes never printed).
pub(crate) struct Key(Vec<u8>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

impl Key {
    /// The key from `file` if given, else from [`KEY_ENV`] if set; `None`
    /// when neither is (the actions are then off).
    pub(crate) fn load(file: Option<&Path>) -> anyhow::Result<Option<Key>> {
        let bytes = match file {
            Some(path) => read_private(path)?,
            None => match std::env::var_os(KEY_ENV) {
                Some(v) => v.into_encoded_bytes(),
                None => return Ok(None),
            },
        };
        Key::new(bytes).map(Some)
    }

    /// A key of `bytes`, refused under [`MIN_KEY_BYTES`].
    pub(crate) fn new(bytes: Vec<u8>) -> anyhow::Result<Key> {
        if bytes.len() < MIN_KEY_BYTES {
            bail!(
                "the key has {} bytes; it needs at least {MIN_KEY_BYTES} \
                 (for example `head -c 32 /dev/urandom | base64 > key; chmod 600 key`)",
                bytes.len()
            );
        }
        Ok(Key(bytes))
    }

    /// The action token: lowercase hex of HMAC-SHA256(key, "quadriga dashboard").
    pub(crate) fn token(&self) -> String {
        // HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(CONTEXT);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Whether `given` is `expected`, compared in constant time (the length is
/// not secret: every token has 64 characters).
pub(crate) fn token_matches(expected: &str, given: &[u8]) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given))
}

/// A key file's bytes, refusing one that group or others may read or write,
/// without its trailing line break.
fn read_private(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("reading the key file {}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "the key file {} is open to group or others (mode {:o}): `chmod 600` it",
            path.display(),
            mode & 0o777
        );
    }
    let mut bytes =
        std::fs::read(path).with_context(|| format!("reading the key file {}", path.display()))?;
    while bytes.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        bytes.pop();
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_the_hmac_of_the_context() {
        // The expected value is from
        // `printf 'quadriga dashboard' | openssl dgst -sha256 -hmac 0123456789abcdef`.
        let key = Key::new(b"0123456789abcdef".to_vec()).unwrap();
        let token = key.token();
        assert_eq!(
            token,
            "d2828fcb79d9db4f2e83619e61bf99d1b4f5319114149f798fa3e70c8bf7df45"
        );
        let other = Key::new(b"0123456789abcdeF".to_vec()).unwrap();
        assert_ne!(token, other.token());
        assert!(token_matches(&token, token.as_bytes()));
        assert!(!token_matches(&token, other.token().as_bytes()));
        assert!(!token_matches(&token, &token.as_bytes()[..63]));
    }

    #[test]
    fn short_keys_and_open_files_are_refused() {
        assert!(Key::new(b"short".to_vec()).is_err());
        let dir = std::env::temp_dir().join(format!("quadriga-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, "0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Key::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = Key::load(Some(&path)).unwrap().unwrap();
        assert_eq!(
            key.token(),
            Key::new(b"0123456789abcdef".to_vec()).unwrap().token(),
            "the trailing newline is not part of the key"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
