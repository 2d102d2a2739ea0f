//! Profiles persisted in the engine: the profile model itself is `inkling_domain::Profile`.
//!
//! Each profile is sealed under its user's oldest live key ([`crate::user_keys`]), so once
//! the user is erased, what sled's files may still hold of it cannot be read. Profiles
//! written as plain JSON before sealing existed are still read.

use std::sync::Arc;

use inkling_domain::Profile;

use crate::engine::{Keyspace, KvEngine};
use crate::{Result, StorageError};

/// Profiles persisted in the engine, one sealed JSON record per user.
#[derive(Clone)]
pub struct ProfileStore {
    engine: Arc<dyn KvEngine>,
}

impl ProfileStore {
    pub fn new(engine: Arc<dyn KvEngine>) -> Self {
        Self { engine }
    }

    pub fn load(&self, user_id: &str) -> Result<Option<Profile>> {
        let Some(bytes) = self.engine.get(Keyspace::Profiles, user_id.as_bytes())? else {
            return Ok(None);
        };
        self.decode(user_id, &bytes)
    }

    /// Every stored profile, for offline jobs such as `inkling profile build`.
    pub fn all(&self) -> Result<Vec<Profile>> {
        self.all_of(|_| true)
    }

    /// The stored profiles of the users `wanted` picks by id; only those are unsealed and
    /// parsed.
    pub fn all_of(&self, wanted: impl Fn(&str) -> bool) -> Result<Vec<Profile>> {
        let mut profiles = Vec::new();
        for (key, bytes) in self.engine.scan(Keyspace::Profiles)? {
            let user_id = String::from_utf8_lossy(&key);
            if wanted(&user_id) {
                profiles.extend(self.decode(&user_id, &bytes)?);
            }
        }
        Ok(profiles)
    }

    /// Erases the user's profile; durable after the next [`crate::GroupCommit`] sync. What
    /// sled's files keep of it stays readable until the user's keys are destroyed
    /// ([`crate::UserKeys::forget`]).
    pub fn delete(&self, user_id: &str) -> Result<()> {
        self.engine.delete(Keyspace::Profiles, user_id.as_bytes())
    }

    /// Writes the profile; it is durable after the next [`crate::GroupCommit`] sync.
    pub fn save(&self, profile: &Profile) -> Result<()> {
        let json = serde_json::to_vec(profile).expect("profiles always serialise");
        let sealed = self
            .engine
            .user_keys()
            .seal_state(&profile.user_id, &json)?;
        self.engine
            .put(Keyspace::Profiles, profile.user_id.as_bytes(), &sealed)
    }

    /// A stored record as a profile; `None` when its user's keys were destroyed.
    fn decode(&self, user_id: &str, bytes: &[u8]) -> Result<Option<Profile>> {
        let json = if bytes.first() == Some(&b'{') {
            bytes.to_vec()
        } else {
            match self.engine.user_keys().unseal_for(user_id, bytes)? {
                Some(json) => json,
                None => return Ok(None),
            }
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|source| StorageError::Corrupt {
                keyspace: Keyspace::Profiles,
                source,
            })
    }
}
