//! What a search asks for ([`IndexQuery`]) and the tantivy queries built from it: BM25 text
//! with typo and proximity help, category and brand affinity, and the filters around both.

use std::ops::Bound;

use serde::{Deserialize, Serialize};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, PhraseQuery, Query,
    RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{Searcher, Term};

use super::ShardIndex;
use super::schema::attribute_key;
use crate::analysis::{analyze, han_grams_analyzer};
use inkling_domain::Filters;

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

impl ShardIndex {
    /// Any analysed query term in any text field; BM25 adds up over terms and fields. Built
    /// by hand rather than with tantivy's query parser, which turns a word that analyses
    /// into several tokens ("手机壳", "1-gal.") into a phrase that must match exactly.
    ///
    /// Two additions for what shoppers type: a term no product contains is matched within a
    /// small edit distance in titles ("toliet" finds "toilet"), and neighbouring query terms
    /// that also stand together in a title add a proximity bonus.
    pub(super) fn text_query(&self, searcher: &Searcher, text: &str) -> Box<dyn Query> {
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

    pub(super) fn affinity_query(
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

    /// Wraps the retrieval in the hard constraints: filters and availability. Values of
    /// one field are alternatives; the fields all hold.
    pub(super) fn constrain(&self, retrieval: Box<dyn Query>, filters: &Filters) -> BooleanQuery {
        let fields = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, retrieval)];
        if !filters.include_out_of_stock {
            let in_stock = Term::from_field_u64(fields.in_stock, 1);
            clauses.push(must_without_score(Box::new(TermQuery::new(
                in_stock,
                IndexRecordOption::Basic,
            ))));
        }
        let keys = [
            (fields.category_key, filters.category.clone()),
            (fields.brand_key, filters.brand.clone()),
        ];
        let attributes = filters.attributes.iter().map(|(name, values)| {
            let keys = values.iter().map(|value| attribute_key(name, value));
            (fields.attribute_key, keys.collect())
        });
        for (field, values) in keys.into_iter().chain(attributes) {
            if !values.is_empty() {
                clauses.push(must_without_score(self.any_key(field, &values)));
            }
        }
        if filters.has_price_bound() {
            clauses.push(must_without_score(self.price_range(filters)));
        }
        BooleanQuery::new(clauses)
    }

    /// Matches a document whose `field` holds any of `values`.
    fn any_key(&self, field: Field, values: &[String]) -> Box<dyn Query> {
        let alternatives = values
            .iter()
            .map(|value| (Occur::Should, self.key_query(field, value, 0.0)))
            .collect();
        Box::new(BooleanQuery::new(alternatives))
    }

    /// The price bounds, in the filter's currency when it names one.
    fn price_range(&self, filters: &Filters) -> Box<dyn Query> {
        let fields = &self.fields;
        let bound = |value: Option<f64>| match value {
            Some(value) => Bound::Included(Term::from_field_f64(fields.price, value)),
            None => Bound::Unbounded,
        };
        let range = Box::new(RangeQuery::new(
            bound(filters.price_min),
            bound(filters.price_max),
        ));
        let Some(currency) = &filters.currency else {
            return range;
        };
        let currency = self.key_query(fields.currency_key, currency, 0.0);
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, range as Box<dyn Query>),
            (Occur::Must, currency),
        ]))
    }
}

/// A clause that must match but adds nothing to the score, so filters never reorder hits.
fn must_without_score(query: Box<dyn Query>) -> (Occur, Box<dyn Query>) {
    (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard_index::testing::{
        check, demo_index, indexed, layout, product as testing_product, query, text, vector_of,
    };
    use inkling_domain::{Product, Taxonomy};

    #[test]
    fn retrieval_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let index = demo_index(dir.path());
        let under_4000 = Filters {
            price_max: Some(4000.0),
            ..Default::default()
        };
        let phones = Filters {
            category: vec!["手机".into()],
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
                        category: vec!["手机".into()],
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
                        brand: vec!["APPLE".into()],
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
            category: vec!["平板".into()],
            ..Default::default()
        };
        check(
            &index,
            query(Retrieval::TopRated, tablets),
            &["ipadmini"],
            true,
        );
    }

    /// Each case: filters as JSON, and the phones they let through. Every retrieval (text,
    /// nearest vectors, best-rated) applies them alike.
    #[test]
    fn storefront_filters_hold_for_every_retrieval() {
        let dir = tempfile::tempdir().unwrap();
        let index = ShardIndex::open(dir.path(), Taxonomy::default(), &layout()).unwrap();
        let colour = |product: Product, colour: &str| Product {
            attributes: [("colour".to_string(), colour.to_string())].into(),
            ..product
        };
        let phones = [
            colour(
                testing_product("red", "Phone Red", "手机", "Apple", 3000.0),
                "Red",
            ),
            colour(
                testing_product("blue", "Phone Blue", "手机", "Xiaomi", 2000.0),
                "Blue",
            ),
            Product {
                currency: "USD".into(),
                ..testing_product("dollar", "Phone Dollar", "手机", "Huawei", 500.0)
            },
            Product {
                in_stock: false,
                ..testing_product("sold-out", "Phone Gone", "手机", "Apple", 1000.0)
            },
        ];
        index
            .upsert(phones.into_iter().map(indexed).collect())
            .unwrap();
        let cases: [(&str, &[&str]); 9] = [
            ("{}", &["red", "blue", "dollar"]),
            (
                r#"{"include_out_of_stock":true}"#,
                &["red", "blue", "dollar", "sold-out"],
            ),
            (r#"{"brand":["apple","xiaomi"]}"#, &["red", "blue"]),
            (
                r#"{"category":["电脑","手机"]}"#,
                &["red", "blue", "dollar"],
            ),
            (r#"{"attributes":{"colour":["red","green"]}}"#, &["red"]),
            (r#"{"attributes":{"colour":["red"]},"brand":"xiaomi"}"#, &[]),
            (r#"{"price_max":2500}"#, &["blue", "dollar"]),
            (r#"{"price_max":2500,"currency":"CNY"}"#, &["blue"]),
            (r#"{"price_max":2500,"currency":"USD"}"#, &["dollar"]),
        ];
        for (json, expected) in cases {
            let filters: Filters = serde_json::from_str(json).unwrap();
            for retrieval in [
                text("phone"),
                Retrieval::Vector(vector_of("手机")),
                Retrieval::TopRated,
            ] {
                check(&index, query(retrieval, filters.clone()), expected, false);
            }
        }
    }
}
