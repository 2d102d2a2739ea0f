//! Builders for tests in every crate (feature `testing`), so each test states only the
//! fields it is about.

use crate::Product;

/// An in-stock product priced in CNY, titled after its id, with one category, no brand and
/// no rating; override fields with struct update syntax.
pub fn product(id: &str, category: &str, price: f64) -> Product {
    Product {
        id: id.into(),
        title: id.into(),
        category_path: vec![category.into()],
        brand: None,
        price,
        currency: "CNY".into(),
        rating: None,
        in_stock: true,
        attributes: Default::default(),
        listed_at_ms: None,
    }
}
