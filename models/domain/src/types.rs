//! The data model shared by every layer: products, shopper events and the category
//! taxonomy. Validation lives beside each type so every entry point rejects the same
//! bad input with the same message.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Longest id, title or query accepted; longer input is almost certainly a client bug.
pub const MAX_TEXT_LEN: usize = 1024;

/// One sellable item of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub id: String,
    pub title: String,
    /// From the broadest category to the narrowest, e.g. `["Electronics", "Mobiles"]`.
    #[serde(default)]
    pub category_path: Vec<String>,
    #[serde(default)]
    pub brand: Option<String>,
    pub price: f64,
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Average shopper rating from 0 to 5, when there is one.
    #[serde(default)]
    pub rating: Option<f32>,
    #[serde(default = "default_in_stock")]
    pub in_stock: bool,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// When the shop listed the product, in milliseconds since the Unix epoch: the order
    /// of `sort: newest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_at_ms: Option<u64>,
}

fn default_currency() -> String {
    "USD".to_string()
}

fn default_in_stock() -> bool {
    true
}

impl Product {
    /// Checks the invariants the index and the ranker rely on.
    pub fn validate(&self) -> Result<(), String> {
        check_field("id", &self.id)?;
        check_field("title", &self.title)?;
        if !self.price.is_finite() || self.price < 0.0 {
            return Err(format!(
                "product {}: price must be a finite number >= 0, got {}",
                self.id, self.price
            ));
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "product {}: currency must be a 3-letter ISO code such as CNY, got {:?}",
                self.id, self.currency
            ));
        }
        if let Some(rating) = self.rating
            && !(0.0..=5.0).contains(&rating)
        {
            return Err(format!(
                "product {}: rating must be between 0 and 5, got {rating}",
                self.id
            ));
        }
        Ok(())
    }

    /// The narrowest category, used in reasons and diversity.
    /// The text a passage encoder embeds: the title, then brand and category path when the
    /// title does not already say them.
    pub fn passage(&self) -> String {
        let mut passage = self.title.clone();
        let lower = self.title.to_lowercase();
        let extras = self
            .brand
            .iter()
            .chain(self.category_path.iter().rev().take(2));
        for extra in extras {
            if !extra.is_empty() && !lower.contains(&extra.to_lowercase()) {
                passage.push_str(" | ");
                passage.push_str(extra);
            }
        }
        passage
    }

    pub fn leaf_category(&self) -> Option<&str> {
        self.category_path.last().map(String::as_str)
    }
}

/// What a shopper did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    View,
    Click,
    AddToCart,
    Purchase,
    Search,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::View => "view",
            EventKind::Click => "click",
            EventKind::AddToCart => "add_to_cart",
            EventKind::Purchase => "purchase",
            EventKind::Search => "search",
        }
    }

    /// How strongly the event says "I want this": buying outweighs looking.
    pub fn interest_weight(self) -> f64 {
        match self {
            EventKind::View => 1.0,
            EventKind::Click => 2.0,
            EventKind::AddToCart => 4.0,
            EventKind::Purchase => 6.0,
            EventKind::Search => 0.0,
        }
    }
}

/// One shopper event as received from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub user_id: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: EventKind,
    #[serde(default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    /// Milliseconds since the Unix epoch; the server's clock when absent.
    #[serde(default)]
    pub timestamp: Option<u64>,
    /// Whether shared signals (what follows what, popularity) learn from this event. With
    /// `false` it updates only the shopper's own profile: for replaying held-out data.
    #[serde(default = "default_learn")]
    pub learn: bool,
    /// The client's idempotency key: an event whose key the shopper's profile has seen
    /// already is acknowledged again but not applied twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The ranked answer the shopper acted on, and the item's place in it (from 1): what
    /// attributes a click, cart or purchase to the search or recommendation behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
}

/// Which answer an event followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribution {
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
}

fn default_learn() -> bool {
    true
}

impl Event {
    pub fn validate(&self) -> Result<(), String> {
        check_field("user_id", &self.user_id)?;
        if let Some(session_id) = &self.session_id {
            check_field("session_id", session_id)?;
        }
        if let Some(event_id) = &self.event_id {
            check_field("event_id", event_id)?;
        }
        match self.kind {
            EventKind::Search => match &self.query {
                Some(query) => check_field("query", query),
                None => Err("a search event needs a `query`".to_string()),
            },
            _ => match &self.item_id {
                Some(item_id) => check_field("item_id", item_id),
                None => Err(format!(
                    "a `{}` event needs an `item_id`",
                    self.kind.as_str()
                )),
            },
        }
    }
}

/// Other names for catalog categories, such as English names for `手机`.
///
/// The index adds them to a product's category text, so a query in either language finds
/// the category. It is catalog data: a node uses the one bundled with the demo catalog
/// unless given another (`--taxonomy FILE`, the same JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    pub aliases: HashMap<String, Vec<String>>,
    /// Other names shoppers use for catalog brands, such as `小米` for Xiaomi. Query
    /// understanding reads them; the index does not.
    #[serde(default)]
    pub brand_aliases: HashMap<String, Vec<String>>,
}

