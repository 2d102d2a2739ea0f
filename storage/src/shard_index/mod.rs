//! One shard of the product index: BM25 text search on tantivy, vector search on HNSW, and
//! the same filters for both.
//!
//! The tantivy index on disk is the shard's durable copy: each document holds the product as
//! JSON and its embedding as bytes, next to the analysed text and fast fields. In memory the
//! shard keeps a product table (slot → product) and the [`VectorIndex`], both rebuilt from
//! the documents on open. Every version of a product gets a new slot; text hits find their
//! product through a `slot` fast field, so a search never parses stored JSON.
//!
//! Writers hold one lock; searches never take it. A new product version enters the table
//! and the vector index before its document is committed, and an old version leaves the
//! table (becomes dead) before its deletion is committed, so both kinds of search agree as
//! soon as a write returns.
//!
//! Slot numbers only grow, but a dead slot costs nothing: the table and the vector index
//! hold live slots only, and the HNSW graph, which cannot forget a point, is rebuilt in the
//! background once dead points pass a share of it (see [`crate::vector_index`]). Repeated
//! updates of the same products therefore keep memory proportional to the live catalog.
//!
//! The parts: `schema` (fields, tokenizers and the on-disk layout check), `document` (a
//! product as a tantivy document and back), `table` (the slot → product table), `write`
//! (upserts and deletes), `query` (tantivy queries from an [`IndexQuery`]) and `hits`
//! (tantivy and vector hits as [`IndexHit`]s).

mod document;
mod hits;
mod query;
mod schema;
mod table;
#[cfg(test)]
mod testing;
mod write;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::indexer::LogMergePolicy;
use tantivy::query::AllQuery;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy};

use crate::analysis::product_text_analyzer;
use crate::vector_index::{RebuildPolicy, VectorIndex};
use crate::{Result, StorageError};
use document::StoredDocument;
use inkling_domain::{Product, Taxonomy};
use schema::{Fields, build_schema, prepare_folder, register_tokenizers};
use table::ProductTable;

pub use hits::IndexHit;
pub use query::{IndexQuery, Retrieval};
pub use schema::ShardLayout;
pub use table::product_version;
pub use write::IndexedProduct;

const WRITER_MEMORY_BYTES: usize = 48 * 1024 * 1024;
/// Small segments of one size class are merged once this many exist.
const MERGE_AT_SEGMENTS: usize = 3;

/// What one shard holds, in memory and in its graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStats {
    /// Products that searches can return.
    pub live_products: usize,
    /// Entries in the in-memory product table: the live products plus any version staged by
    /// a write in progress. Dead slots have none.
    pub product_slots: usize,
    /// Live products with a vector.
    pub live_vectors: usize,
    /// Points in the current HNSW graph, live or dead.
    pub graph_points: usize,
    /// Graph points of replaced or deleted products, until the next rebuild drops them.
    pub dead_graph_points: usize,
    /// Background (or [`ShardIndex::compact`]) graph rebuilds since the shard opened.
    pub rebuilds_completed: u64,
    pub rebuilding: bool,
    /// One past the highest slot ever handed out. Slots are never reused, so this only
    /// grows, but it costs no memory.
    pub slot_high_water: u64,
}

pub struct ShardIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    taxonomy: Taxonomy,
    analyzer: TextAnalyzer,
    table: RwLock<ProductTable>,
    /// Created with the first vector, which fixes the dimension.
    vectors: OnceLock<VectorIndex>,
    /// Given to the vector index when the first vector creates it.
    rebuild_policy: Mutex<RebuildPolicy>,
}

