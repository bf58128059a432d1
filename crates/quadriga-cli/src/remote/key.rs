//! The shared key: loaded from `--key-file` or `$QUADRIGA_KEY`, never sent
//! anywhere; one subkey per purpose, HMAC-SHA256(key, label), so a tag made
//! for one purpose (a presence record) is no good for another (a job).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The environment variable that holds the key itself (when no file is given).
pub(crate) const KEY_ENV: &str = "QUADRIGA_KEY";
/// The shortest key accepted.
pub(crate) const MIN_KEY: usize = 16;
/// The longest key file read.
const MAX_KEY: u64 = 4096;
/// An HMAC-SHA256 tag's length.
pub(crate) const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// What a subkey is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Signing shell jobs.
    Jobs,
    /// Signing a run's presence record.
    Presence,
    /// The dashboard's action token (requeue, discard).
    Dashboard,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Jobs => b"quadriga/v1/jobs",
            Purpose::Presence => b"quadriga/v1/presence",
            Purpose::Dashboard => b"quadriga/v1/dashboard",
        }
    }
}

/// The shared key, as read.
pub(crate) struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// A subkey: signs and checks tags for one purpose.
#[derive(Clone)]
pub(crate) struct SubKey([u8; TAG_LEN]);

impl std::fmt::Debug for SubKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubKey(..)")
    }
}

impl Key {
    /// The key from `file` if given, else from `$QUADRIGA_KEY`. A file
    /// readable or writable by group or others is refused (as ssh does);
    /// trailing newlines are not part of the key; at least [`MIN_KEY`] bytes.
    pub(crate) fn load(file: Option<&Path>) -> Result<Key> {
        let bytes = match file {
            Some(path) => read_file(path)?,
            None => match std::env::var_os(KEY_ENV) {
                Some(v) => std::os::unix::ffi::OsStringExt::into_vec(v),
                None => bail!(
                    "no key: give --key-file FILE or set {KEY_ENV} \
                     (the same key on the runner and its workers)"
                ),
            },
        };
        Key::from_bytes(bytes)
    }

    /// [`load`](Self::load) when a file is given or [`KEY_ENV`] is set;
    /// `None` when neither is (for what works without a key).
    pub(crate) fn load_if_given(file: Option<&Path>) -> Result<Option<Key>> {
        if file.is_none() && std::env::var_os(KEY_ENV).is_none() {
            return Ok(None);
        }
        Key::load(file).map(Some)
    }

    /// A key from its bytes (trailing newlines removed).
    pub(crate) fn from_bytes(mut bytes: Vec<u8>) -> Result<Key> {
        while bytes.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            bytes.pop();
        }
        if bytes.len() < MIN_KEY {
            bail!(
                "the key is {} bytes; it must be at least {MIN_KEY} \
                 (for example: head -c 32 /dev/urandom | base64 > key; chmod 600 key)",
                bytes.len()
            );
        }
        Ok(Key(bytes))
    }

    /// The subkey for `purpose`: HMAC-SHA256(key, label).
    pub(crate) fn subkey(&self, purpose: Purpose) -> SubKey {
        SubKey(tag_with(&self.0, purpose.label()))
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    let file =
        File::open(path).with_context(|| format!("cannot open the key file {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "the key file {} is accessible by group or others (mode {:o}); \
             it must be readable by its owner only: chmod 600 {}",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        );
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    if bytes.len() as u64 > MAX_KEY {
        bail!("the key file {} is over {MAX_KEY} bytes", path.display());
    }
    Ok(bytes)
}

fn tag_with(key: &[u8], data: &[u8]) -> [u8; TAG_LEN] {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl SubKey {
    /// The subkey itself in lowercase hex: a bearer token (the dashboard's),
    /// which tells nothing of the key or of the other subkeys.
    pub(crate) fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The tag of `data`.
    pub(crate) fn sign(&self, data: &[u8]) -> [u8; TAG_LEN] {
        tag_with(&self.0, data)
    }

    /// Whether `tag` is `data`'s (compared in constant time).
    pub(crate) fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }

    /// `data` with its tag appended.
    pub(crate) fn seal(&self, mut data: Vec<u8>) -> Vec<u8> {
        let tag = self.sign(&data);
        data.extend_from_slice(&tag);
        data
    }

    /// The data of a sealed message whose tag checks, else `None`.
    pub(crate) fn open<'a>(&self, sealed: &'a [u8]) -> Option<&'a [u8]> {
        let split = sealed.len().checked_sub(TAG_LEN)?;
        let (data, tag) = sealed.split_at(split);
        self.verify(data, tag).then_some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_differ_by_purpose_and_tags_check() {
        let key = Key::from_bytes(b"0123456789abcdef\n".to_vec()).unwrap();
        let jobs = key.subkey(Purpose::Jobs);
        let presence = key.subkey(Purpose::Presence);
        assert_ne!(jobs.0, presence.0);
        assert_ne!(jobs.0, key.subkey(Purpose::Dashboard).0);
        let sealed = jobs.seal(b"echo hi".to_vec());
        assert_eq!(jobs.open(&sealed), Some(&b"echo hi"[..]));
        assert_eq!(presence.open(&sealed), None);
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert_eq!(jobs.open(&tampered), None);
        assert_eq!(jobs.open(b"short"), None);
        let other = Key::from_bytes(b"0123456789abcdeF".to_vec()).unwrap();
        assert_eq!(other.subkey(Purpose::Jobs).open(&sealed), None);
    }

    #[test]
    fn the_dashboard_token_is_the_hmac_of_its_label() {
        // From `printf 'quadriga/v1/dashboard' | openssl dgst -sha256 -hmac 0123456789abcdef`.
        let key = Key::from_bytes(b"0123456789abcdef".to_vec()).unwrap();
        assert_eq!(
            key.subkey(Purpose::Dashboard).hex(),
            "a6fbb47db8254209fb9979251d3610af4b2b38a76b0c187bbd408e66ae99ae90"
        );
    }

    #[test]
    fn short_keys_and_open_files_are_refused() {
        assert!(Key::from_bytes(b"short\n".to_vec()).is_err());
        let dir = std::env::temp_dir().join(format!("quadriga-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Key::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("group or others"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = Key::load(Some(&path)).unwrap();
        assert_eq!(key.0, b"0123456789abcdef0123");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
