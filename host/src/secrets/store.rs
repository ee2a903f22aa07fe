//! The encrypted secret store: named secrets kept in the run-history database, each sealed
//! with AES-256-GCM under a master key that the database never sees.
//!
//! - The master key is 32 random bytes, written in base64 (`cordon secrets new-key` makes
//!   one). It comes from `CORDON_MASTER_KEY` or from the file `CORDON_MASTER_KEY_FILE` names,
//!   never from the database or the project.
//! - Each value gets a fresh random 96-bit nonce. The secret's name is the associated data,
//!   so a row copied over another name's row fails to open instead of handing out the wrong
//!   secret.
//! - Each row names the key that sealed it by a key id (an HMAC of a fixed label under the
//!   key), so opening with another key says "wrong key" rather than "corrupt".
//!
//! Nothing here prints, logs or returns a value except [`SecretStore::get`], which returns a
//! [`SecretValue`]; listing shows names and dates only.
//!
//! Why ring: it is already in the build (rustls uses it), its AEAD API takes the nonce and the
//! associated data explicitly, and its `SystemRandom` is the OS generator.

use std::sync::Arc;

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::SecretValue;
use crate::db::{Db, DbError, SealedSecret};
use crate::ids::SecretName;

/// The environment variable holding the master key in base64.
pub const MASTER_KEY_ENV: &str = "CORDON_MASTER_KEY";
/// The environment variable naming a file that holds the master key in base64.
pub const MASTER_KEY_FILE_ENV: &str = "CORDON_MASTER_KEY_FILE";

/// The largest value the store accepts. Secrets are tokens and keys, not documents.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

const KEY_BYTES: usize = 32;
/// Bound into every seal, so a value sealed by some other program under the same key (or a
/// later format of ours) never opens as one of these.
const AAD_LABEL: &[u8] = b"cordon secret store v1\0";
const KEY_ID_LABEL: &[u8] = b"cordon master key id v1";

/// Why a master key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "no master key for the secret store: set {MASTER_KEY_ENV} to a key, or {MASTER_KEY_FILE_ENV} (or --master-key-file) to a file holding one; `cordon secrets new-key` makes a key"
    )]
    NotSet,
    #[error(
        "both {MASTER_KEY_ENV} and a master key file are set; keep one, so there is no doubt which key seals the secrets"
    )]
    Ambiguous,
    #[error("cannot read the master key file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "the master key from {origin} is not valid: {reason}; `cordon secrets new-key` makes a valid one"
    )]
    Invalid { origin: String, reason: String },
}

