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

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

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

use crate::analysis::{ChineseSegmentation, analyze, product_text_analyzer};
use crate::types::{Filters, Product, Taxonomy};
use crate::vector_index::VectorIndex;
use crate::{Result, StorageError};

/// Tokenizer for exact, case-insensitive keys such as category and brand filters.
const KEY_TOKENIZER: &str = "key";
/// Bilingual product text: see [`crate::analysis`].
const TEXT_TOKENIZER: &str = "product_text";
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
/// Small segments of one size class are merged once this many exist.
const MERGE_AT_SEGMENTS: usize = 3;
const LAYOUT_FILE: &str = "inkling-shard.json";
const LAYOUT_VERSION: u32 = 3;

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

/// The live products, by slot.
#[derive(Default)]
struct ProductTable {
    slots: Vec<Option<Arc<Product>>>,
    by_id: HashMap<String, usize>,
}

impl ProductTable {
    fn get(&self, slot: usize) -> Option<&Arc<Product>> {
        self.slots.get(slot)?.as_ref()
    }

    /// Makes `slot` resolvable; the product's id still names its previous slot, if any.
    fn stage(&mut self, slot: usize, product: Arc<Product>) {
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, None);
        }
        self.slots[slot] = Some(product);
    }

    /// Makes the staged `slot` the product's one version, retiring the previous one.
    fn publish(&mut self, slot: usize, id: &str) {
        if let Some(previous) = self.by_id.insert(id.to_string(), slot)
            && previous != slot
        {
            self.slots[previous] = None;
        }
    }

    fn put(&mut self, slot: usize, product: Arc<Product>) {
        let id = product.id.clone();
        self.stage(slot, product);
        self.publish(slot, &id);
    }

    fn remove(&mut self, id: &str) {
        if let Some(slot) = self.by_id.remove(id) {
            self.slots[slot] = None;
        }
    }
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
    let number = NumericOptions::default().set_indexed().set_fast();
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED),
        slot: builder.add_u64_field("slot", INDEXED | FAST | STORED),
        title: builder.add_text_field("title", text.clone()),
        brand: builder.add_text_field("brand", text.clone()),
        category: builder.add_text_field("category", text.clone()),
        attributes: builder.add_text_field("attributes", text),
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
        };
        shard.load()?;
        Ok(shard)
    }

    /// Fills the product table and the vector index from the committed documents.
    fn load(&self) -> Result<()> {
        let searcher = self.reader.searcher();
        let addresses = searcher.search(&AllQuery, &DocSetCollector)?;
        let mut table = ProductTable::default();
        let mut points = Vec::new();
        for address in addresses {
            let doc: TantivyDocument = searcher.doc(address)?;
            let slot = doc
                .get_first(self.fields.slot)
                .and_then(|value| value.as_u64())
                .ok_or_else(|| StorageError::Other("indexed product lacks its slot".into()))?
                as usize;
            table.put(slot, Arc::new(self.stored_product(&doc)?));
            if let Some(bytes) = doc
                .get_first(self.fields.vector)
                .and_then(|value| value.as_bytes())
            {
                points.push((slot, vector_from_bytes(bytes)));
            }
        }
        if let Some((_, first)) = points.first() {
            let vectors = self.vector_index(first.len(), points.len())?;
            vectors.insert_many(points);
        }
        *self.table.write().expect("product table lock") = table;
        Ok(())
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The ids of every product in the shard.
    pub fn product_ids(&self) -> Vec<String> {
        let table = self.table.read().expect("product table lock");
        table.by_id.keys().cloned().collect()
    }

    /// The live products among `ids`, in the order asked; unknown ids are skipped.
    pub fn lookup(&self, ids: &[String]) -> Vec<Arc<Product>> {
        let table = self.table.read().expect("product table lock");
        ids.iter()
            .filter_map(|id| table.get(*table.by_id.get(id)?).cloned())
            .collect()
    }

    /// The embedding of the product `id`, if the shard holds one.
    pub fn vector_of(&self, id: &str) -> Option<Arc<[f32]>> {
        let slot = *self
            .table
            .read()
            .expect("product table lock")
            .by_id
            .get(id)?;
        self.vectors.get()?.vector(slot)
    }

    fn vector_index(&self, dimension: usize, expected: usize) -> Result<&VectorIndex> {
        let index = self
            .vectors
            .get_or_init(|| VectorIndex::new(dimension, expected));
        if index.dimension() != dimension {
            return Err(StorageError::Other(format!(
                "vector has {dimension} dimensions, the shard's vectors have {}",
                index.dimension()
            )));
        }
        Ok(index)
    }

    /// Adds or replaces products and makes them searchable before returning.
    pub fn upsert(&self, products: Vec<IndexedProduct>) -> Result<()> {
        self.check_dimensions(&products)?;
        let mut writer = self.writer.lock().expect("index writer lock");
        let mut staged = Vec::with_capacity(products.len());
        for (slot, IndexedProduct { product, vector }) in (self.next_slot()..).zip(products) {
            let product = Arc::new(product);
            if let Some(vector) = &vector {
                let vectors = self.vector_index(vector.len(), 1_000)?;
                vectors.insert(slot, vector.as_slice().into());
            }
            writer.delete_term(Term::from_field_text(self.fields.id, &product.id));
            writer.add_document(self.document(&product, slot, vector.as_deref()))?;
            self.table
                .write()
                .expect("product table lock")
                .stage(slot, product.clone());
            staged.push((slot, product));
        }
        self.commit(&mut writer)?;
        // Only now does the old version leave, so a product is never missing in between
        // (for a moment a vector search may see both versions; callers dedupe by id).
        let mut table = self.table.write().expect("product table lock");
        for (slot, product) in staged {
            table.publish(slot, &product.id);
        }
        Ok(())
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

    /// Removes products by id and makes the removal visible before returning.
    pub fn delete(&self, ids: &[String]) -> Result<()> {
        let mut writer = self.writer.lock().expect("index writer lock");
        {
            let mut table = self.table.write().expect("product table lock");
            for id in ids {
                table.remove(id);
            }
        }
        for id in ids {
            writer.delete_term(Term::from_field_text(self.fields.id, id));
        }
        self.commit(&mut writer)
    }

    fn next_slot(&self) -> usize {
        self.table.read().expect("product table lock").slots.len()
    }

    fn commit(&self, writer: &mut IndexWriter) -> Result<()> {
        writer.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    fn document(&self, product: &Product, slot: usize, vector: Option<&[f32]>) -> TantivyDocument {
        let fields = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(fields.id, &product.id);
        doc.add_u64(fields.slot, slot as u64);
        doc.add_text(fields.title, &product.title);
        if let Some(brand) = &product.brand {
            doc.add_text(fields.brand, brand);
            doc.add_text(fields.brand_key, brand);
        }
        for level in &product.category_path {
            doc.add_text(fields.category, level);
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
        doc.add_text(
            fields.stored,
            serde_json::to_string(product).expect("products always serialise"),
        );
        if let Some(vector) = vector {
            doc.add_bytes(fields.vector, &vector_to_bytes(vector));
        }
        doc
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
        let table = self.table.read().expect("product table lock");
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
            // A product replaced or deleted since this searcher opened is skipped.
            if let Some(product) = table.get(slot as usize) {
                hits.push(IndexHit {
                    product: product.clone(),
                    score,
                });
            }
        }
        Ok(hits)
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
        let table = self.table.read().expect("product table lock");
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
    use super::*;

    fn product(id: &str, title: &str, category: &str, brand: &str, price: f64) -> Product {
        Product {
            id: id.into(),
            title: title.into(),
            category_path: vec![category.into()],
            brand: Some(brand.into()),
            price,
            currency: "CNY".into(),
            rating: Some(4.0),
            in_stock: true,
            attributes: Default::default(),
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
}