impl Taxonomy {
    /// Every category, brand and other name is a real value: not blank, and no longer than
    /// a category or brand may be (128 bytes). The error names the first one that is not.
    pub fn validate(&self) -> Result<(), String> {
        for (table, entries) in [
            ("aliases", &self.aliases),
            ("brand_aliases", &self.brand_aliases),
        ] {
            for (name, others) in entries {
                check_name(&format!("{table}: a name"), name)?;
                for other in others {
                    check_name(&format!("{table}.{name}"), other)?;
                }
            }
        }
        Ok(())
    }

    /// A fingerprint of what the index builds from (the category aliases), so an index built
    /// with other aliases is known to be stale. Independent of map and list order.
    pub fn index_fingerprint(&self) -> u64 {
        let mut entries: Vec<(&String, Vec<&String>)> = self
            .aliases
            .iter()
            .map(|(category, aliases)| {
                let mut aliases: Vec<&String> = aliases.iter().collect();
                aliases.sort();
                (category, aliases)
            })
            .collect();
        entries.sort();
        let mut text = String::new();
        for (category, aliases) in entries {
            text.push_str(category);
            for alias in aliases {
                text.push('\u{1f}');
                text.push_str(alias);
            }
            text.push('\u{1e}');
        }
        xxhash_rust::xxh3::xxh3_64(text.as_bytes())
    }

    pub fn aliases_of(&self, category: &str) -> &[String] {
        self.aliases.get(category).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The other names of the brand called `name`: its aliases when `name` is a brand of the
    /// taxonomy, and that brand with its other aliases when `name` is one of them ("小米" →
    /// "Xiaomi"), so a catalog that spells the brand "MIUI/小米" is found by "xiaomi" too.
    pub fn brand_aliases_of(&self, name: &str) -> Vec<String> {
        if let Some(aliases) = self.brand_aliases.get(name) {
            return aliases.clone();
        }
        self.brand_aliases
            .iter()
            .filter(|(_, aliases)| aliases.iter().any(|alias| alias == name))
            .flat_map(|(brand, aliases)| std::iter::once(brand).chain(aliases))
            .filter(|other| *other != name)
            .cloned()
            .collect()
    }
}

/// A taxonomy name: not blank, and at most [`MAX_NAME_BYTES`].
fn check_name(path: &str, name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("{path}: blank names are not allowed"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{path}: {name:?} is longer than {MAX_NAME_BYTES} bytes"
        ));
    }
    Ok(())
}

/// The longest category, brand or other name a taxonomy holds (the API's limit).
const MAX_NAME_BYTES: usize = 128;

/// Ids and texts share one rule: present, and short enough to be a real value.
fn check_field(name: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("`{name}` must not be empty"));
    }
    if value.len() > MAX_TEXT_LEN {
        return Err(format!("`{name}` is longer than {MAX_TEXT_LEN} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `json` as an event and checks validation yields `expected` (`Ok` or an error
    /// containing the given text).
    fn check_event(json: &str, expected: Result<(), &str>) {
        let event: Event = serde_json::from_str(json).expect("test input parses");
        match (event.validate(), expected) {
            (Ok(()), Ok(())) => {}
            (Err(actual), Err(fragment)) => assert!(
                actual.contains(fragment),
                "{json}: error {actual:?} lacks {fragment:?}"
            ),
            (actual, expected) => panic!("{json}: got {actual:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn event_validation() {
        let cases: &[(&str, Result<(), &str>)] = &[
            (r#"{"user_id":"u","type":"view","item_id":"p1"}"#, Ok(())),
            (r#"{"user_id":"u","type":"search","query":"phone"}"#, Ok(())),
            (
                r#"{"user_id":"","type":"view","item_id":"p1"}"#,
                Err("user_id"),
            ),
            (
                r#"{"user_id":"u","type":"view"}"#,
                Err("needs an `item_id`"),
            ),
            (
                r#"{"user_id":"u","type":"add_to_cart"}"#,
                Err("`add_to_cart` event needs"),
            ),
            (r#"{"user_id":"u","type":"search"}"#, Err("needs a `query`")),
            (
                r#"{"user_id":"u","type":"search","query":"  "}"#,
                Err("query"),
            ),
        ];
        for (json, expected) in cases {
            check_event(json, *expected);
        }
    }

    #[test]
    fn a_brand_alias_names_the_brand_and_its_other_aliases() {
        let taxonomy = Taxonomy {
            brand_aliases: [(
                "Xiaomi".to_string(),
                vec!["小米".to_string(), "mi".to_string()],
            )]
            .into(),
            ..Default::default()
        };
        let cases: [(&str, &[&str]); 4] = [
            ("Xiaomi", &["小米", "mi"]),
            ("小米", &["Xiaomi", "mi"]),
            ("MIUI", &[]),
            ("MIUI/小米", &[]),
        ];
        for (name, expected) in cases {
            assert_eq!(taxonomy.brand_aliases_of(name), expected, "{name}");
        }
    }
}
