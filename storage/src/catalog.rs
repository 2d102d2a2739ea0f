//! The product catalog as the source of truth: the text index is derived from it and can be
//! rebuilt from it.

use std::sync::Arc;

use crate::engine::{Keyspace, KvEngine};
use crate::{Result, StorageError};
use inkling_domain::Product;

#[derive(Clone)]
pub struct CatalogStore {
    engine: Arc<dyn KvEngine>,
}

impl CatalogStore {
    pub fn new(engine: Arc<dyn KvEngine>) -> Self {
        Self { engine }
    }

    pub fn get(&self, id: &str) -> Result<Option<Product>> {
        let Some(bytes) = self.engine.get(Keyspace::Products, id.as_bytes())? else {
            return Ok(None);
        };
        decode(&bytes).map(Some)
    }

    pub fn put(&self, product: &Product) -> Result<()> {
        let bytes = serde_json::to_vec(product).expect("products always serialise");
        self.engine
            .put(Keyspace::Products, product.id.as_bytes(), &bytes)
    }

    /// Removes the product; returns it if it existed.
    pub fn delete(&self, id: &str) -> Result<Option<Product>> {
        let existed = self.get(id)?;
        self.engine.delete(Keyspace::Products, id.as_bytes())?;
        Ok(existed)
    }

    pub fn len(&self) -> Result<usize> {
        self.engine.len(Keyspace::Products)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    pub fn all(&self) -> Result<Vec<Product>> {
        self.engine
            .scan(Keyspace::Products)?
            .into_iter()
            .map(|(_, bytes)| decode(&bytes))
            .collect()
    }
}

fn decode(bytes: &[u8]) -> Result<Product> {
    serde_json::from_slice(bytes).map_err(|source| StorageError::Corrupt {
        keyspace: Keyspace::Products,
        source,
    })
}
