//! Understanding what a shopper asks, in Chinese or English, across turns.
//!
//! [`slots`] pulls structured constraints out of the text (category and brand matched
//! against the catalog's own vocabulary, price ranges, attributes, a ranking preference);
//! [`classifier`] names the intent by comparing the query's embedding with embedded example
//! phrasings; [`dialogue`] folds each turn into the session's state, so a follow-up such as
//! "有没有8000元以内的？" refines the previous turn instead of starting over; [`topic`] tells
//! such a follow-up (constraints and filler only) from a turn that names a need of its own.

pub mod classifier;
pub mod dialogue;
pub mod slots;
pub mod topic;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use classifier::IntentClassifier;
pub use dialogue::{DialogueState, Turn};
pub use slots::{CatalogVocabulary, SlotExtractor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentClass {
    /// Looking around a category: "我想找一款手机", "show me laptops".
    Browse,
    /// Ready to buy a specific thing: "buy iPhone 14", "我要买小米12".
    Purchase,
    /// Weighing options: "iPhone 14 和小米12哪个好", "compare iPad and Macbook".
    Compare,
    /// Narrowing the previous turn: "有没有8000元以内的？", "cheaper ones?", "in red?".
    Refine,
    /// Asking what something costs: "iPhone 14多少钱", "how much is the iPad mini".
    PriceCheck,
    /// Anything else: greetings, service questions.
    Other,
}

impl IntentClass {
    pub const ALL: [IntentClass; 6] = [
        IntentClass::Browse,
        IntentClass::Purchase,
        IntentClass::Compare,
        IntentClass::Refine,
        IntentClass::PriceCheck,
        IntentClass::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IntentClass::Browse => "browse",
            IntentClass::Purchase => "purchase",
            IntentClass::Compare => "compare",
            IntentClass::Refine => "refine",
            IntentClass::PriceCheck => "price_check",
            IntentClass::Other => "other",
        }
    }
}

impl std::str::FromStr for IntentClass {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        IntentClass::ALL
            .into_iter()
            .find(|class| class.as_str() == name)
            .ok_or_else(|| format!("unknown intent {name:?}"))
    }
}

/// How the shopper wants results ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// 性价比: a good rating for the price.
    BestValue,
    Cheapest,
    Premium,
    BestRated,
    Newest,
}

impl Preference {
    pub const ALL: [Preference; 5] = [
        Preference::BestValue,
        Preference::Cheapest,
        Preference::Premium,
        Preference::BestRated,
        Preference::Newest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Preference::BestValue => "best_value",
            Preference::Cheapest => "cheapest",
            Preference::Premium => "premium",
            Preference::BestRated => "best_rated",
            Preference::Newest => "newest",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Preference::ALL
            .into_iter()
            .find(|preference| preference.as_str() == name)
    }
}

/// Constraints stated in one turn, or accumulated over a dialogue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Slots {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// How sure the reading of `category` is, from 0 to 1: 1 when the shopper stated it
    /// as a constraint ("只看手机", "only phones"), high when it names what the query is
    /// about ("跑步鞋", "watch for men"), low when it only qualifies another word ("phone
    /// cover", "laptop battery"). Search filters by a category only when it is sure.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub category_confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// How sure the reading of `brand` is: 1 when stated ("only Apple"), otherwise how
    /// rarely the brand's name is an ordinary word of the catalog's titles.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub brand_confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preference: Option<Preference>,
}

impl Slots {
    /// Whether this turn states any constraint beyond the category.
    pub fn has_constraints(&self) -> bool {
        self.brand.is_some()
            || self.price_min.is_some()
            || self.price_max.is_some()
            || !self.attributes.is_empty()
            || self.preference.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.category.is_none() && !self.has_constraints()
    }
}

/// What Inkling understood of one query, returned with search results so a shopper can see
/// why the results are what they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Understanding {
    pub intent: IntentClass,
    pub confidence: f32,
    /// Whether this turn refined the previous one rather than starting a new topic.
    pub follow_up: bool,
    /// Constraints stated in this turn alone.
    pub turn: Slots,
    /// Constraints in force after this turn: the ones search applies.
    pub constraints: Slots,
    /// What search looks for: this turn's words, or on a follow-up the words of the turn
    /// that started the topic ("有没有8000元以内的？" names no product of its own).
    #[serde(default)]
    pub topic: String,
}
