//! API keys: random bearer tokens, each with one scope. A node stores only their SHA-256
//! hashes (a key has 256 random bits, so a fast hash is enough: there is nothing to guess),
//! and a leaked configuration file gives no one a working key.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::random_bytes;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything: catalog writes, erasure, export, operations, and what the others allow.
    Admin,
    /// What a storefront does for its shoppers: search, recommend, events, profile reads.
    Storefront,
    /// Reading `/metrics`, for a Prometheus scraper.
    Metrics,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Admin, Scope::Storefront, Scope::Metrics];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Storefront => "storefront",
            Scope::Metrics => "metrics",
        }
    }

    /// Whether a key of this scope may call a route that needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self == Scope::Admin || self == needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.name() == text)
            .ok_or_else(|| format!("unknown scope {text:?}: expected admin, storefront or metrics"))
    }
}

/// A key as given to a client once; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("ApiKey(<redacted>)")
    }
}

const KEY_PREFIX: &str = "ink_";

impl ApiKey {
    /// A fresh key of 256 random bits.
    pub fn generate() -> Self {
        Self(format!("{KEY_PREFIX}{}", hex::encode(random_bytes(32))))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }
}

/// The SHA-256 of a key: what a node keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short, stable name for the key, for logs and rate-limit buckets: never the key.
    pub fn id(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl FromStr for KeyHash {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim())
            .ok()
            .filter(|bytes| bytes.len() == 32)
            .ok_or_else(|| format!("{text:?} is not a SHA-256 hash (64 hex digits)"))?;
        Ok(Self(bytes.try_into().expect("checked length")))
    }
}

/// Why a request may not call a route.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("this route needs an API key: send `Authorization: Bearer <key>`")]
    NoKey,
    #[error("the API key is not known to this node")]
    UnknownKey,
    #[error("this route needs a key with the {needed} scope; this key has the {has} scope")]
    WrongScope { has: Scope, needed: Scope },
}

impl Refusal {
    /// 401 for a missing or unknown key, 403 for a known key of the wrong scope.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NoKey | Refusal::UnknownKey => 401,
            Refusal::WrongScope { .. } => 403,
        }
    }
}

/// The keys a node accepts. With none configured every request is let through: only a
/// node on loopback may run that way (the node checks this at start).
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: HashMap<KeyHash, Scope>,
}

/// A key a request was let through with.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub key_id: String,
    pub scope: Scope,
}

impl KeyRing {
    pub fn new(entries: impl IntoIterator<Item = (Scope, KeyHash)>) -> Self {
        Self {
            keys: entries
                .into_iter()
                .map(|(scope, hash)| (hash, scope))
                .collect(),
        }
    }

    /// Parses `scope:sha256hex` entries separated by commas or newlines (the form of
    /// `--api-keys` and of a keys file); `#` starts a comment line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let entries = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty() && !entry.starts_with('#'))
            .map(|entry| {
                let (scope, hash) = entry
                    .split_once(':')
                    .ok_or_else(|| format!("{entry:?} is not `scope:sha256-hex`"))?;
                Ok((scope.trim().parse()?, hash.parse()?))
            })
            .collect::<Result<Vec<(Scope, KeyHash)>, String>>()?;
        Ok(Self::new(entries))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Who may call a route needing `needed`, given the `Authorization` header's value.
    /// `Ok(None)` when no keys are configured.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        needed: Scope,
    ) -> Result<Option<Caller>, Refusal> {
        if self.is_empty() {
            return Ok(None);
        }
        let key = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or(Refusal::NoKey)?;
        let hash = KeyHash::of(key);
        let scope = *self.keys.get(&hash).ok_or(Refusal::UnknownKey)?;
        if !scope.allows(needed) {
            return Err(Refusal::WrongScope { has: scope, needed });
        }
        Ok(Some(Caller {
            key_id: hash.id(),
            scope,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_let_through_by_scope() {
        let admin = ApiKey::generate();
        let storefront = ApiKey::generate();
        let ring = KeyRing::parse(&format!(
            "admin:{}, storefront:{}",
            admin.hash().to_hex(),
            storefront.hash().to_hex()
        ))
        .unwrap();
        let bearer = |key: &ApiKey| format!("Bearer {}", key.expose());
        type Case<'a> = (&'a str, Option<String>, Scope, Result<Scope, Refusal>);
        let cases: Vec<Case> = vec![
            (
                "admin writes",
                Some(bearer(&admin)),
                Scope::Admin,
                Ok(Scope::Admin),
            ),
            (
                "admin searches",
                Some(bearer(&admin)),
                Scope::Storefront,
                Ok(Scope::Admin),
            ),
            (
                "storefront searches",
                Some(bearer(&storefront)),
                Scope::Storefront,
                Ok(Scope::Storefront),
            ),
            (
                "storefront writes",
                Some(bearer(&storefront)),
                Scope::Admin,
                Err(Refusal::WrongScope {
                    has: Scope::Storefront,
                    needed: Scope::Admin,
                }),
            ),
            ("no header", None, Scope::Storefront, Err(Refusal::NoKey)),
            (
                "not bearer",
                Some(admin.expose().to_string()),
                Scope::Storefront,
                Err(Refusal::NoKey),
            ),
            (
                "unknown key",
                Some(bearer(&ApiKey::generate())),
                Scope::Storefront,
                Err(Refusal::UnknownKey),
            ),
        ];
        for (name, header, needed, expected) in cases {
            let granted = ring
                .authorize(header.as_deref(), needed)
                .map(|caller| caller.expect("keys are configured").scope);
            assert_eq!(granted, expected, "{name}");
        }
    }

    #[test]
    fn without_keys_everyone_is_let_through() {
        assert_eq!(KeyRing::default().authorize(None, Scope::Admin), Ok(None));
    }

    #[test]
    fn bad_entries_are_named() {
        let cases = [
            ("owner:00", "unknown scope \"owner\""),
            ("admin", "is not `scope:sha256-hex`"),
            ("admin:abcd", "is not a SHA-256 hash"),
        ];
        for (text, expected) in cases {
            let error = KeyRing::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn debug_never_shows_a_key() {
        let key = ApiKey::generate();
        assert!(!format!("{key:?}").contains(&key.expose()[4..12]));
    }
}