/// The key that seals and opens stored secrets. Its bytes are wiped when it is dropped (ring
/// keeps its own expanded copy, which lives as long as this value).
pub struct MasterKey {
    key: LessSafeKey,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// A key from its base64 text; `origin` says where the text came from, for errors.
    pub fn from_base64(text: &str, origin: &str) -> Result<MasterKey, MasterKeyError> {
        let invalid = |reason: String| MasterKeyError::Invalid {
            origin: origin.to_owned(),
            reason,
        };
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| invalid(format!("it is not base64 ({e})")))?,
        );
        if bytes.len() != KEY_BYTES {
            return Err(invalid(format!(
                "it decodes to {} bytes, and a key is {KEY_BYTES}",
                bytes.len()
            )));
        }
        let unbound =
            UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| invalid("rejected by AES-256-GCM".into()))?;
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes),
            KEY_ID_LABEL,
        );
        Ok(MasterKey {
            key: LessSafeKey::new(unbound),
            id: hex::encode(&tag.as_ref()[..8]),
        })
    }

    /// The key the environment names: `CORDON_MASTER_KEY`, or the file in `file` (from
    /// `--master-key-file`) or in `CORDON_MASTER_KEY_FILE`.
    pub fn from_environment(file: Option<&std::path::Path>) -> Result<MasterKey, MasterKeyError> {
        let inline = std::env::var(MASTER_KEY_ENV).ok().filter(|v| !v.is_empty());
        let file = file.map(std::path::Path::to_owned).or_else(|| {
            std::env::var_os(MASTER_KEY_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(Into::into)
        });
        match (inline, file) {
            (Some(_), Some(_)) => Err(MasterKeyError::Ambiguous),
            (Some(text), None) => MasterKey::from_base64(&Zeroizing::new(text), MASTER_KEY_ENV),
            (None, Some(path)) => {
                let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                    MasterKeyError::Unreadable {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    }
                })?);
                MasterKey::from_base64(&text, &path.display().to_string())
            }
            (None, None) => Err(MasterKeyError::NotSet),
        }
    }

    /// A new random key, in base64.
    pub fn generate() -> Zeroizing<String> {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        // The OS generator failing is not something to carry on from.
        #[allow(clippy::expect_used)]
        SystemRandom::new()
            .fill(bytes.as_mut())
            .expect("the operating system's random generator failed");
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes.as_ref()))
    }

    /// Names the key without revealing anything about it.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Why the store could not do what was asked. No variant carries a value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("secret {0:?} is not in the secret store; `cordon secrets set {0}` stores it")]
    NotFound(String),
    #[error(
        "secret {name:?} was sealed with master key {sealed_with}, and the key given is {given}; use the key it was stored with, or store the secret again"
    )]
    WrongKey {
        name: String,
        sealed_with: String,
        given: String,
    },
    #[error(
        "secret {0:?} does not open with its master key: the stored row was altered or belongs to another name"
    )]
    Tampered(String),
    #[error("secret {name:?} is {len} bytes; the store takes values up to {MAX_SECRET_BYTES} bytes")]
    TooLarge { name: String, len: usize },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What [`SecretStore::list`] shows of a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredSecretInfo {
    pub name: String,
    pub key_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Sealed secrets in a database, opened with one master key.
#[derive(Debug, Clone)]
pub struct SecretStore {
    db: Arc<dyn Db>,
    key: Arc<MasterKey>,
}

fn aad(name: &SecretName) -> Vec<u8> {
    [AAD_LABEL, name.as_str().as_bytes()].concat()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl SecretStore {
    pub fn new(db: Arc<dyn Db>, key: MasterKey) -> SecretStore {
        SecretStore {
            db,
            key: Arc::new(key),
        }
    }

    /// Seals and stores `value` under `name`, replacing any earlier value. Returns whether a
    /// value was replaced.
    pub fn set(&self, name: &SecretName, value: &SecretValue) -> Result<bool, StoreError> {
        let plaintext = value.expose().as_bytes();
        if plaintext.len() > MAX_SECRET_BYTES {
            return Err(StoreError::TooLarge {
                name: name.to_string(),
                len: plaintext.len(),
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        #[allow(clippy::expect_used)]
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the operating system's random generator failed");
        let mut sealed = plaintext.to_vec();
        self.key
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(name)),
                &mut sealed,
            )
            // Sealing fails only for inputs beyond AES-GCM's limit (64 GiB), far above ours.
            .map_err(|_| StoreError::TooLarge {
                name: name.to_string(),
                len: plaintext.len(),
            })?;
        let existed = self.db.sealed_secret(name.as_str())?.is_some();
        let now = now_ms();
        self.db.put_secret(&SealedSecret {
            name: name.to_string(),
            key_id: self.key.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext: sealed,
            created_at: now,
            updated_at: now,
        })?;
        Ok(existed)
    }

    /// Opens the secret `name`.
    pub fn get(&self, name: &SecretName) -> Result<SecretValue, StoreError> {
        let row = self
            .db
            .sealed_secret(name.as_str())?
            .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        if row.key_id != self.key.id {
            return Err(StoreError::WrongKey {
                name: name.to_string(),
                sealed_with: row.key_id,
                given: self.key.id.clone(),
            });
        }
        let tampered = || StoreError::Tampered(name.to_string());
        let nonce = Nonce::try_assume_unique_for_key(&row.nonce).map_err(|_| tampered())?;
        let mut buffer = Zeroizing::new(row.ciphertext);
        let plaintext = self
            .key
            .key
            .open_in_place(nonce, Aad::from(aad(name)), &mut buffer)
            .map_err(|_| tampered())?;
        let text = std::str::from_utf8(plaintext).map_err(|_| tampered())?;
        Ok(SecretValue::new(text))
    }

    /// Whether `name` is stored (without opening it).
    pub fn contains(&self, name: &SecretName) -> Result<bool, StoreError> {
        Ok(self.db.sealed_secret(name.as_str())?.is_some())
    }

    /// Every stored secret's name, key id and dates.
    pub fn list(&self) -> Result<Vec<StoredSecretInfo>, StoreError> {
        Ok(self
            .db
            .list_secrets()?
            .into_iter()
            .map(|row| StoredSecretInfo {
                name: row.name,
                key_id: row.key_id,
                created_at: row.created_at,
                updated_at: row.updated_at,
            })
            .collect())
    }

    /// Removes `name`; returns whether it was there.
    pub fn remove(&self, name: &SecretName) -> Result<bool, StoreError> {
        Ok(self.db.delete_secret(name.as_str())?)
    }

    /// The id of the key this store seals with.
    pub fn key_id(&self) -> &str {
        self.key.id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::SqliteDb;

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate(), "test").unwrap()
    }

    fn name(s: &str) -> SecretName {
        SecretName::new(s).unwrap()
    }

    fn store_in(db: &Arc<SqliteDb>, key: MasterKey) -> SecretStore {
        SecretStore::new(db.clone(), key)
    }

    #[test]
    fn a_stored_secret_opens_and_the_database_holds_no_plaintext() {
        let db = Arc::new(SqliteDb::in_memory().unwrap());
        let store = store_in(&db, key());
        assert!(
            !store
                .set(&name("token"), &SecretValue::new("hunter2-canary"))
                .unwrap()
        );
        assert_eq!(store.get(&name("token")).unwrap().expose(), "hunter2-canary");
        let row = db.sealed_secret("token").unwrap().unwrap();
        assert!(!row.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(row.key_id, store.key_id());
        // Replacing keeps the first creation time and reports the replacement.
        assert!(store.set(&name("token"), &SecretValue::new("second")).unwrap());
        assert_eq!(store.get(&name("token")).unwrap().expose(), "second");
        assert_eq!(
            db.sealed_secret("token").unwrap().unwrap().created_at,
            row.created_at
        );
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let db = Arc::new(SqliteDb::in_memory().unwrap());
        let store = store_in(&db, key());
        store.set(&name("a"), &SecretValue::new("same")).unwrap();
        store.set(&name("b"), &SecretValue::new("same")).unwrap();
        let (a, b) = (
            db.sealed_secret("a").unwrap().unwrap(),
            db.sealed_secret("b").unwrap().unwrap(),
        );
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn another_key_is_named_as_the_wrong_key() {
        let db = Arc::new(SqliteDb::in_memory().unwrap());
        store_in(&db, key())
            .set(&name("token"), &SecretValue::new("v"))
            .unwrap();
        let error = store_in(&db, key()).get(&name("token")).unwrap_err();
        assert!(matches!(error, StoreError::WrongKey { .. }), "{error}");
        assert!(error.to_string().contains("sealed with master key"), "{error}");
    }

    #[test]
    fn altered_or_moved_rows_do_not_open() {
        let db = Arc::new(SqliteDb::in_memory().unwrap());
        let store = store_in(&db, key());
        store.set(&name("github"), &SecretValue::new("gh-token")).unwrap();
        store.set(&name("stripe"), &SecretValue::new("sk-live")).unwrap();

        // A flipped bit in the ciphertext.
        let mut row = db.sealed_secret("github").unwrap().unwrap();
        row.ciphertext[0] ^= 1;
        db.put_secret(&row).unwrap();
        assert!(matches!(store.get(&name("github")), Err(StoreError::Tampered(_))));

        // stripe's row copied under github's name: the name is bound into the seal.
        let mut moved = db.sealed_secret("stripe").unwrap().unwrap();
        moved.name = "github".into();
        db.put_secret(&moved).unwrap();
        assert!(matches!(store.get(&name("github")), Err(StoreError::Tampered(_))));
        assert_eq!(store.get(&name("stripe")).unwrap().expose(), "sk-live");
    }

    #[test]
    fn list_and_remove_show_names_never_values() {
        let db = Arc::new(SqliteDb::in_memory().unwrap());
        let store = store_in(&db, key());
        store.set(&name("b"), &SecretValue::new("value-b")).unwrap();
        store.set(&name("a"), &SecretValue::new("value-a")).unwrap();
        let listed = store.list().unwrap();
        assert_eq!(
            listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(!format!("{listed:?}").contains("value-"));
        assert!(store.remove(&name("a")).unwrap());
        assert!(!store.remove(&name("a")).unwrap());
        assert!(matches!(store.get(&name("a")), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn oversize_values_are_refused() {
        let db = Arc::new(SqliteDb::in_memory().unwrap());
        let error = store_in(&db, key())
            .set(&name("big"), &SecretValue::new("x".repeat(MAX_SECRET_BYTES + 1)))
            .unwrap_err();
        assert!(matches!(error, StoreError::TooLarge { .. }));
        assert!(db.list_secrets().unwrap().is_empty());
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        let cases = [("not base64!", "not base64"), ("c2hvcnQ=", "decodes to 5 bytes")];
        for (text, expected) in cases {
            let error = MasterKey::from_base64(text, "CORDON_MASTER_KEY")
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(error.contains("CORDON_MASTER_KEY"), "{error}");
        }
        let key = MasterKey::generate();
        assert_eq!(
            MasterKey::from_base64(&key, "a").unwrap().id(),
            MasterKey::from_base64(&format!("{}\n", *key), "b").unwrap().id(),
            "a trailing newline (as in a key file) is the same key"
        );
        assert!(!format!("{:?}", MasterKey::from_base64(&key, "a").unwrap()).contains(key.as_str()));
    }
}
