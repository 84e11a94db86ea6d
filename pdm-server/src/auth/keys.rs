//! The access-token signing keys: configured (`auth.signing_key`, base64 of at least 32 bytes),
//! or generated into `<data_dir>/auth-keys.json` on first start (mode 0600 on Unix) and rotated
//! with `pdm-server auth rotate-key`, which puts a new key first and keeps the previous one, so
//! tokens signed before the rotation stay valid until they expire.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::jwt::Key;

/// The file's name under the data directory.
pub const FILE: &str = "auth-keys.json";

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET: usize = 32;

/// Keys kept after a rotation: the new one and the one before it.
pub const KEPT: usize = 2;

#[derive(Debug, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    secret: String,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why the keys cannot be had; the message names the file or the setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

/// The path of the key file under `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The configured key: `secret_b64` decoded, its id derived from it (so every worker given the
/// same secret names it alike).
pub fn configured(secret_b64: &str) -> Result<Vec<Key>, KeyError> {
    let secret = STANDARD.decode(secret_b64.trim()).map_err(|_| {
        KeyError(
            "auth.signing_key: not base64 (generate one with `openssl rand -base64 32`)".into(),
        )
    })?;
    if secret.len() < MIN_SECRET {
        return Err(KeyError(format!(
            "auth.signing_key: {} bytes; at least {MIN_SECRET} are needed",
            secret.len()
        )));
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(&secret);
    let kid = format!("c{}", hex(&digest[..6]));
    Ok(vec![Key { kid, secret }])
}

/// The keys of `file`, generating it with one new key when it does not exist.
pub fn load_or_create(file: &Path) -> Result<Vec<Key>, KeyError> {
    match std::fs::read(file) {
        Ok(bytes) => parse(file, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Workers starting together on one data directory must end with one key: the file
            // is created only if absent (a hard link of a complete temporary file fails when
            // the name exists), and whoever loses reads the winner's.
            let keys = vec![new_key()];
            match write_with(file, &keys, Replace::No) {
                Ok(()) => Ok(keys),
                Err(WriteError::Exists) => match std::fs::read(file) {
                    Ok(bytes) => parse(file, &bytes),
                    Err(e) => Err(KeyError(format!("cannot read {}: {e}", file.display()))),
                },
                Err(WriteError::Failed(e)) => Err(e),
            }
        }
        Err(e) => Err(KeyError(format!("cannot read {}: {e}", file.display()))),
    }
}

/// Puts a new key first in `file` (created when missing), keeping [`KEPT`] keys; returns the
/// new key's id.
pub fn rotate(file: &Path) -> Result<String, KeyError> {
    let mut keys = load_or_create(file)?;
    let key = new_key();
    let kid = key.kid.clone();
    keys.insert(0, key);
    keys.truncate(KEPT);
    write(file, &keys)?;
    Ok(kid)
}

fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<Key>, KeyError> {
    let bad = |why: &str| KeyError(format!("{}: {why}", file.display()));
    let f: KeyFile = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
    if f.keys.is_empty() {
        return Err(bad("no keys (delete the file to have a new one generated)"));
    }
    f.keys
        .into_iter()
        .map(|k| {
            let secret = STANDARD
                .decode(&k.secret)
                .map_err(|_| bad(&format!("key {}: the secret is not base64", k.kid)))?;
            if secret.len() < MIN_SECRET || k.kid.is_empty() {
                return Err(bad(&format!("key {}: too short", k.kid)));
            }
            Ok(Key { kid: k.kid, secret })
        })
        .collect()
}

/// One new random key, kept in memory only (a server assembled without a data directory: its
/// tokens die with it).
pub fn ephemeral() -> Vec<Key> {
    vec![new_key()]
}

fn new_key() -> Key {
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let mut id = [0u8; 6];
    rand::rng().fill_bytes(&mut id);
    Key {
        kid: format!("k{}", hex(&id)),
        secret,
    }
}

/// Whether [`write_with`] may replace an existing file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    Yes,
    No,
}

enum WriteError {
    /// `Replace::No` and the file exists.
    Exists,
    Failed(KeyError),
}

fn write(file: &Path, keys: &[Key]) -> Result<(), KeyError> {
    write_with(file, keys, Replace::Yes).map_err(|e| match e {
        WriteError::Exists => KeyError(format!("{} appeared while writing it", file.display())),
        WriteError::Failed(e) => e,
    })
}

/// Writes `keys` to a temporary file of this process (mode 0600, synced), then renames it
/// over `file` (`Replace::Yes`) or links it to `file` only if absent (`Replace::No`).
fn write_with(file: &Path, keys: &[Key], replace: Replace) -> Result<(), WriteError> {
    let f = KeyFile {
        keys: keys
            .iter()
            .map(|k| StoredKey {
                kid: k.kid.clone(),
                secret: STANDARD.encode(&k.secret),
            })
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&f).unwrap_or_default();
    let tmp = file.with_extension(format!(
        "json.{}-{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let fail = |e: std::io::Error| {
        WriteError::Failed(KeyError(format!("cannot write {}: {e}", file.display())))
    };
    // The data directory holds no database when PostgreSQL does: it may not exist yet.
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    {
        use std::io::Write as _;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut out = options.open(&tmp).map_err(fail)?;
        out.write_all(&json).map_err(fail)?;
        out.sync_all().map_err(fail)?;
    }
    let placed = match replace {
        Replace::Yes => std::fs::rename(&tmp, file).map_err(fail),
        Replace::No => {
            let linked = match std::fs::hard_link(&tmp, file) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(WriteError::Exists),
                other => other.map_err(fail),
            };
            let _ = std::fs::remove_file(&tmp);
            linked
        }
    };
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_then_rotated_keeping_the_previous_key() {
        let dir = tempfile::tempdir().expect("dir");
        let file = path(&dir.path().join("not-yet"));
        let first = load_or_create(&file).expect("created, with its directory");
        assert_eq!(first.len(), 1);
        assert_eq!(load_or_create(&file).expect("read")[0].kid, first[0].kid);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the owner reads the keys");
        }
        let second = rotate(&file).expect("rotated");
        let third = rotate(&file).expect("rotated");
        let keys = load_or_create(&file).expect("read");
        let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, [third.as_str(), second.as_str()]);
    }

    #[test]
    fn workers_starting_together_share_one_key() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("auth-keys.json");
        let kids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(&file).expect("keys")[0].kid.clone()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert!(kids.iter().all(|k| k == &kids[0]), "{kids:?}");
        assert_eq!(load_or_create(&file).expect("keys")[0].kid, kids[0]);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["auth-keys.json"], "no temporary file left");
    }

    #[test]
    fn bad_keys_are_named() {
        assert!(configured("short")
            .unwrap_err()
            .to_string()
            .contains("auth.signing_key"));
        assert!(configured(&STANDARD.encode([1u8; 8]))
            .unwrap_err()
            .to_string()
            .contains("at least 32"));
        let a = configured(&STANDARD.encode([1u8; 32])).expect("ok");
        let b = configured(&STANDARD.encode([1u8; 32])).expect("ok");
        assert_eq!(
            a[0].kid, b[0].kid,
            "the same secret has the same id everywhere"
        );
        let dir = tempfile::tempdir().expect("dir");
        let file = path(dir.path());
        std::fs::write(&file, br#"{"keys": []}"#).expect("write");
        assert!(load_or_create(&file)
            .unwrap_err()
            .to_string()
            .contains("no keys"));
    }
}
