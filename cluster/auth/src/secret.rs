//! The cluster secret: at least 128 random bits every node of a cluster shares. Nodes
//! never use it directly; each use gets a key of its own derived from it (HMAC with a
//! label), so a proof made for gossip can never pass as one for raft.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::random_bytes;

/// The fewest random bytes a secret may have: 128 bits.
pub const MIN_SECRET_BYTES: usize = 16;

/// Where the secret may come from, in the order a node looks.
pub const SECRET_ENV: &str = "INKLING_CLUSTER_SECRET";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SecretError {
    #[error(
        "the cluster secret must be hex (like the output of `inkling cluster secret`); it has a character outside 0-9a-f or an odd length"
    )]
    NotHex,
    #[error(
        "the cluster secret has {bits} bits; at least {} are required (generate one with `inkling cluster secret`)",
        MIN_SECRET_BYTES * 8
    )]
    TooShort { bits: usize },
    #[error(
        "the cluster secret file {path} can be read by other users (mode {mode:o}); make it private with `chmod 600 {path}`"
    )]
    FileNotPrivate { path: String, mode: u32 },
    #[error("cannot read the cluster secret file {path}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// A shared secret whose `Debug` never shows it; during a rotation, also a second secret
/// whose proofs are accepted but never made.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret {
    bytes: Vec<u8>,
    accepted: Option<Vec<u8>>,
}

/// Where a node mid-rotation finds the second secret it accepts.
pub const ACCEPTED_SECRET_ENV: &str = "INKLING_ACCEPTED_CLUSTER_SECRET";

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("ClusterSecret(<redacted>)")
    }
}

impl ClusterSecret {
    /// A fresh secret of 256 random bits.
    pub fn generate() -> Self {
        Self {
            bytes: random_bytes(32),
            accepted: None,
        }
    }

    /// This secret, also accepting proofs made with `other`: how a cluster rotates its
    /// secret without refusing itself while some nodes sign with the old one and some with
    /// the new (docs/security.md).
    pub fn also_accepting(self, other: ClusterSecret) -> Self {
        Self {
            accepted: Some(other.bytes),
            ..self
        }
    }

    /// Parses hex text (surrounding whitespace ignored), refusing fewer than 128 bits.
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SecretError::NotHex)?;
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort {
                bits: bytes.len() * 8,
            });
        }
        Ok(Self {
            bytes,
            accepted: None,
        })
    }

    /// Reads the secret from a file only its owner can read.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let shown = path.display().to_string();
        let unreadable = |error: std::io::Error| SecretError::Unreadable {
            path: shown.clone(),
            reason: error.to_string(),
        };
        check_private(path).map_err(|error| match error {
            PrivacyError::Io(error) => unreadable(error),
            PrivacyError::Open(mode) => SecretError::FileNotPrivate {
                path: shown.clone(),
                mode,
            },
        })?;
        Self::from_hex(&std::fs::read_to_string(path).map_err(unreadable)?)
    }

    /// The secret as hex, to hand to a node started by this process.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    /// A key for one use of the secret, named by `label` (and its twin from the accepted
    /// secret, during a rotation).
    pub fn derive(&self, label: &str) -> DerivedKey {
        let derive = |secret: &[u8]| DerivedKey::mac_of(secret, &[label.as_bytes()]).to_vec();
        DerivedKey {
            bytes: derive(&self.bytes),
            accepted: self.accepted.as_deref().map(derive),
        }
    }
}

enum PrivacyError {
    Io(std::io::Error),
    Open(u32),
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), PrivacyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(PrivacyError::Io)?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(PrivacyError::Open(mode & 0o777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), PrivacyError> {
    Ok(())
}

/// A key derived from the cluster secret for one purpose: it signs and verifies
/// HMAC-SHA256 tags over a list of byte strings. It signs with the secret's key and accepts
/// tags made with it or with the accepted secret's.
#[derive(Clone)]
pub struct DerivedKey {
    bytes: Vec<u8>,
    accepted: Option<Vec<u8>>,
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("DerivedKey(<redacted>)")
    }
}

