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

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::directory::MmapDirectory;
use tantivy::indexer::LogMergePolicy;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, PhraseQuery, Query,
    RangeQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, NumericOptions, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, TextAnalyzer};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument,
    Term,
};

use crate::analysis::{ChineseSegmentation, analyze, han_grams_analyzer, product_text_analyzer};
use crate::vector_index::{RebuildPolicy, VectorIndex};
use crate::{Result, StorageError};
use inkling_domain::{Filters, Product, Taxonomy};
use xxhash_rust::xxh3::xxh3_64;

/// Tokenizer for exact, case-insensitive keys such as category and brand filters.
const KEY_TOKENIZER: &str = "key";
/// Bilingual product text: see [`crate::analysis`].
const TEXT_TOKENIZER: &str = "product_text";
/// Han characters and character pairs: see [`crate::analysis::han_grams_analyzer`].
const HAN_GRAMS_TOKENIZER: &str = "han_grams";
const WRITER_MEMORY_BYTES: usize = 48 * 1024 * 1024;
/// Written next to the index; an index built with other settings is rebuilt from scratch.
/// Shortest query term worth correcting: short ones have too many neighbours.
const FUZZY_MIN_CHARS: usize = 4;
/// A corrected term scores a constant; this makes it worth about one ordinary title match.
const FUZZY_BOOST: f32 = 8.0;
/// Neighbouring query terms may stand this many positions apart in a title (stop words
/// removed from the query leave gaps).
const PROXIMITY_SLOP: u32 = 1;
const PROXIMITY_BOOST: f32 = 0.5;
/// Weight of the Han character and pair field against the word fields: 2 scored best on
/// both Chinese evaluation sets among 0.5, 1, 2, 4 and 8 (docs/benchmarks.md).
const HAN_GRAMS_BOOST: f32 = 2.0;
/// Small segments of one size class are merged once this many exist.
const MERGE_AT_SEGMENTS: usize = 3;
const LAYOUT_FILE: &str = "inkling-shard.json";
const LAYOUT_VERSION: u32 = 4;

/// How a shard finds candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Retrieval {
    /// BM25 over title, brand, category (with taxonomy aliases) and attribute values.
    Text(String),
    /// Nearest products to a query embedding from the same model as the products'.
    Vector(Vec<f32>),
    /// Products in categories and brands the shopper likes, scored by the given weights.
    Affinity {
        categories: Vec<(String, f32)>,
        brands: Vec<(String, f32)>,
    },
    /// Best-rated products, for shoppers Inkling knows nothing about yet.
    TopRated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexQuery {
    pub retrieval: Retrieval,
    pub filters: Filters,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexHit {
    /// Shared with the shard's product table: hits are read-only views, not copies.
    pub product: Arc<Product>,
    /// Higher is better: BM25 for text, cosine similarity for vectors, the rating for
    /// top-rated, the affinity weight for affinity retrieval.
    pub score: f32,
}

/// A product with its embedding, when the node has an encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedProduct {
    pub product: Product,
    pub vector: Option<Vec<f32>>,
}

/// What an index on disk was built with; any change means rebuilding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardLayout {
    pub version: u32,
    pub segmentation: ChineseSegmentation,
    /// The model whose embeddings the shard holds, if any.
    pub vector_model: Option<String>,
}

impl ShardLayout {
    pub fn new(segmentation: ChineseSegmentation, vector_model: Option<String>) -> Self {
        Self {
            version: LAYOUT_VERSION,
            segmentation,
            vector_model,
        }
    }
}

struct Fields {
    id: Field,
    slot: Field,
    title: Field,
    brand: Field,
    category: Field,
    attributes: Field,
    /// The Han text of title, brand and category as characters and character pairs.
    han_grams: Field,
    category_key: Field,
    brand_key: Field,
    price: Field,
    rating: Field,
    in_stock: Field,
    stored: Field,
    vector: Field,
}

impl Fields {
    /// Searchable text fields with their BM25 weights.
    fn weighted_text(&self) -> [(Field, f32); 4] {
        [
            (self.title, 2.0),
            (self.brand, 1.5),
            (self.category, 1.5),
            (self.attributes, 0.5),
        ]
    }
}

