//! Turning what tantivy and the vector index found into [`IndexHit`]s: products from the
//! shard's table, never parsed from stored JSON.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tantivy::columnar::Column;
use tantivy::schema::Value;
use tantivy::{DocAddress, Searcher, TantivyDocument};

use super::ShardIndex;
use super::query::IndexQuery;
use super::table::ProductTable;
use crate::Result;
use inkling_domain::{Filters, Product};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexHit {
    /// Shared with the shard's product table: hits are read-only views, not copies.
    pub product: Arc<Product>,
    /// Higher is better: BM25 for text, cosine similarity for vectors, the rating for
    /// top-rated, the affinity weight for affinity retrieval.
    pub score: f32,
}

impl ShardIndex {
    /// Turns document hits into products through the slot column and the product table.
    pub(super) fn hits(
        &self,
        searcher: &Searcher,
        scored: Vec<(f32, DocAddress)>,
    ) -> Result<Vec<IndexHit>> {
        let mut columns: HashMap<u32, Column<u64>> = HashMap::new();
        let table = self.table.read();
        let mut hits = Vec::with_capacity(scored.len());
        for (score, address) in scored {
            let column = match columns.entry(address.segment_ord) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => entry.insert(
                    searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .u64("slot")?,
                ),
            };
            let Some(slot) = column.first(address.doc_id) else {
                continue;
            };
            let product = match table.get(slot as usize) {
                Some(product) => product.clone(),
                // Replaced since this searcher opened (a write committed and retired the
                // slot meanwhile): the current version stands in, so a search racing an
                // update still finds the product. A deleted product has none and is skipped.
                None => match self.current_version(searcher, &table, address) {
                    Some(product) => product,
                    None => continue,
                },
            };
            hits.push(IndexHit { product, score });
        }
        Ok(hits)
    }

    /// The live version of the product whose (retired) document is at `address`.
    fn current_version(
        &self,
        searcher: &Searcher,
        table: &ProductTable,
        address: DocAddress,
    ) -> Option<Arc<Product>> {
        let doc: TantivyDocument = searcher.doc(address).ok()?;
        let id = doc.get_first(self.fields.id)?.as_str()?;
        table.get(*table.by_id.get(id)?).cloned()
    }

    pub(super) fn vector_search(
        &self,
        vector: &[f32],
        query: &IndexQuery,
        limit: usize,
    ) -> Vec<IndexHit> {
        self.vector_hits(vector, &query.filters, limit, false)
    }

    /// The true nearest in-stock products by scanning every vector: slow, exact, and the
    /// yardstick for the HNSW graph's recall in benchmarks.
    pub fn exact_vector_search(&self, vector: &[f32], limit: usize) -> Vec<IndexHit> {
        self.vector_hits(vector, &Filters::default(), limit, true)
    }

    fn vector_hits(
        &self,
        vector: &[f32],
        filters: &Filters,
        limit: usize,
        exact: bool,
    ) -> Vec<IndexHit> {
        let Some(vectors) = self.vectors.get() else {
            return Vec::new();
        };
        let table = self.table.read();
        let accepted = |slot: usize| {
            table
                .get(slot)
                .is_some_and(|product| filters.accepts(product))
        };
        let found = if exact {
            vectors.exact_search(vector, limit, &accepted)
        } else {
            vectors.search(vector, limit, &accepted)
        };
        found
            .into_iter()
            .filter_map(|(slot, score)| {
                Some(IndexHit {
                    product: table.get(slot)?.clone(),
                    score,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use tantivy::collector::TopDocs;

    use super::*;
    use crate::shard_index::testing::{demo_index, indexed};

    #[test]
    fn text_hits_from_a_searcher_older_than_a_write_resolve_to_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let index = demo_index(dir.path());
        // A text search that took its searcher just before two writes landed.
        let searcher = index.reader.searcher();
        let words = index.constrain(index.text_query(&searcher, "phone"), &Filters::default());
        let scored = searcher
            .search(&words, &TopDocs::with_limit(10).order_by_score())
            .unwrap();
        let mut cheaper = (*index.lookup(&["xiaomi12".to_string()])[0]).clone();
        cheaper.price = 1999.0;
        index.upsert(vec![indexed(cheaper)]).unwrap();
        index.delete(&["iphonese".to_string()]).unwrap();
        let mut found: Vec<(String, f64)> = index
            .hits(&searcher, scored)
            .unwrap()
            .into_iter()
            .map(|hit| (hit.product.id.clone(), hit.product.price))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        // The replaced product comes back as its new version, the deleted one not at all.
        let expected = [("iphone14", 8000.0), ("xiaomi12", 1999.0)];
        let expected: Vec<(String, f64)> = expected
            .iter()
            .map(|(id, price)| (id.to_string(), *price))
            .collect();
        assert_eq!(found, expected);
    }
}
