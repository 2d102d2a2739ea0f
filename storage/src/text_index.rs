//! One shard of the product text index, on tantivy.
//!
//! The index is derived data: products go in through [`TextIndex::upsert`] and come back
//! whole from stored fields, so a shard can answer without a catalog lookup.

use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser, RangeQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, TextAnalyzer};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term,
};

use serde::{Deserialize, Serialize};

use crate::types::{Filters, Product, Taxonomy};
use crate::{Result, StorageError};

/// Tokenizer for exact, case-insensitive keys such as category and brand filters.
const KEY_TOKENIZER: &str = "key";
/// tantivy's built-in English analyzer: lowercase and Porter stemming.
const TEXT_TOKENIZER: &str = "en_stem";
const WRITER_MEMORY_BYTES: usize = 32 * 1024 * 1024;

/// How a shard finds candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Retrieval {
    /// BM25 over title, brand, category (with taxonomy aliases) and attribute values.
    Text(String),
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
    pub product: Product,
    /// Higher is better; only comparable within one shard's answer to one query.
    pub score: f32,
}

struct Fields {
    id: Field,
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
}

pub struct TextIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    taxonomy: Taxonomy,
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
    };
    (builder.build(), fields)
}

impl TextIndex {
    /// Opens the shard's index in `dir`, creating it on first use.
    pub fn open(dir: &Path, taxonomy: Taxonomy) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|error| StorageError::Other(format!("create {}: {error}", dir.display())))?;
        let (schema, fields) = build_schema();
        let directory = MmapDirectory::open(dir).map_err(tantivy::TantivyError::from)?;
        let index = Index::open_or_create(directory, schema)?;
        index.tokenizers().register(
            KEY_TOKENIZER,
            TextAnalyzer::builder(RawTokenizer::default())
                .filter(LowerCaser)
                .build(),
        );
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        // Visibility is driven by explicit reloads after each commit, not by a file watcher.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            taxonomy,
        })
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Adds or replaces products and makes them searchable before returning.
    pub fn upsert(&self, products: &[Product]) -> Result<()> {
        let mut writer = self.writer.lock().expect("index writer lock");
        for product in products {
            writer.delete_term(Term::from_field_text(self.fields.id, &product.id));
            writer.add_document(self.document(product))?;
        }
        self.commit(&mut writer)
    }

    /// Removes products by id and makes the removal visible before returning.
    pub fn delete(&self, ids: &[String]) -> Result<()> {
        let mut writer = self.writer.lock().expect("index writer lock");
        for id in ids {
            writer.delete_term(Term::from_field_text(self.fields.id, id));
        }
        self.commit(&mut writer)
    }

    fn commit(&self, writer: &mut IndexWriter) -> Result<()> {
        writer.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    fn document(&self, product: &Product) -> TantivyDocument {
        let fields = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(fields.id, &product.id);
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
        doc
    }

    pub fn search(&self, query: &IndexQuery) -> Result<Vec<IndexHit>> {
        let searcher = self.reader.searcher();
        let limit = query.limit.max(1);
        let retrieval = self.retrieval_query(&query.retrieval);
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
        scored
            .into_iter()
            .map(|(score, address)| {
                let doc: TantivyDocument = searcher.doc(address)?;
                Ok(IndexHit {
                    product: self.stored_product(&doc)?,
                    score,
                })
            })
            .collect()
    }

    fn stored_product(&self, doc: &TantivyDocument) -> Result<Product> {
        let json = doc
            .get_first(self.fields.stored)
            .and_then(|value| value.as_str())
            .ok_or_else(|| StorageError::Other("indexed product lacks its stored copy".into()))?;
        serde_json::from_str(json)
            .map_err(|error| StorageError::Other(format!("stored product is corrupt: {error}")))
    }

    fn retrieval_query(&self, retrieval: &Retrieval) -> Box<dyn Query> {
        match retrieval {
            Retrieval::Text(text) => {
                let fields = &self.fields;
                let mut parser = QueryParser::for_index(
                    &self.index,
                    vec![
                        fields.title,
                        fields.brand,
                        fields.category,
                        fields.attributes,
                    ],
                );
                parser.set_field_boost(fields.title, 2.0);
                parser.set_field_boost(fields.brand, 1.5);
                parser.set_field_boost(fields.category, 1.5);
                parser.set_field_boost(fields.attributes, 0.5);
                // Shoppers type free text, not query syntax: never fail on stray operators.
                let (query, _ignored_errors) = parser.parse_query_lenient(text);
                query
            }
            Retrieval::Affinity { categories, brands } => {
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
                for (category, weight) in categories {
                    clauses.push((
                        Occur::Should,
                        self.key_query(self.fields.category_key, category, *weight),
                    ));
                }
                for (brand, weight) in brands {
                    clauses.push((
                        Occur::Should,
                        self.key_query(self.fields.brand_key, brand, *weight),
                    ));
                }
                Box::new(BooleanQuery::new(clauses))
            }
            Retrieval::TopRated => Box::new(AllQuery),
        }
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

    fn demo_index(dir: &Path) -> TextIndex {
        let taxonomy = Taxonomy {
            aliases: [("手机".to_string(), vec!["mobile phones".to_string()])].into(),
        };
        let index = TextIndex::open(dir, taxonomy).unwrap();
        index
            .upsert(&[
                product("iphone14", "iPhone 14", "手机", "Apple", 8000.0),
                product("iphonese", "iPhone SE", "手机", "Apple", 4500.0),
                product("xiaomi12", "Xiaomi 12", "手机", "Xiaomi", 3500.0),
                product("macbook", "Macbook Pro", "电脑", "Apple", 15000.0),
                product("ipadmini", "iPad Mini", "平板", "Apple", 3000.0),
            ])
            .unwrap();
        index
    }

    /// Runs `query` and checks the returned ids, in order when `ordered`.
    fn check(index: &TextIndex, query: IndexQuery, expected: &[&str], ordered: bool) {
        let mut ids: Vec<String> = index
            .search(&query)
            .unwrap()
            .into_iter()
            .map(|hit| hit.product.id)
            .collect();
        let mut expected: Vec<String> = expected.iter().map(|id| id.to_string()).collect();
        if !ordered {
            ids.sort();
            expected.sort();
        }
        assert_eq!(ids, expected, "{query:?}");
    }

    fn text(query: &str, filters: Filters) -> IndexQuery {
        IndexQuery {
            retrieval: Retrieval::Text(query.into()),
            filters,
            limit: 10,
        }
    }

    #[test]
    fn retrieval_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let index = demo_index(dir.path());
        let cases = vec![
            (
                text("phone", Filters::default()),
                vec!["iphone14", "iphonese", "xiaomi12"],
            ),
            (
                text("phones", Filters::default()),
                vec!["iphone14", "iphonese", "xiaomi12"],
            ),
            (text("macbook", Filters::default()), vec!["macbook"]),
            (
                text(
                    "apple",
                    Filters {
                        price_max: Some(5000.0),
                        ..Default::default()
                    },
                ),
                vec!["iphonese", "ipadmini"],
            ),
            (
                text(
                    "phone",
                    Filters {
                        category: Some("手机".into()),
                        price_max: Some(4000.0),
                        ..Default::default()
                    },
                ),
                vec!["xiaomi12"],
            ),
            (
                text(
                    "phone",
                    Filters {
                        brand: Some("APPLE".into()),
                        ..Default::default()
                    },
                ),
                vec!["iphone14", "iphonese"],
            ),
            (text("((unbalanced \"syntax", Filters::default()), vec![]),
        ];
        for (query, expected) in cases {
            check(&index, query, &expected, false);
        }
    }

    #[test]
    fn affinity_and_top_rated_retrieval() {
        let dir = tempfile::tempdir().unwrap();
        let index = demo_index(dir.path());
        let affinity = IndexQuery {
            retrieval: Retrieval::Affinity {
                categories: vec![("电脑".into(), 2.0)],
                brands: vec![("xiaomi".into(), 1.0)],
            },
            filters: Filters::default(),
            limit: 10,
        };
        check(&index, affinity, &["macbook", "xiaomi12"], true);
        let top_rated = IndexQuery {
            retrieval: Retrieval::TopRated,
            filters: Filters {
                category: Some("平板".into()),
                ..Default::default()
            },
            limit: 10,
        };
        check(&index, top_rated, &["ipadmini"], true);
    }

    #[test]
    fn updates_and_deletes_are_visible_at_once_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let index = demo_index(dir.path());
            index.delete(&["macbook".into()]).unwrap();
            index
                .upsert(&[product("xiaomi12", "Xiaomi 12", "手机", "Xiaomi", 2999.0)])
                .unwrap();
            check(&index, text("macbook", Filters::default()), &[], false);
        }
        let reopened = TextIndex::open(dir.path(), Taxonomy::default()).unwrap();
        assert_eq!(reopened.num_docs(), 4);
        let hits = reopened
            .search(&text("xiaomi", Filters::default()))
            .unwrap();
        assert_eq!(hits[0].product.price, 2999.0);
    }
}