impl ShardIndex {
    /// Opens the shard's index in `dir`, creating it on first use and rebuilding it empty
    /// when it was built with another `layout` or other category aliases (the catalog is
    /// the source to refill it from).
    pub fn open(dir: &Path, taxonomy: Taxonomy, layout: &ShardLayout) -> Result<Self> {
        prepare_folder(dir, layout, &taxonomy)?;
        let (schema, fields) = build_schema();
        let directory = MmapDirectory::open(dir).map_err(tantivy::TantivyError::from)?;
        let index = Index::open_or_create(directory, schema)?;
        let analyzer = product_text_analyzer(layout.segmentation);
        register_tokenizers(&index, &analyzer);
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        // Every write commits (visibility within a second), so small segments pile up fast;
        // searches pay per segment, so merge them early.
        let mut merges = LogMergePolicy::default();
        merges.set_min_num_segments(MERGE_AT_SEGMENTS);
        writer.set_merge_policy(Box::new(merges));
        // Visibility is driven by explicit reloads after each commit, not by a file watcher.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let shard = Self {
            reader,
            writer: Mutex::new(writer),
            fields,
            taxonomy,
            analyzer,
            table: RwLock::new(ProductTable::default()),
            vectors: OnceLock::new(),
            rebuild_policy: Mutex::new(RebuildPolicy::default()),
        };
        shard.load()?;
        Ok(shard)
    }

    /// Fills the product table and the vector index from the committed documents.
    fn load(&self) -> Result<()> {
        let searcher = self.reader.searcher();
        let addresses = searcher.search(&AllQuery, &DocSetCollector)?;
        let mut documents = Vec::with_capacity(addresses.len());
        for address in addresses {
            documents.push(self.stored_document(&searcher.doc(address)?)?);
        }
        // Oldest first, so that should a product have two documents, the newer one wins and
        // the older one's vector never enters the graph.
        documents.sort_by_key(|document| document.slot);
        let mut table = ProductTable::default();
        let mut points = HashMap::new();
        for StoredDocument {
            slot,
            product,
            vector,
        } in documents
        {
            if let Some(retired) = table.put(slot, Arc::new(product)) {
                points.remove(&retired);
            }
            if let Some(vector) = vector {
                points.insert(slot, vector);
            }
        }
        if let Some(first) = points.values().next() {
            let vectors = self.vector_index(first.len(), points.len())?;
            vectors.insert_many(points.into_iter().collect());
        }
        *self.table.write() = table;
        Ok(())
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// How many live products the shard holds.
    pub fn live_products(&self) -> usize {
        self.table.read().by_id.len()
    }

    /// The ids of every product in the shard.
    pub fn product_ids(&self) -> Vec<String> {
        self.table.read().by_id.keys().cloned().collect()
    }

    /// Every product in the shard with the [`product_version`] of the copy it holds, for
    /// comparing the shard with the catalog id by id.
    pub fn versions(&self) -> HashMap<String, u64> {
        self.table.read().versions()
    }

    /// The live products among `ids`, in the order asked; unknown ids are skipped.
    pub fn lookup(&self, ids: &[String]) -> Vec<Arc<Product>> {
        let table = self.table.read();
        ids.iter()
            .filter_map(|id| table.get(*table.by_id.get(id)?).cloned())
            .collect()
    }

    /// The embedding of the product `id`, if the shard holds one.
    pub fn vector_of(&self, id: &str) -> Option<Arc<[f32]>> {
        let slot = *self.table.read().by_id.get(id)?;
        self.vectors.get()?.vector(slot)
    }

    /// Counts of live and dead entries, for monitoring and benchmarks.
    pub fn stats(&self) -> ShardStats {
        let (live_products, product_slots, slot_high_water) = {
            let table = self.table.read();
            (
                table.by_id.len(),
                table.slot_count(),
                table.next_slot as u64,
            )
        };
        let vectors = self
            .vectors
            .get()
            .map(VectorIndex::stats)
            .unwrap_or_default();
        ShardStats {
            live_products,
            product_slots,
            live_vectors: vectors.live,
            graph_points: vectors.graph_points,
            dead_graph_points: vectors.dead,
            rebuilds_completed: vectors.rebuilds,
            rebuilding: vectors.rebuilding,
            slot_high_water,
        }
    }

    /// Changes when dead graph points trigger a background rebuild (by default, past a
    /// quarter of the graph and at least a thousand points).
    pub fn set_rebuild_policy(&self, policy: RebuildPolicy) {
        *self.rebuild_policy.lock() = policy;
        if let Some(vectors) = self.vectors.get() {
            vectors.set_rebuild_policy(policy);
        }
    }

    /// Blocks until no graph rebuild is running. Writes start any rebuild they make due
    /// before they return, so after this the graph is as compact as the policy asks.
    pub fn wait_for_maintenance(&self) {
        if let Some(vectors) = self.vectors.get() {
            vectors.wait_for_maintenance();
        }
    }

    /// Rebuilds the graph now, on the calling thread, if it holds any dead point; returns
    /// whether it did. Searches and writes go on meanwhile.
    pub fn compact(&self) -> bool {
        self.vectors.get().is_some_and(VectorIndex::compact)
    }

    fn vector_index(&self, dimension: usize, expected: usize) -> Result<&VectorIndex> {
        let index = self.vectors.get_or_init(|| {
            VectorIndex::new(dimension, expected).with_rebuild_policy(*self.rebuild_policy.lock())
        });
        if index.dimension() != dimension {
            return Err(StorageError::Other(format!(
                "vector has {dimension} dimensions, the shard's vectors have {}",
                index.dimension()
            )));
        }
        Ok(index)
    }

    pub fn search(&self, query: &IndexQuery) -> Result<Vec<IndexHit>> {
        let limit = query.limit.max(1);
        let searcher = self.reader.searcher();
        let retrieval = match &query.retrieval {
            Retrieval::Vector(vector) => return Ok(self.vector_search(vector, query, limit)),
            Retrieval::Text(text) => self.text_query(&searcher, text),
            Retrieval::Affinity { categories, brands } => self.affinity_query(categories, brands),
            Retrieval::TopRated => Box::new(AllQuery),
        };
        let constrained = self.constrain(retrieval, &query.filters);
        let scored: Vec<(f32, DocAddress)> = match query.retrieval {
            Retrieval::TopRated => searcher
                .search(
                    &constrained,
                    &TopDocs::with_limit(limit).order_by_fast_field::<f64>("rating", Order::Desc),
                )?
                .into_iter()
                .map(|(rating, address)| (rating.unwrap_or(0.0) as f32, address))
                .collect(),
            _ => searcher.search(&constrained, &TopDocs::with_limit(limit).order_by_score())?,
        };
        self.hits(&searcher, scored)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::testing::{layout, product, query, text};
    use super::*;
    use inkling_domain::Filters;

    /// A deterministic, well-spread unit vector for product `number`.
    fn spread_vector(number: usize) -> Vec<f32> {
        let mut state = number as u64 ^ 0x9E37_79B9_7F4A_7C15;
        let values: Vec<f32> = (0..8)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.iter().map(|v| v / norm).collect()
    }

    /// Product `number` as of update round `round`: only the price changes between rounds,
    /// as with a price feed, so the vector stays the same.
    fn priced(number: usize, round: usize) -> IndexedProduct {
        let title = format!("widget {number}");
        let mut product = product(&format!("p{number}"), &title, "配件", "Acme", 10.0);
        product.price += round as f64;
        IndexedProduct {
            product,
            vector: Some(spread_vector(number)),
        }
    }

    /// An empty shard whose vector searches always walk the graph (no exact scan for small
    /// candidate sets), so the tests exercise the graph rather than the scan.
    fn graph_shard(dir: &Path, policy: RebuildPolicy) -> ShardIndex {
        let index = ShardIndex::open(dir, Taxonomy::default(), &layout()).unwrap();
        let vectors = VectorIndex::new(8, 1_000)
            .with_exact_scan_limit(0)
            .with_rebuild_policy(policy);
        assert!(index.vectors.set(vectors).is_ok(), "the shard starts empty");
        index
    }

    /// Updates every one of `count` products to `round`, `batch` per write.
    fn update_all(index: &ShardIndex, count: usize, round: usize, batch: usize) {
        let numbers: Vec<usize> = (0..count).collect();
        for chunk in numbers.chunks(batch) {
            let products = chunk.iter().map(|&number| priced(number, round)).collect();
            index.upsert(products).unwrap();
        }
    }

    fn vector_ids(hits: Vec<IndexHit>) -> Vec<String> {
        hits.into_iter().map(|hit| hit.product.id.clone()).collect()
    }

    #[test]
    fn repeated_updates_keep_memory_bounded_and_recall_high() {
        let policy = RebuildPolicy {
            dead_share: 0.25,
            min_dead: 50,
        };
        // (products, update rounds, products per write)
        let cases = [(200, 8, 50), (120, 5, 120)];
        for (count, rounds, batch) in cases {
            let dir = tempfile::tempdir().unwrap();
            let index = graph_shard(dir.path(), policy);
            for round in 0..=rounds {
                update_all(&index, count, round, batch);
                index.wait_for_maintenance();
                let stats = index.stats();
                let case = format!("{count} products, round {round}: {stats:?}");
                assert_eq!(stats.live_products, count, "{case}");
                assert_eq!(stats.product_slots, count, "{case}");
                assert_eq!(stats.live_vectors, count, "{case}");
                assert_eq!(
                    stats.slot_high_water,
                    (count * (round + 1)) as u64,
                    "{case}"
                );
                assert_eq!(
                    stats.graph_points,
                    count + stats.dead_graph_points,
                    "{case}"
                );
                // No due rebuild is left pending: dead points are under the minimum or
                // under a quarter of the graph.
                assert!(
                    stats.dead_graph_points < policy.min_dead
                        || stats.graph_points * 3 <= count * 4,
                    "{case}"
                );
            }
            assert!(index.stats().rebuilds_completed >= 1);
            let lookup = index.lookup(&["p0".to_string()]);
            assert_eq!(lookup[0].price, 10.0 + rounds as f64);
            // The graph still finds what an exact scan finds.
            let (mut found, mut total) = (0, 0);
            for number in (0..count).step_by(count / 20) {
                let vector = spread_vector(number + 7_000);
                let exact = vector_ids(index.exact_vector_search(&vector, 10));
                let query = query(Retrieval::Vector(vector), Filters::default());
                let graph = vector_ids(index.search(&query).unwrap());
                total += exact.len();
                found += exact.iter().filter(|id| graph.contains(id)).count();
            }
            assert!(found * 100 >= total * 95, "recall@10 {found}/{total}");
            index.compact();
            let stats = index.stats();
            assert_eq!((stats.graph_points, stats.dead_graph_points), (count, 0));
        }
    }

    #[test]
    fn searches_keep_answering_while_updates_rebuild_the_graph() {
        let dir = tempfile::tempdir().unwrap();
        let policy = RebuildPolicy {
            dead_share: 0.25,
            min_dead: 30,
        };
        let index = graph_shard(dir.path(), policy);
        let count = 150;
        update_all(&index, count, 0, count);
        let writing = AtomicBool::new(true);
        std::thread::scope(|scope| {
            let searchers: Vec<_> = (0..2)
                .map(|searcher| {
                    let (index, writing) = (&index, &writing);
                    scope.spawn(move || {
                        let mut searches = 0;
                        while writing.load(Ordering::Acquire) {
                            let vector = spread_vector(searches * 2 + searcher);
                            let near = query(Retrieval::Vector(vector), Filters::default());
                            assert_eq!(index.search(&near).unwrap().len(), 10);
                            let words = query(text("widget"), Filters::default());
                            assert!(!index.search(&words).unwrap().is_empty());
                            searches += 1;
                        }
                        searches
                    })
                })
                .collect();
            for round in 1..=6 {
                update_all(&index, count, round, 25);
            }
            writing.store(false, Ordering::Release);
            for searcher in searchers {
                assert!(searcher.join().unwrap() > 0);
            }
        });
        index.wait_for_maintenance();
        let stats = index.stats();
        assert!(stats.rebuilds_completed >= 1, "{stats:?}");
        assert_eq!(stats.live_products, count);
        assert_eq!(stats.graph_points, count + stats.dead_graph_points);
    }
}
