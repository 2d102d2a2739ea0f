//! The domain model every layer shares: products, shopper events, search filters, the
//! category taxonomy, and the shopper profile that events fold into.
//!
//! `inkling-domain` owns plain data and the rules that belong to it (validation, how an
//! event changes a profile). It must never know how or where anything is stored, indexed,
//! served or placed: it depends on serde alone, so `models` can use a `Product` without
//! pulling in tantivy, sled or jieba.

pub mod filters;
pub mod passage_vector;
pub mod product_words;
pub mod profile;
pub mod reason;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod types;

pub use filters::Filters;
pub use passage_vector::{PassageVector, ProductWrite};
pub use profile::{
    Decayed, PriceAffinity, Profile, ProfileConfig, RecentItem, RecentQuery, event_key_hash,
};
pub use reason::{Language, Reason, money};
pub use types::{Attribution, Event, EventKind, Product, Taxonomy};

/// Whether `c` is a Han (Chinese) character: text analysis and per-language tuning both
/// tell Chinese text by it.
pub fn is_han(c: char) -> bool {
    matches!(c,
        '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FA1F}')
}

/// Milliseconds since the Unix epoch, the one clock every stored timestamp uses.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}
