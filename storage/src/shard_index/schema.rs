//! The shard's tantivy schema, its tokenizers, and the layout that decides whether an index
//! on disk can be reused (`inkling-shard.json`).

use std::path::Path;

use inkling_domain::Taxonomy;
use serde::{Deserialize, Serialize};
use tantivy::Index;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, NumericOptions, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, TextAnalyzer};

use crate::analysis::{ChineseSegmentation, han_grams_analyzer};
use crate::{Result, StorageError};

/// Tokenizer for exact, case-insensitive keys such as category and brand filters.
const KEY_TOKENIZER: &str = "key";
/// Bilingual product text: see [`crate::analysis`].
const TEXT_TOKENIZER: &str = "product_text";
/// Han characters and character pairs: see [`crate::analysis::han_grams_analyzer`].
const HAN_GRAMS_TOKENIZER: &str = "han_grams";
/// Written next to the index; an index built with other settings or category aliases is
/// rebuilt from scratch.
const LAYOUT_FILE: &str = "inkling-shard.json";
const LAYOUT_VERSION: u32 = 5;

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

pub(super) struct Fields {
    pub(super) id: Field,
    pub(super) slot: Field,
    pub(super) title: Field,
    pub(super) brand: Field,
    pub(super) category: Field,
    pub(super) attributes: Field,
    /// The Han text of title, brand and category as characters and character pairs.
    pub(super) han_grams: Field,
    pub(super) category_key: Field,
    pub(super) brand_key: Field,
    /// `name␟value` of each attribute, for attribute filters; see [`attribute_key`].
    pub(super) attribute_key: Field,
    pub(super) currency_key: Field,
    pub(super) price: Field,
    pub(super) rating: Field,
    pub(super) in_stock: Field,
    pub(super) stored: Field,
    pub(super) vector: Field,
}

impl Fields {
    /// Searchable text fields with their BM25 weights.
    pub(super) fn weighted_text(&self) -> [(Field, f32); 4] {
        [
            (self.title, 2.0),
            (self.brand, 1.5),
            (self.category, 1.5),
            (self.attributes, 0.5),
        ]
    }
}

pub(super) fn build_schema() -> (Schema, Fields) {
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
        brand_key: builder.add_text_field("brand_key", key.clone()),
        attribute_key: builder.add_text_field("attribute_key", key.clone()),
        currency_key: builder.add_text_field("currency_key", key),
        price: builder.add_f64_field("price", number.clone()),
        rating: builder.add_f64_field("rating", number.clone()),
        in_stock: builder.add_u64_field("in_stock", number),
        stored: builder.add_text_field("product", STORED),
        vector: builder.add_bytes_field("vector", STORED),
    };
    (builder.build(), fields)
}

/// The key an attribute is filtered by: its name and value joined by the unit separator,
/// which neither contains in practice, so `a=b` never matches `a` = `=b`.
pub(super) fn attribute_key(name: &str, value: &str) -> String {
    format!("{name}\u{1f}{value}")
}

/// Registers the tokenizers the schema names, with `analyzer` for the product text.
pub(super) fn register_tokenizers(index: &Index, analyzer: &TextAnalyzer) {
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
}

fn storage_error(what: &str, path: &Path, error: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("{what} {}: {error}", path.display()))
}

/// What an index on disk was built from, as recorded beside it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct BuiltWith {
    #[serde(flatten)]
    layout: ShardLayout,
    /// [`Taxonomy::index_fingerprint`] of the taxonomy whose aliases the documents hold.
    category_aliases: u64,
}

/// Empties `dir` unless it holds an index built with `layout` and the category aliases of
/// `taxonomy`, and records them.
pub(super) fn prepare_folder(dir: &Path, layout: &ShardLayout, taxonomy: &Taxonomy) -> Result<()> {
    let marker = dir.join(LAYOUT_FILE);
    let wanted = BuiltWith {
        layout: layout.clone(),
        category_aliases: taxonomy.index_fingerprint(),
    };
    let existing: Option<BuiltWith> = std::fs::read(&marker)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if existing.as_ref() == Some(&wanted) {
        return Ok(());
    }
    if dir.exists() {
        tracing::info!(dir = %dir.display(), ?existing, ?wanted, "index settings or taxonomy changed: rebuilding the shard");
        std::fs::remove_dir_all(dir).map_err(|e| storage_error("clear", dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| storage_error("create", dir, e))?;
    let json = serde_json::to_vec(&wanted).expect("layouts always serialise");
    std::fs::write(&marker, json).map_err(|e| storage_error("write", &marker, e))
}