/// A stable fingerprint of a product's content: equal products have equal versions on every
/// node and release (xxh3 of the product's JSON, whose maps are ordered), so the catalog and
/// a shard can be compared id by id without shipping products.
pub fn product_version(product: &Product) -> u64 {
    xxh3_64(&serde_json::to_vec(product).expect("products always serialise"))
}

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

/// One product version in the table.
struct Entry {
    product: Arc<Product>,
    /// [`product_version`] of the product, kept so reconciliation need not serialise it.
    version: u64,
}

/// The live products by slot, plus versions staged by a write in progress. Sparse, so
/// retired slots take no memory however high slot numbers climb.
#[derive(Default)]
struct ProductTable {
    slots: HashMap<usize, Entry>,
    by_id: HashMap<String, usize>,
    /// One past the highest slot handed out.
    next_slot: usize,
}

impl ProductTable {
    fn get(&self, slot: usize) -> Option<&Arc<Product>> {
        Some(&self.slots.get(&slot)?.product)
    }

    /// Makes `slot` resolvable; the product's id still names its previous slot, if any.
    fn stage(&mut self, slot: usize, product: Arc<Product>, version: u64) {
        self.next_slot = self.next_slot.max(slot + 1);
        self.slots.insert(slot, Entry { product, version });
    }

    /// Drops a staged slot whose write failed; it was never published.
    fn unstage(&mut self, slot: usize) {
        self.slots.remove(&slot);
    }

    /// Makes the staged `slot` the product's one version and returns the slot it retires.
    fn publish(&mut self, slot: usize, id: &str) -> Option<usize> {
        let previous = self.by_id.insert(id.to_string(), slot)?;
        if previous == slot {
            return None;
        }
        self.slots.remove(&previous);
        Some(previous)
    }

    /// Stages and publishes at once; returns the retired slot.
    fn put(&mut self, slot: usize, product: Arc<Product>) -> Option<usize> {
        let id = product.id.clone();
        let version = product_version(&product);
        self.stage(slot, product, version);
        self.publish(slot, &id)
    }

    /// Retires the product's slot, if it has one, and returns it.
    fn remove(&mut self, id: &str) -> Option<usize> {
        let slot = self.by_id.remove(id)?;
        self.slots.remove(&slot);
        Some(slot)
    }

    fn versions(&self) -> HashMap<String, u64> {
        self.by_id
            .iter()
            .filter_map(|(id, slot)| Some((id.clone(), self.slots.get(slot)?.version)))
            .collect()
    }
}

/// A product read back from its document.
struct StoredDocument {
    slot: usize,
    product: Product,
    vector: Option<Arc<[f32]>>,
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

fn build_schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TEXT_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let key = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(KEY_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic),
    );
    let han_grams = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(HAN_GRAMS_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let number = NumericOptions::default().set_indexed().set_fast();
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED),
        slot: builder.add_u64_field("slot", INDEXED | FAST | STORED),
        title: builder.add_text_field("title", text.clone()),
        brand: builder.add_text_field("brand", text.clone()),
        category: builder.add_text_field("category", text.clone()),
        attributes: builder.add_text_field("attributes", text),
        han_grams: builder.add_text_field("han_grams", han_grams),
        category_key: builder.add_text_field("category_key", key.clone()),
        brand_key: builder.add_text_field("brand_key", key),
        price: builder.add_f64_field("price", number.clone()),
        rating: builder.add_f64_field("rating", number.clone()),
        in_stock: builder.add_u64_field("in_stock", number),
        stored: builder.add_text_field("product", STORED),
        vector: builder.add_bytes_field("vector", STORED),
    };
    (builder.build(), fields)
}

fn storage_error(what: &str, path: &Path, error: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("{what} {}: {error}", path.display()))
}

