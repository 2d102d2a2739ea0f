//! Hard constraints a result must satisfy: the rule every retrieval path (the text index's
//! query, the vector scan, the ranker's own checks) applies the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::Product;

/// Hard constraints a result must satisfy. Within a field the values are alternatives (OR);
/// the fields all hold together (AND).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Any of these, at any level of the category path, case-insensitively; empty: any.
    #[serde(default, deserialize_with = "one_or_many")]
    pub category: Vec<String>,
    /// Any of these brands, case-insensitively; empty: any.
    #[serde(default, deserialize_with = "one_or_many")]
    pub brand: Vec<String>,
    #[serde(default)]
    pub price_min: Option<f64>,
    #[serde(default)]
    pub price_max: Option<f64>,
    /// The currency the price bounds are in. With a bound and a currency, products priced
    /// in another currency never pass: prices are not compared across currencies.
    #[serde(default)]
    pub currency: Option<String>,
    /// Attribute name → the values accepted (any of them), values case-insensitively.
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Whether products out of stock pass too; by default only products in stock do.
    #[serde(default)]
    pub include_out_of_stock: bool,
}

impl Filters {
    /// The one category asked for, when exactly one is.
    pub fn single_category(&self) -> Option<&str> {
        match self.category.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    pub fn has_price_bound(&self) -> bool {
        self.price_min.is_some() || self.price_max.is_some()
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, bound) in [("price_min", self.price_min), ("price_max", self.price_max)] {
            if let Some(value) = bound
                && (!value.is_finite() || value < 0.0)
            {
                return Err(format!("filters.{name} must be a finite number >= 0"));
            }
        }
        if let (Some(min), Some(max)) = (self.price_min, self.price_max)
            && min > max
        {
            return Err(format!(
                "filters.price_min ({min}) is greater than filters.price_max ({max})"
            ));
        }
        Ok(())
    }

    pub fn accepts(&self, product: &Product) -> bool {
        (self.include_out_of_stock || product.in_stock)
            && self.accepts_category(product)
            && any_or_empty(&self.brand, product.brand.as_deref())
            && self.accepts_price(product)
            && self.attributes.iter().all(|(name, values)| {
                any_or_empty(values, product.attributes.get(name).map(String::as_str))
            })
    }

    fn accepts_category(&self, product: &Product) -> bool {
        self.category.is_empty()
            || product
                .category_path
                .iter()
                .any(|level| any_or_empty(&self.category, Some(level)))
    }

    fn accepts_price(&self, product: &Product) -> bool {
        if !self.has_price_bound() {
            return true;
        }
        self.currency
            .as_deref()
            .is_none_or(|currency| currency.eq_ignore_ascii_case(&product.currency))
            && self.price_min.is_none_or(|min| product.price >= min)
            && self.price_max.is_none_or(|max| product.price <= max)
    }
}

/// Whether `value` is one of `wanted`, case-insensitively; anything passes an empty list.
fn any_or_empty(wanted: &[String], value: Option<&str>) -> bool {
    wanted.is_empty()
        || value.is_some_and(|value| wanted.iter().any(|w| w.eq_ignore_ascii_case(value)))
}

/// A list field that also takes a single string, as filters written before lists did.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Many(many)) => many,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> Product {
        Product {
            title: "iPhone 14".into(),
            category_path: vec!["Electronics".into(), "手机".into()],
            brand: Some("Apple".into()),
            attributes: [("colour".to_string(), "Blue".to_string())].into(),
            ..crate::testing::product("p", "手机", 8000.0)
        }
    }

    /// Each case: filters as JSON, and whether they accept an 8000 CNY blue Apple phone.
    #[test]
    fn filters_accept_matching_products_only() {
        let cases = [
            (r#"{}"#, true),
            (r#"{"category":"手机"}"#, true),
            (r#"{"category":"electronics"}"#, true),
            (r#"{"category":"电脑"}"#, false),
            (r#"{"category":["电脑","手机"]}"#, true),
            (r#"{"brand":"apple"}"#, true),
            (r#"{"brand":["Xiaomi","Huawei"]}"#, false),
            (r#"{"brand":["Xiaomi","APPLE"]}"#, true),
            (r#"{"price_max":8000}"#, true),
            (r#"{"price_max":7999}"#, false),
            (r#"{"price_min":8001}"#, false),
            (r#"{"price_max":8000,"currency":"CNY"}"#, true),
            (r#"{"price_max":8000,"currency":"INR"}"#, false),
            (r#"{"currency":"INR"}"#, true),
            (r#"{"attributes":{"colour":["red","blue"]}}"#, true),
            (r#"{"attributes":{"colour":["red"]}}"#, false),
            (r#"{"attributes":{"storage":["128GB"]}}"#, false),
        ];
        for (json, expected) in cases {
            let filters: Filters = serde_json::from_str(json).unwrap();
            assert_eq!(filters.accepts(&phone()), expected, "{json}");
        }
    }

    #[test]
    fn out_of_stock_products_pass_only_when_asked_for() {
        let sold_out = Product {
            in_stock: false,
            ..phone()
        };
        assert!(!Filters::default().accepts(&sold_out));
        let any_stock = Filters {
            include_out_of_stock: true,
            ..Filters::default()
        };
        assert!(any_stock.accepts(&sold_out));
    }
}
