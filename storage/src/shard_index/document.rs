//! A product as a tantivy document and back: the analysed text and fast fields it is found
//! by, the product's JSON and its embedding it is restored from.

use std::sync::Arc;

use tantivy::TantivyDocument;
use tantivy::schema::Value;

use super::ShardIndex;
use super::schema::attribute_key;
use crate::{Result, StorageError};
use inkling_domain::Product;

/// A product read back from its document.
pub(super) struct StoredDocument {
    pub(super) slot: usize,
    pub(super) product: Product,
    pub(super) vector: Option<Arc<[f32]>>,
}

impl ShardIndex {
    /// The document of `product`, whose serialised form is `json`.
    pub(super) fn document(
        &self,
        product: &Product,
        slot: usize,
        vector: Option<&[f32]>,
        json: &str,
    ) -> TantivyDocument {
        let fields = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(fields.id, &product.id);
        doc.add_u64(fields.slot, slot as u64);
        doc.add_text(fields.title, &product.title);
        doc.add_text(fields.han_grams, &product.title);
        if let Some(brand) = &product.brand {
            doc.add_text(fields.brand, brand);
            doc.add_text(fields.brand_key, brand);
            doc.add_text(fields.han_grams, brand);
        }
        for level in &product.category_path {
            doc.add_text(fields.category, level);
            doc.add_text(fields.han_grams, level);
            doc.add_text(fields.category_key, level);
            for alias in self.taxonomy.aliases_of(level) {
                doc.add_text(fields.category, alias);
            }
        }
        for (name, value) in &product.attributes {
            doc.add_text(fields.attributes, value);
            doc.add_text(fields.attribute_key, attribute_key(name, value));
        }
        doc.add_text(fields.currency_key, &product.currency);
        doc.add_f64(fields.price, product.price);
        doc.add_f64(fields.rating, f64::from(product.rating.unwrap_or(0.0)));
        doc.add_u64(fields.in_stock, u64::from(product.in_stock));
        doc.add_text(fields.stored, json);
        if let Some(vector) = vector {
            doc.add_bytes(fields.vector, &vector_to_bytes(vector));
        }
        doc
    }

    pub(super) fn stored_document(&self, doc: &TantivyDocument) -> Result<StoredDocument> {
        let slot = doc
            .get_first(self.fields.slot)
            .and_then(|value| value.as_u64())
            .ok_or_else(|| StorageError::Other("indexed product lacks its slot".into()))?;
        let vector = doc
            .get_first(self.fields.vector)
            .and_then(|value| value.as_bytes())
            .map(vector_from_bytes);
        Ok(StoredDocument {
            slot: slot as usize,
            product: self.stored_product(doc)?,
            vector,
        })
    }

    fn stored_product(&self, doc: &TantivyDocument) -> Result<Product> {
        let json = doc
            .get_first(self.fields.stored)
            .and_then(|value| value.as_str())
            .ok_or_else(|| StorageError::Other("indexed product lacks its stored copy".into()))?;
        serde_json::from_str(json)
            .map_err(|error| StorageError::Other(format!("stored product is corrupt: {error}")))
    }
}

fn vector_to_bytes(vector: &[f32]) -> Vec<u8> {
    vector
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

fn vector_from_bytes(bytes: &[u8]) -> Arc<[f32]> {
    bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect()
}