/// Empties `dir` unless it holds an index built with `layout`, and records `layout`.
fn prepare_folder(dir: &Path, layout: &ShardLayout) -> Result<()> {
    let marker = dir.join(LAYOUT_FILE);
    let existing: Option<ShardLayout> = std::fs::read(&marker)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if existing.as_ref() == Some(layout) {
        return Ok(());
    }
    if dir.exists() {
        tracing::info!(dir = %dir.display(), ?existing, ?layout, "index settings changed: rebuilding the shard");
        std::fs::remove_dir_all(dir).map_err(|e| storage_error("clear", dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| storage_error("create", dir, e))?;
    let json = serde_json::to_vec(layout).expect("layouts always serialise");
    std::fs::write(&marker, json).map_err(|e| storage_error("write", &marker, e))
}

impl ShardIndex {
    /// Opens the shard's index in `dir`, creating it on first use and rebuilding it empty
    /// when it was built with another `layout` (the catalog is the source to refill it from).
    pub fn open(dir: &Path, taxonomy: Taxonomy, layout: &ShardLayout) -> Result<Self> {
        prepare_folder(dir, layout)?;
        let (schema, fields) = build_schema();
        let directory = MmapDirectory::open(dir).map_err(tantivy::TantivyError::from)?;
        let index = Index::open_or_create(directory, schema)?;
        let analyzer = product_text_analyzer(layout.segmentation);
        index
            .tokenizers()
            .register(TEXT_TOKENIZER, analyzer.clone());
        index
            .tokenizers()
            .register(HAN_GRAMS_TOKENIZER, han_grams_analyzer());
        index.tokenizers().register(
            KEY_TOKENIZER,
            TextAnalyzer::builder(RawTokenizer::default())
                .filter(LowerCaser)
                .build(),
        );
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
            (table.by_id.len(), table.slots.len(), table.next_slot as u64)
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

    /// Adds or replaces products and makes them searchable before returning. A failed write
    /// leaves neither its documents nor its staged versions behind.
    pub fn upsert(&self, products: Vec<IndexedProduct>) -> Result<()> {
        self.check_dimensions(&products)?;
        let mut writer = self.writer.lock();
        let mut staged = Vec::with_capacity(products.len());
        let written = self
            .stage(&mut writer, products, &mut staged)
            .and_then(|()| self.commit(&mut writer));
        if let Err(error) = written {
            self.abandon(&mut writer, &staged);
            return Err(error);
        }
        // Only now does the old version leave, so a product is never missing in between
        // (for a moment a vector search may see both versions; callers dedupe by id).
        let retired: Vec<usize> = {
            let mut table = self.table.write();
            staged
                .iter()
                .filter_map(|(slot, id)| table.publish(*slot, id))
                .collect()
        };
        self.forget_vectors(&retired);
        Ok(())
    }

    /// Gives each product a new slot, resolvable at once, and queues its document; `staged`
    /// lists the (slot, id) pairs staged so far, even when a later product fails.
    fn stage(
        &self,
        writer: &mut IndexWriter,
        products: Vec<IndexedProduct>,
        staged: &mut Vec<(usize, String)>,
    ) -> Result<()> {
        for (slot, IndexedProduct { product, vector }) in (self.next_slot()..).zip(products) {
            // One serialisation serves the stored copy and the version.
            let json = serde_json::to_string(&product).expect("products always serialise");
            let document = self.document(&product, slot, vector.as_deref(), &json);
            let id = product.id.clone();
            self.table
                .write()
                .stage(slot, Arc::new(product), xxh3_64(json.as_bytes()));
            staged.push((slot, id.clone()));
            if let Some(vector) = &vector {
                let vectors = self.vector_index(vector.len(), 1_000)?;
                vectors.insert(slot, vector.as_slice().into());
            }
            writer.delete_term(Term::from_field_text(self.fields.id, &id));
            writer.add_document(document)?;
        }
        Ok(())
    }

    /// Undoes a failed upsert: the writer drops its uncommitted documents (so a later commit
    /// cannot write them behind the table's back) and the staged slots leave memory.
    fn abandon(&self, writer: &mut IndexWriter, staged: &[(usize, String)]) {
        if let Err(error) = writer.rollback() {
            tracing::warn!(%error, "cannot roll back a failed shard write");
        }
        let slots: Vec<usize> = staged.iter().map(|(slot, _)| *slot).collect();
        {
            let mut table = self.table.write();
            for slot in &slots {
                table.unstage(*slot);
            }
        }
        self.forget_vectors(&slots);
    }

    /// Drops the vectors of retired slots; the vector index rebuilds its graph when enough
    /// of it is dead.
    fn forget_vectors(&self, slots: &[usize]) {
        if slots.is_empty() {
            return;
        }
        if let Some(vectors) = self.vectors.get() {
            vectors.remove(slots);
        }
    }

    /// Refuses a batch whose vectors disagree with each other or with the shard's, before
    /// anything of it is written.
    fn check_dimensions(&self, products: &[IndexedProduct]) -> Result<()> {
        let mut dimensions = products
            .iter()
            .filter_map(|indexed| indexed.vector.as_ref().map(Vec::len));
        let Some(first) = dimensions.next() else {
            return Ok(());
        };
        if let Some(other) = dimensions.find(|dimension| *dimension != first) {
            return Err(StorageError::Other(format!(
                "vectors of {first} and {other} dimensions in one batch"
            )));
        }
        self.vector_index(first, products.len()).map(|_| ())
    }

    /// Removes products by id and makes the removal visible before returning. Returns how
    /// many of `ids` the shard held (each counted once).
    pub fn delete(&self, ids: &[String]) -> Result<usize> {
        let mut writer = self.writer.lock();
        let removed: Vec<usize> = {
            let mut table = self.table.write();
            ids.iter().filter_map(|id| table.remove(id)).collect()
        };
        self.forget_vectors(&removed);
        for id in ids {
            writer.delete_term(Term::from_field_text(self.fields.id, id));
        }
        self.commit(&mut writer)?;
        Ok(removed.len())
    }

    fn next_slot(&self) -> usize {
        self.table.read().next_slot
    }

    fn commit(&self, writer: &mut IndexWriter) -> Result<()> {
        writer.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// The document of `product`, whose serialised form is `json`.
    fn document(
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
        for value in product.attributes.values() {
            doc.add_text(fields.attributes, value);
        }
        doc.add_f64(fields.price, product.price);
        doc.add_f64(fields.rating, f64::from(product.rating.unwrap_or(0.0)));
        doc.add_u64(fields.in_stock, u64::from(product.in_stock));
        doc.add_text(fields.stored, json);
        if let Some(vector) = vector {
            doc.add_bytes(fields.vector, &vector_to_bytes(vector));
        }
        doc
    }

    fn stored_document(&self, doc: &TantivyDocument) -> Result<StoredDocument> {
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

    /// Turns document hits into products through the slot column and the product table.
    fn hits(&self, searcher: &Searcher, scored: Vec<(f32, DocAddress)>) -> Result<Vec<IndexHit>> {
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

    fn vector_search(&self, vector: &[f32], query: &IndexQuery, limit: usize) -> Vec<IndexHit> {
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
                .is_some_and(|product| product.in_stock && filters.accepts(product))
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

    /// Any analysed query term in any text field; BM25 adds up over terms and fields. Built
    /// by hand rather than with tantivy's query parser, which turns a word that analyses
    /// into several tokens ("手机壳", "1-gal.") into a phrase that must match exactly.
    ///
    /// Two additions for what shoppers type: a term no product contains is matched within a
    /// small edit distance in titles ("toliet" finds "toilet"), and neighbouring query terms
    /// that also stand together in a title add a proximity bonus.
    fn text_query(&self, searcher: &Searcher, text: &str) -> Box<dyn Query> {
        let terms = analyze(&mut self.analyzer.clone(), text);
        let mut unique = terms.clone();
        unique.sort();
        unique.dedup();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for term in &unique {
            if let Some(fuzzy) = self.fuzzy_for_unknown(searcher, term) {
                clauses.push((Occur::Should, fuzzy));
                continue;
            }
            for (field, boost) in self.fields.weighted_text() {
                let query = TermQuery::new(
                    Term::from_field_text(field, term),
                    IndexRecordOption::WithFreqs,
                );
                clauses.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(query), boost)),
                ));
            }
        }
        let mut grams = analyze(&mut han_grams_analyzer(), text);
        grams.sort();
        grams.dedup();
        for gram in &grams {
            let query = TermQuery::new(
                Term::from_field_text(self.fields.han_grams, gram),
                IndexRecordOption::WithFreqs,
            );
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(query), HAN_GRAMS_BOOST)),
            ));
        }
        for pair in terms.windows(2).filter(|pair| pair[0] != pair[1]) {
            let phrase = PhraseQuery::new_with_offset_and_slop(
                vec![
                    (0, Term::from_field_text(self.fields.title, &pair[0])),
                    (1, Term::from_field_text(self.fields.title, &pair[1])),
                ],
                PROXIMITY_SLOP,
            );
            let bonus = BoostQuery::new(Box::new(phrase), PROXIMITY_BOOST);
            clauses.push((Occur::Should, Box::new(bonus)));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// A title match within one or two edits, for a term that no text field holds.
    fn fuzzy_for_unknown(&self, searcher: &Searcher, term: &str) -> Option<Box<dyn Query>> {
        let length = term.chars().count();
        if length < FUZZY_MIN_CHARS || term.chars().any(crate::analysis::is_han) {
            return None;
        }
        let known = self.fields.weighted_text().iter().any(|(field, _)| {
            searcher
                .doc_freq(&Term::from_field_text(*field, term))
                .is_ok_and(|count| count > 0)
        });
        if known {
            return None;
        }
        let distance = if length >= 8 { 2 } else { 1 };
        let fuzzy = FuzzyTermQuery::new(
            Term::from_field_text(self.fields.title, term),
            distance,
            true,
        );
        Some(Box::new(BoostQuery::new(Box::new(fuzzy), FUZZY_BOOST)))
    }

    fn affinity_query(
        &self,
        categories: &[(String, f32)],
        brands: &[(String, f32)],
    ) -> Box<dyn Query> {
        let weighted = categories
            .iter()
            .map(|(category, weight)| (self.fields.category_key, category, *weight))
            .chain(
                brands
                    .iter()
                    .map(|(brand, weight)| (self.fields.brand_key, brand, *weight)),
            );
        let clauses = weighted
            .map(|(field, value, weight)| (Occur::Should, self.key_query(field, value, weight)))
            .collect();
        Box::new(BooleanQuery::new(clauses))
    }

    fn key_query(&self, field: Field, value: &str, score: f32) -> Box<dyn Query> {
        let term = Term::from_field_text(field, &value.to_lowercase());
        Box::new(ConstScoreQuery::new(
            Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            score,
        ))
    }

    /// Wraps the retrieval in the hard constraints: filters and availability.
    fn constrain(&self, retrieval: Box<dyn Query>, filters: &Filters) -> BooleanQuery {
        let fields = &self.fields;
        let in_stock = Term::from_field_u64(fields.in_stock, 1);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, retrieval),
            must_without_score(Box::new(TermQuery::new(in_stock, IndexRecordOption::Basic))),
        ];
        if let Some(category) = &filters.category {
            clauses.push(must_without_score(self.key_query(
                fields.category_key,
                category,
                0.0,
            )));
        }
        if let Some(brand) = &filters.brand {
            clauses.push(must_without_score(self.key_query(
                fields.brand_key,
                brand,
                0.0,
            )));
        }
        if filters.price_min.is_some() || filters.price_max.is_some() {
            let bound = |value: Option<f64>| match value {
                Some(value) => Bound::Included(Term::from_field_f64(fields.price, value)),
                None => Bound::Unbounded,
            };
            clauses.push(must_without_score(Box::new(RangeQuery::new(
                bound(filters.price_min),
                bound(filters.price_max),
            ))));
        }
        BooleanQuery::new(clauses)
    }
}

