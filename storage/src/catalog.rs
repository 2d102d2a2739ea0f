//! The product catalog as the source of truth: the text index is derived from it and can be
//! rebuilt from it. Each product's passage vector is kept beside it, so rebuilding the index
//! or sending the catalog to another replica never runs the encoder again.

use std::sync::Arc;

use crate::engine::{Keyspace, KvEngine};
use crate::{Result, StorageError};
use inkling_domain::{PassageVector, Product, ProductWrite};

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

    /// Stores the product and its vector; a product written without one loses the vector
    /// of its previous version, which described other text.
    pub fn put_write(&self, write: &ProductWrite) -> Result<()> {
        self.put(&write.product)?;
        let key = write.product.id.as_bytes();
        match &write.vector {
            Some(vector) => {
                let bytes = serde_json::to_vec(vector).expect("vectors always serialise");
                self.engine.put(Keyspace::PassageVectors, key, &bytes)
            }
            None => self.engine.delete(Keyspace::PassageVectors, key),
        }
    }

    /// The product's stored passage vector, if it has one.
    pub fn vector(&self, id: &str) -> Result<Option<PassageVector>> {
        let Some(bytes) = self.engine.get(Keyspace::PassageVectors, id.as_bytes())? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StorageError::Corrupt {
                keyspace: Keyspace::PassageVectors,
                source,
            })
    }

    /// Removes the product and its vector; returns the product if it existed.
    pub fn delete(&self, id: &str) -> Result<Option<Product>> {
        let existed = self.get(id)?;
        self.engine.delete(Keyspace::Products, id.as_bytes())?;
        self.engine
            .delete(Keyspace::PassageVectors, id.as_bytes())?;
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

    /// Every product with its stored vector, for a replica that starts from a snapshot.
    pub fn all_writes(&self) -> Result<Vec<ProductWrite>> {
        self.all()?
            .into_iter()
            .map(|product| {
                let vector = self.vector(&product.id)?;
                Ok(ProductWrite { product, vector })
            })
            .collect()
    }
}

fn decode(bytes: &[u8]) -> Result<Product> {
    serde_json::from_slice(bytes).map_err(|source| StorageError::Corrupt {
        keyspace: Keyspace::Products,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SledEngine;

    fn lamp() -> Product {
        inkling_domain::testing::product("lamp", "Lighting", 99.0)
    }

    #[test]
    fn a_products_vector_is_stored_replaced_and_deleted_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogStore::new(Arc::new(SledEngine::open(dir.path()).unwrap()));
        let vector = PassageVector {
            encoder: "e@1".into(),
            values: vec![0.5, -0.5],
        };
        // (name, the write, the vector stored after it)
        let cases = [
            ("with a vector", Some(vector.clone()), Some(vector)),
            ("a new version without one drops the old", None, None),
        ];
        for (name, written, expected) in cases {
            let write = ProductWrite {
                product: lamp(),
                vector: written,
            };
            store.put_write(&write).unwrap();
            assert_eq!(store.vector("lamp").unwrap(), expected, "{name}");
            assert_eq!(store.all_writes().unwrap(), [write], "{name}");
        }
        store
            .put_write(&ProductWrite {
                product: lamp(),
                vector: Some(PassageVector {
                    encoder: "e@1".into(),
                    values: vec![1.0],
                }),
            })
            .unwrap();
        assert!(store.delete("lamp").unwrap().is_some());
        assert_eq!(store.vector("lamp").unwrap(), None);
    }
}