/// How long a tag is: HMAC-SHA256's whole output.
pub const TAG_BYTES: usize = 32;

impl DerivedKey {
    fn mac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        for part in parts {
            // Each part's length first, so ("ab", "c") and ("a", "bc") sign differently.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    fn mac_of(key: &[u8], parts: &[&[u8]]) -> [u8; TAG_BYTES] {
        Self::mac(key, parts).finalize().into_bytes().into()
    }

    pub fn sign(&self, parts: &[&[u8]]) -> [u8; TAG_BYTES] {
        Self::mac_of(&self.bytes, parts)
    }

    /// Whether `tag` is this key's tag over `parts` (or the accepted secret's), compared in
    /// constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let verifies = |key: &[u8]| Self::mac(key, parts).verify_slice(tag).is_ok();
        verifies(&self.bytes) || self.accepted.as_deref().is_some_and(verifies)
    }

    /// The signing key as hex, for a library that compares one shared secret as it is (the
    /// actor mesh's cookie): it cannot accept two, so it changes when the signing secret
    /// does.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_parsed_or_refused_with_a_reason() {
        let cases: &[(&str, Result<usize, SecretError>)] = &[
            ("00112233445566778899aabbccddeeff", Ok(16)),
            ("  00112233445566778899AABBCCDDEEFF\n", Ok(16)),
            (
                "00112233445566778899aabbccddee",
                Err(SecretError::TooShort { bits: 120 }),
            ),
            ("chaos-cookie", Err(SecretError::NotHex)),
            ("abc", Err(SecretError::NotHex)),
            ("", Err(SecretError::TooShort { bits: 0 })),
        ];
        for (text, expected) in cases {
            let parsed = ClusterSecret::from_hex(text).map(|secret| secret.bytes.len());
            assert_eq!(&parsed, expected, "{text:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = ClusterSecret::generate();
        let shown = format!("{secret:?} {:?}", secret.derive("gossip"));
        assert!(!shown.contains(&secret.to_hex()[..8]), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn derived_keys_differ_by_label_and_verify_their_own_tags() {
        let secret = ClusterSecret::generate();
        let gossip = secret.derive("gossip");
        let raft = secret.derive("peer-http");
        let tag = gossip.sign(&[b"hello"]);
        assert!(gossip.verify(&[b"hello"], &tag));
        assert!(!raft.verify(&[b"hello"], &tag));
        assert!(!gossip.verify(&[b"hell", b"o"], &tag));
        let other = ClusterSecret::generate().derive("gossip");
        assert!(!other.verify(&[b"hello"], &tag));
    }

    #[test]
    fn a_rotation_never_has_two_nodes_refuse_each_other() {
        let old = ClusterSecret::generate();
        let new = ClusterSecret::generate();
        // The configurations a rotation passes through, in order; during each rolling
        // restart, nodes of the step before and of the step after run side by side.
        let steps = [
            old.clone(),
            old.clone().also_accepting(new.clone()),
            new.clone().also_accepting(old.clone()),
            new.clone(),
        ];
        let label = "gossip";
        for pair in steps.windows(2) {
            for (signer, checker) in [(&pair[0], &pair[1]), (&pair[1], &pair[0])] {
                let tag = signer.derive(label).sign(&[b"m"]);
                assert!(
                    checker.derive(label).verify(&[b"m"], &tag),
                    "a step refused its neighbour"
                );
            }
        }
        let stranger = ClusterSecret::generate().derive(label).sign(&[b"m"]);
        assert!(!steps[1].derive(label).verify(&[b"m"], &stranger));
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("secret");
        std::fs::write(&path, ClusterSecret::generate().to_hex()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = ClusterSecret::from_file(&path).unwrap_err();
        assert!(
            matches!(refused, SecretError::FileNotPrivate { mode: 0o644, .. }),
            "{refused}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(ClusterSecret::from_file(&path).is_ok());
    }
}
