//! Test fixtures shared by the shard's modules: a small demo catalog with toy embeddings,
//! and a helper that checks what a query returns.

use std::path::Path;

use super::{IndexQuery, IndexedProduct, Retrieval, ShardIndex, ShardLayout};
use crate::analysis::ChineseSegmentation;
use inkling_domain::{Filters, Product, Taxonomy};

pub(super) fn product(id: &str, title: &str, category: &str, brand: &str, price: f64) -> Product {
    Product {
        title: title.into(),
        brand: Some(brand.into()),
        rating: Some(4.0),
        ..inkling_domain::testing::product(id, category, price)
    }
}

/// A toy embedding: one axis per category, so vector neighbours share a category.
pub(super) fn vector_of(category: &str) -> Vec<f32> {
    let axis = ["手机", "电脑", "平板"]
        .iter()
        .position(|c| *c == category)
        .unwrap_or(3);
    let mut vector = [0.1f32; 4];
    vector[axis] = 1.0;
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    vector.iter().map(|v| v / norm).collect()
}

pub(super) fn indexed(product: Product) -> IndexedProduct {
    let vector = Some(vector_of(&product.category_path[0]));
    IndexedProduct { product, vector }
}

pub(super) fn layout() -> ShardLayout {
    ShardLayout::new(ChineseSegmentation::Jieba, Some("toy".into()))
}

/// The taxonomy of [`demo_index`]: 手机 is also "mobile phones".
pub(super) fn demo_taxonomy() -> Taxonomy {
    Taxonomy {
        aliases: [("手机".to_string(), vec!["mobile phones".to_string()])].into(),
        ..Default::default()
    }
}

pub(super) fn demo_index(dir: &Path) -> ShardIndex {
    let index = ShardIndex::open(dir, demo_taxonomy(), &layout()).unwrap();
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
pub(super) fn check(index: &ShardIndex, query: IndexQuery, expected: &[&str], ordered: bool) {
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

pub(super) fn query(retrieval: Retrieval, filters: Filters) -> IndexQuery {
    IndexQuery {
        retrieval,
        filters,
        limit: 10,
    }
}

pub(super) fn text(words: &str) -> Retrieval {
    Retrieval::Text(words.into())
}
