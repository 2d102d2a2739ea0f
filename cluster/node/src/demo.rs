//! The demo catalog bundled into the binary, so `inkling serve` works on a fresh machine.
//! Its sources and licences are in `cluster/node/demo/ATTRIBUTION.md`.

use inkling_domain::{Product, Taxonomy};

const FLIPKART_SAMPLE: &str = include_str!("../demo/flipkart-sample.jsonl");
const CLASSIC_ZH: &str = include_str!("../demo/classic-zh.jsonl");
const TAXONOMY: &str = include_str!("../demo/taxonomy.json");

/// Parses JSON-lines products, naming the line of the first bad one.
pub fn parse_products(source_name: &str, text: &str) -> Result<Vec<Product>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let product: Product = serde_json::from_str(line)
                .map_err(|error| format!("{source_name} line {}: {error}", index + 1))?;
            product
                .validate()
                .map_err(|error| format!("{source_name} line {}: {error}", index + 1))?;
            Ok(product)
        })
        .collect()
}

pub fn catalog() -> Vec<Product> {
    let mut products =
        parse_products("classic-zh.jsonl", CLASSIC_ZH).expect("bundled catalog is valid");
    products.extend(
        parse_products("flipkart-sample.jsonl", FLIPKART_SAMPLE).expect("bundled catalog is valid"),
    );
    products
}

pub fn taxonomy() -> Taxonomy {
    serde_json::from_str(TAXONOMY).expect("bundled taxonomy is valid")
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_catalog_parses_and_holds_the_classic_example() {
        let catalog = super::catalog();
        assert!(catalog.len() > 2000);
        assert!(
            catalog
                .iter()
                .any(|product| product.title == "Xiaomi 12" && product.price == 3500.0)
        );
        assert!(
            super::taxonomy()
                .aliases_of("手机")
                .contains(&"mobile phones".to_string())
        );
    }
}