/// A clause that must match but adds nothing to the score, so filters never reorder hits.
fn must_without_score(query: Box<dyn Query>) -> (Occur, Box<dyn Query>) {
    (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn product(id: &str, title: &str, category: &str, brand: &str, price: f64) -> Product {
        Product {
            title: title.into(),
            brand: Some(brand.into()),
            rating: Some(4.0),
            ..inkling_domain::testing::product(id, category, price)
        }
    }

    /// A toy embedding: one axis per category, so vector neighbours share a category.
    fn vector_of(category: &str) -> Vec<f32> {
        let axis = ["手机", "电脑", "平板"]
            .iter()
            .position(|c| *c == category)
            .unwrap_or(3);
        let mut vector = [0.1f32; 4];
        vector[axis] = 1.0;
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        vector.iter().map(|v| v / norm).collect()
    }

    fn indexed(product: Product) -> IndexedProduct {
        let vector = Some(vector_of(&product.category_path[0]));
        IndexedProduct { product, vector }
    }

    fn layout() -> ShardLayout {
        ShardLayout::new(ChineseSegmentation::Jieba, Some("toy".into()))
    }

    fn demo_index(dir: &Path) -> ShardIndex {
        let taxonomy = Taxonomy {
            aliases: [("手机".to_string(), vec!["mobile phones".to_string()])].into(),
            ..Default::default()
        };
        let index = ShardIndex::open(dir, taxonomy, &layout()).unwrap();
        index
            .upsert(
                [
                    product("iphone14", "iPhone 14 智能手机", "手机", "Apple", 8000.0),
                    product("iphonese", "iPhone SE", "手机", "Apple", 4500.0),
                    product("xiaomi12", "Xiaomi 12", "手机", "Xiaomi", 3500.0),
                    product("case", "iPhone 14 手机壳", "配件", "Apple", 99.0),
                    product("macbook", "Macbook Pro", "电脑", "Apple", 15000.0),
                    product("ipadmini", "iPad Mini", "平板", "Apple", 3000.0),
                ]
                .into_iter()
                .map(indexed)
                .collect(),
            )
            .unwrap();
        index
    }

    /// Runs `query` and checks the returned ids, in order when `ordered`.
    fn check(index: &ShardIndex, query: IndexQuery, expected: &[&str], ordered: bool) {
        let mut ids: Vec<String> = index
            .search(&query)
            .unwrap()
            .into_iter()
            .map(|hit| hit.product.id.clone())
            .collect();
        let mut expected: Vec<String> = expected.iter().map(|id| id.to_string()).collect();
        if !ordered {
            ids.sort();
            expected.sort();
        }
        assert_eq!(ids, expected, "{query:?}");
    }

    fn query(retrieval: Retrieval, filters: Filters) -> IndexQuery {
        IndexQuery {
            retrieval,
            filters,
            limit: 10,
        }
    }

    fn text(words: &str) -> Retrieval {
        Retrieval::Text(words.into())
    }

    #[test]
    fn retrieval_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let index = demo_index(dir.path());
        let under_4000 = Filters {
            price_max: Some(4000.0),
            ..Default::default()
        };
        let phones = Filters {
            category: Some("手机".into()),
            ..Default::default()
        };
        let cases = vec![
            (
                query(text("phone"), Filters::default()),
                vec!["iphone14", "iphonese", "xiaomi12"],
            ),
            (
                query(text("phones"), Filters::default()),
                vec!["iphone14", "iphonese", "xiaomi12"],
            ),
            (query(text("macbook"), Filters::default()), vec!["macbook"]),
            // Every phone's category says 手机; the case says 壳 as well and ranks first.
            (
                query(text("手机壳"), Filters::default()),
                vec!["case", "iphone14", "iphonese", "xiaomi12"],
            ),
            (
                query(text("apple"), under_4000.clone()),
                vec!["case", "ipadmini"],
            ),
            (
                query(
                    text("phone"),
                    Filters {
                        category: Some("手机".into()),
                        price_max: Some(4000.0),
                        ..Default::default()
                    },
                ),
                vec!["xiaomi12"],
            ),
            (
                query(
                    text("phone"),
                    Filters {
                        brand: Some("APPLE".into()),
                        ..Default::default()
                    },
                ),
                vec!["iphone14", "iphonese"],
            ),
            (
                query(text("((unbalanced \"syntax"), Filters::default()),
                vec![],
            ),
            (
                query(Retrieval::Vector(vector_of("手机")), phones),
                vec!["iphone14", "iphonese", "xiaomi12"],
            ),
            (
                query(Retrieval::Vector(vector_of("手机")), under_4000),
                vec!["case", "xiaomi12", "ipadmini"],
            ),
            (
                query(Retrieval::Vector(vec![1.0]), Filters::default()),
                vec![],
            ),
        ];
        for (query, expected) in cases {
            check(&index, query, &expected, false);
        }
        let case_first = index
            .search(&query(text("iPhone手机壳"), Filters::default()))
            .unwrap();
        assert_eq!(case_first[0].product.id, "case");
    }

    #[test]
    fn affinity_and_top_rated_retrieval() {
        let dir = tempfile::tempdir().unwrap();
        let index = demo_index(dir.path());
        let affinity = Retrieval::Affinity {
            categories: vec![("电脑".into(), 2.0)],
            brands: vec![("xiaomi".into(), 1.0)],
        };
        check(
            &index,
            query(affinity, Filters::default()),
            &["macbook", "xiaomi12"],
            true,
        );
        let tablets = Filters {
            category: Some("平板".into()),
            ..Default::default()
        };
        check(
            &index,
            query(Retrieval::TopRated, tablets),
            &["ipadmini"],
            true,
        );
    }

    #[test]
    fn updates_and_deletes_are_visible_at_once_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let near_tablets = query(Retrieval::Vector(vector_of("平板")), Filters::default());
        {
            let index = demo_index(dir.path());
            index
                .delete(&["macbook".into(), "ipadmini".into()])
                .unwrap();
            index
                .upsert(vec![indexed(product(
                    "xiaomi12",
                    "Xiaomi 12",
                    "手机",
                    "Xiaomi",
                    2999.0,
                ))])
                .unwrap();
            check(
                &index,
                query(text("macbook"), Filters::default()),
                &[],
                false,
            );
            let near = index.search(&near_tablets).unwrap();
            assert!(near.iter().all(|hit| hit.product.id != "ipadmini"));
        }
        let reopened = ShardIndex::open(dir.path(), Taxonomy::default(), &layout()).unwrap();
        assert_eq!(reopened.num_docs(), 4);
        let hits = reopened
            .search(&query(text("xiaomi"), Filters::default()))
            .unwrap();
        assert_eq!(hits[0].product.price, 2999.0);
        assert_eq!(reopened.search(&near_tablets).unwrap().len(), 4);
        // Other settings mean another index: it starts empty, to be refilled.
        let other = ShardLayout::new(ChineseSegmentation::Bigram, Some("toy".into()));
        drop(reopened);
        let rebuilt = ShardIndex::open(dir.path(), Taxonomy::default(), &other).unwrap();
        assert_eq!(rebuilt.num_docs(), 0);
    }

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

    #[test]
    fn versions_follow_the_stored_product() {
        let dir = tempfile::tempdir().unwrap();
        let index = demo_index(dir.path());
        let versions = index.versions();
        assert_eq!(versions.len(), 6);
        for product in index.lookup(&index.product_ids()) {
            assert_eq!(versions[&product.id], product_version(&product));
        }
        type Change = fn(&mut Product);
        // (why, change to iphone14, whether its version changes)
        let cases: [(&str, Change, bool); 4] = [
            ("the same content again", |_| {}, false),
            ("a new price", |product| product.price = 7999.0, true),
            ("out of stock", |product| product.in_stock = false, true),
            (
                "a new attribute",
                |product| {
                    product.attributes.insert("colour".into(), "red".into());
                },
                true,
            ),
        ];
        let id = "iphone14".to_string();
        for (why, change, changes) in cases {
            let before = index.versions()[&id];
            let mut product = (*index.lookup(std::slice::from_ref(&id))[0]).clone();
            change(&mut product);
            index.upsert(vec![indexed(product.clone())]).unwrap();
            let after = index.versions()[&id];
            assert_eq!(after != before, changes, "{why}");
            assert_eq!(after, product_version(&product), "{why}");
        }
        // Versions and slot numbering survive a reopen; slots are never reused.
        let versions = index.versions();
        let high_water = index.stats().slot_high_water;
        drop(index);
        let reopened = ShardIndex::open(dir.path(), Taxonomy::default(), &layout()).unwrap();
        assert_eq!(reopened.versions(), versions);
        assert_eq!(reopened.stats().slot_high_water, high_water);
        reopened
            .upsert(vec![indexed(product(
                "watch", "Watch", "手表", "Apple", 1.0,
            ))])
            .unwrap();
        assert_eq!(reopened.stats().slot_high_water, high_water + 1);
    }

    #[test]
    fn delete_counts_the_products_the_shard_held() {
        let dir = tempfile::tempdir().unwrap();
        let index = demo_index(dir.path());
        // (ids to delete, how many the shard held), in order on one shard
        let cases: [(&[&str], usize); 4] = [
            (&["macbook", "ipadmini"], 2),
            (&["macbook", "unknown"], 0),
            (&["case", "case"], 1),
            (&[], 0),
        ];
        for (ids, held) in cases {
            let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
            assert_eq!(index.delete(&ids).unwrap(), held, "{ids:?}");
        }
        let stats = index.stats();
        assert_eq!(index.num_docs(), 3);
        assert_eq!(
            (stats.live_products, stats.product_slots, stats.live_vectors),
            (3, 3, 3)
        );
        assert_eq!(stats.dead_graph_points, 3);
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
