//! Fitted models kept with the data they were fitted on: each is one named JSON record,
//! written by an offline job (`inkling profile build`) and read when a node starts.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{Keyspace, KvEngine};
use crate::{Result, StorageError};

#[derive(Clone)]
pub struct ModelStore {
    engine: Arc<dyn KvEngine>,
}

impl ModelStore {
    pub fn new(engine: Arc<dyn KvEngine>) -> Self {
        Self { engine }
    }

    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let Some(bytes) = self.engine.get(Keyspace::Models, name.as_bytes())? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StorageError::Corrupt {
                keyspace: Keyspace::Models,
                source,
            })
    }

    /// Stores the model and makes it durable before returning.
    pub fn save<T: Serialize>(&self, name: &str, model: &T) -> Result<()> {
        let bytes = serde_json::to_vec(model).map_err(|source| StorageError::Corrupt {
            keyspace: Keyspace::Models,
            source,
        })?;
        self.engine.put(Keyspace::Models, name.as_bytes(), &bytes)?;
        self.engine.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SledEngine;

    #[test]
    fn models_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = ModelStore::new(Arc::new(SledEngine::open(dir.path()).unwrap()));
            assert_eq!(store.load::<Vec<u32>>("segments").unwrap(), None);
            store.save("segments", &vec![1u32, 2, 3]).unwrap();
        }
        let store = ModelStore::new(Arc::new(SledEngine::open(dir.path()).unwrap()));
        assert_eq!(
            store.load::<Vec<u32>>("segments").unwrap(),
            Some(vec![1, 2, 3])
        );
        assert!(store.load::<String>("segments").is_err());
    }
}
