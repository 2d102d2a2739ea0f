//! Profiles persisted in the engine: the profile model itself is `inkling_domain::Profile`.

use std::sync::Arc;

use inkling_domain::Profile;

use crate::engine::{Keyspace, KvEngine};
use crate::{Result, StorageError};

/// Profiles persisted in the engine, one JSON record per user.
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
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StorageError::Corrupt {
                keyspace: Keyspace::Profiles,
                source,
            })
    }

    /// Every stored profile, for offline jobs such as `inkling profile build`.
    pub fn all(&self) -> Result<Vec<Profile>> {
        self.engine
            .scan(Keyspace::Profiles)?
            .into_iter()
            .map(|(_, bytes)| {
                serde_json::from_slice(&bytes).map_err(|source| StorageError::Corrupt {
                    keyspace: Keyspace::Profiles,
                    source,
                })
            })
            .collect()
    }

    /// Erases the user's profile; durable after the next [`crate::GroupCommit`] sync.
    pub fn delete(&self, user_id: &str) -> Result<()> {
        self.engine.delete(Keyspace::Profiles, user_id.as_bytes())
    }

    /// Writes the profile; it is durable after the next [`crate::GroupCommit`] sync.
    pub fn save(&self, profile: &Profile) -> Result<()> {
        let bytes = serde_json::to_vec(profile).expect("profiles always serialise");
        self.engine
            .put(Keyspace::Profiles, profile.user_id.as_bytes(), &bytes)
    }
}
