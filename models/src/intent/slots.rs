//! Slot extraction: the constraints a query states, found against the catalog's own
//! vocabulary (categories with their taxonomy aliases, brands) and a few universal patterns
//! (prices with currency words, colours, storage sizes, ranking preferences), in Chinese and
//! English.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

use super::{Preference, Slots};

/// The catalog words slot extraction matches: `(surface form, canonical value)` pairs.
#[derive(Debug, Clone, Default)]
pub struct CatalogVocabulary {
    pub categories: Vec<(String, String)>,
    pub brands: Vec<(String, String)>,
}

impl CatalogVocabulary {
    /// Adds a category under its own name and its aliases, with English plural variants.
    pub fn add_category(&mut self, category: &str, aliases: &[String]) {
        for surface in std::iter::once(category).chain(aliases.iter().map(String::as_str)) {
            for variant in number_variants(surface) {
                self.categories.push((variant, category.to_string()));
            }
        }
    }

    pub fn add_brand(&mut self, brand: &str) {
        // One- or two-letter brands ("AW") would match ordinary words and units.
        if brand.chars().count() >= 3 || !brand.is_ascii() {
            self.brands.push((brand.to_string(), brand.to_string()));
        }
    }
}

/// "phones" for "phone" and "phone" for "phones", so either form of a query matches.
fn number_variants(surface: &str) -> Vec<String> {
    let mut variants = vec![surface.to_string()];
    if !surface.is_ascii() || surface.len() < 4 {
        return variants;
    }
    match surface.strip_suffix('s') {
        Some(singular) => variants.push(singular.to_string()),
        None => variants.push(format!("{surface}s")),
    }
    variants
}

/// A leftmost-longest dictionary matcher, case-insensitive for ASCII, that respects word
/// boundaries for Latin words (so "phone" does not match inside "headphones").
pub struct DictionaryMatcher {
    automaton: AhoCorasick,
    values: Vec<String>,
}

/// One dictionary hit: the byte span in the text and the canonical value.
#[derive(Debug, Clone, PartialEq)]
pub struct DictionaryHit<'a> {
    pub start: usize,
    pub end: usize,
    pub value: &'a str,
}

impl DictionaryMatcher {
    pub fn new(entries: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut seen = std::collections::HashSet::new();
        let (surfaces, values): (Vec<String>, Vec<String>) = entries
            .into_iter()
            .filter(|(surface, _)| !surface.trim().is_empty())
            .filter(|(surface, _)| seen.insert(surface.to_lowercase()))
            .unzip();
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&surfaces)
            .expect("dictionary automaton builds");
        Self { automaton, values }
    }

    fn hits<'s, 't>(&'s self, text: &'t str) -> impl Iterator<Item = DictionaryHit<'s>> + 't
    where
        's: 't,
    {
        self.automaton
            .find_iter(text)
            .filter(|hit| on_word_boundaries(text, hit.start(), hit.end()))
            .map(|hit| DictionaryHit {
                start: hit.start(),
                end: hit.end(),
                value: &self.values[hit.pattern().as_usize()],
            })
    }

    pub fn find_all<'s>(&'s self, text: &str) -> Vec<DictionaryHit<'s>> {
        self.hits(text).collect()
    }

    /// The first hit only: a search reads one category or brand, so it stops scanning there.
    pub fn first<'s>(&'s self, text: &str) -> Option<DictionaryHit<'s>> {
        self.hits(text).next()
    }
}

fn on_word_boundaries(text: &str, start: usize, end: usize) -> bool {
    let latin = |c: char| c.is_ascii_alphanumeric();
    let before = text[..start].chars().next_back();
    let first = text[start..end].chars().next();
    let last = text[start..end].chars().next_back();
    let after = text[end..].chars().next();
    let clean_start = !(before.is_some_and(latin) && first.is_some_and(latin));
    let clean_end = !(after.is_some_and(latin) && last.is_some_and(latin));
    clean_start && clean_end
}

const COLOURS: &[(&str, &[&str])] = &[
    ("red", &["red", "红色"]),
    ("black", &["black", "黑色"]),
    ("white", &["white", "白色"]),
    ("blue", &["blue", "蓝色"]),
    ("green", &["green", "绿色"]),
    ("purple", &["purple", "紫色"]),
    ("gold", &["gold", "金色"]),
    ("silver", &["silver", "银色"]),
    ("pink", &["pink", "粉色"]),
    ("grey", &["grey", "gray", "灰色"]),
    ("yellow", &["yellow", "黄色"]),
];

const PREFERENCES: &[(Preference, &[&str])] = &[
    (
        Preference::BestValue,
        &[
            "性价比",
            "划算",
            "实惠",
            "value for money",
            "good value",
            "best value",
            "great value",
            "bang for the buck",
            "bang for your buck",
            "worth the money",
        ],
    ),
    (
        Preference::Cheapest,
        &[
            "最便宜",
            "便宜",
            "低价",
            "cheapest",
            "cheaper",
            "cheap",
            "lowest price",
            "budget",
            "affordable",
            "inexpensive",
        ],
    ),
    (
        Preference::Premium,
        &[
            "高端",
            "旗舰",
            "顶配",
            "最贵",
            "premium",
            "high-end",
            "high end",
            "flagship",
            "luxury",
            "top of the line",
        ],
    ),
    (
        Preference::BestRated,
        &[
            "评分最高",
            "评价最好",
            "好评",
            "口碑",
            "best rated",
            "top rated",
            "highest rated",
            "best reviewed",
            "best reviews",
        ],
    ),
    (
        Preference::Newest,
        &[
            "最新",
            "新款",
            "newest",
            "latest",
            "new release",
            "new model",
        ],
    ),
];

const CURRENCY: &str = r"(?:¥|￥|\$|₹|元|块钱|块|rmb|cny|yuan|usd|dollars?|inr|rs\.?|rupees?)";
const NUMBER: &str = r"(\d+(?:[.,]\d+)*)\s*(k|千|万|w)?";

static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:between|from)?\s*{CURRENCY}?\s*{NUMBER}\s*{CURRENCY}?\s*(?:-|~|–|到|至|and|to)\s*{CURRENCY}?\s*{NUMBER}\s*({CURRENCY})?"
    ))
    .expect("valid regex")
});
static MAX_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:under|below|less than|cheaper than|up to|within|max(?:imum)?|no more than|at most|not more than|不超过|低于|少于|不到|小于|不高于|最多|预算)\s*({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?"
    ))
    .expect("valid regex")
});
static MAX_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?\s*(?:以内|以下|之内|内|or less|or under|and under|and below|max)"
    ))
    .expect("valid regex")
});
static MIN_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:over|above|more than|at least|高于|超过|大于|不低于|至少)\s*({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?"
    ))
    .expect("valid regex")
});
static MIN_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?\s*(?:以上|起|or more|and up|and above|plus)"
    ))
    .expect("valid regex")
});
static AROUND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:(?:around|about|approximately|roughly)\s*({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?|({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?\s*(?:左右|上下))"
    ))
    .expect("valid regex")
});
static STORAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d+)\s*(gb|g|tb|t)\b").expect("valid regex"));
static CURRENCY_WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(CURRENCY).expect("valid regex"));

/// Extracts [`Slots`] from query text.
pub struct SlotExtractor {
    categories: DictionaryMatcher,
    brands: DictionaryMatcher,
    colours: DictionaryMatcher,
    preferences: DictionaryMatcher,
}

impl SlotExtractor {
    pub fn new(vocabulary: &CatalogVocabulary) -> Self {
        let colours = COLOURS.iter().flat_map(|(canonical, surfaces)| {
            surfaces
                .iter()
                .map(|surface| (surface.to_string(), canonical.to_string()))
        });
        let preferences = PREFERENCES.iter().flat_map(|(preference, surfaces)| {
            surfaces
                .iter()
                .map(|surface| (surface.to_string(), preference.as_str().to_string()))
        });
        Self {
            categories: DictionaryMatcher::new(vocabulary.categories.clone()),
            brands: DictionaryMatcher::new(vocabulary.brands.clone()),
            colours: DictionaryMatcher::new(colours),
            preferences: DictionaryMatcher::new(preferences),
        }
    }

    pub fn extract(&self, query: &str) -> Slots {
        let text = query.to_lowercase();
        let mut slots = Slots {
            category: self
                .categories
                .first(&text)
                .map(|hit| hit.value.to_string()),
            brand: self.brands.first(&text).map(|hit| hit.value.to_string()),
            preference: self
                .preferences
                .first(&text)
                .and_then(|hit| Preference::from_name(hit.value)),
            ..Default::default()
        };
        let mut attributes = BTreeMap::new();
        if let Some(colour) = self.colours.first(&text) {
            attributes.insert("color".to_string(), colour.value.to_string());
        }
        if let Some(storage) = storage(&text) {
            attributes.insert("storage".to_string(), storage);
        }
        slots.attributes = attributes;
        apply_price(&text, &mut slots);
        slots
    }

    /// Every brand mention, for evaluation against tagged text.
    pub fn brands(&self) -> &DictionaryMatcher {
        &self.brands
    }

    pub fn categories(&self) -> &DictionaryMatcher {
        &self.categories
    }
}

fn storage(text: &str) -> Option<String> {
    STORAGE.captures_iter(text).find_map(|captures| {
        let amount: u32 = captures[1].parse().ok()?;
        let unit = if captures[2].starts_with('t') {
            "TB"
        } else {
            "GB"
        };
        // "5g" is a network, not storage.
        (unit == "TB" || amount >= 16).then(|| format!("{amount}{unit}"))
    })
}

/// Parses "8,000", "1.5万", "20k", "8千" into a number.
fn amount(digits: &str, multiplier: Option<&str>) -> Option<f64> {
    let value: f64 = digits.replace(',', "").parse().ok()?;
    let factor = match multiplier {
        Some("k" | "千") => 1_000.0,
        Some("万" | "w") => 10_000.0,
        _ => 1.0,
    };
    Some(value * factor)
}

fn currency_code(word: &str) -> Option<&'static str> {
    let word = word.trim().trim_end_matches('.');
    match word {
        "¥" | "￥" | "元" | "块" | "块钱" | "rmb" | "cny" | "yuan" => Some("CNY"),
        "$" | "usd" | "dollar" | "dollars" => Some("USD"),
        "₹" | "inr" | "rs" | "rupee" | "rupees" => Some("INR"),
        _ => None,
    }
}

fn apply_price(text: &str, slots: &mut Slots) {
    slots.currency = CURRENCY_WORD
        .find_iter(text)
        .find_map(|word| currency_code(word.as_str()))
        .map(str::to_string);
    if let Some(captures) = RANGE.captures(text)
        && let (Some(low), Some(high)) = (
            amount(&captures[1], captures.get(2).map(|m| m.as_str())),
            amount(&captures[3], captures.get(4).map(|m| m.as_str())),
        )
        && low < high
    {
        slots.price_min = Some(low);
        slots.price_max = Some(high);
        return;
    }
    if let Some(value) = first_amount(&MAX_BEFORE, text).or_else(|| first_amount(&MAX_AFTER, text))
    {
        slots.price_max = Some(value);
        return;
    }
    let negated = |start: usize| text[..start].ends_with('不');
    if let Some(value) = first_amount_where(&MIN_BEFORE, text, |start| !negated(start))
        .or_else(|| first_amount(&MIN_AFTER, text))
    {
        slots.price_min = Some(value);
        return;
    }
    if let Some(value) = first_amount(&AROUND, text) {
        slots.price_min = Some((value * 0.85).round());
        slots.price_max = Some((value * 1.15).round());
    }
}

fn first_amount(pattern: &Regex, text: &str) -> Option<f64> {
    first_amount_where(pattern, text, |_| true)
}

/// The first number a pattern captures, with its multiplier, where `accept(match start)`.
fn first_amount_where(pattern: &Regex, text: &str, accept: impl Fn(usize) -> bool) -> Option<f64> {
    pattern.captures_iter(text).find_map(|captures| {
        let whole = captures.get(0)?;
        if !accept(whole.start()) {
            return None;
        }
        // The number is the first group made only of digits; its multiplier follows it.
        let groups: Vec<_> = captures.iter().skip(1).collect();
        let index = groups.iter().position(|group| {
            group.is_some_and(|g| g.as_str().starts_with(|c: char| c.is_ascii_digit()))
        })?;
        let digits = groups[index]?.as_str();
        let multiplier = groups.get(index + 1).copied().flatten().map(|m| m.as_str());
        let multiplier = multiplier.filter(|m| matches!(*m, "k" | "千" | "万" | "w"));
        amount(digits, multiplier)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extractor() -> SlotExtractor {
        let mut vocabulary = CatalogVocabulary::default();
        let phone_aliases: Vec<String> = ["mobile phone", "smartphone", "cell phone", "phone"]
            .map(String::from)
            .to_vec();
        vocabulary.add_category("手机", &phone_aliases);
        vocabulary.add_category("电脑", &["laptop".to_string(), "computer".to_string()]);
        vocabulary.add_category("平板", &["tablet".to_string()]);
        for brand in ["Apple", "Xiaomi", "小米", "AW"] {
            vocabulary.add_brand(brand);
        }
        SlotExtractor::new(&vocabulary)
    }

    /// Checks the slots extracted from `query` against `expected` (as JSON).
    fn check(extractor: &SlotExtractor, query: &str, expected: serde_json::Value) {
        let actual = serde_json::to_value(extractor.extract(query)).unwrap();
        assert_eq!(actual, expected, "{query}");
    }

    #[test]
    fn slots_in_chinese_and_english() {
        use serde_json::json;
        let extractor = extractor();
        let cases = [
            (
                "我想找一款性价比高的手机",
                json!({"category": "手机", "preference": "best_value"}),
            ),
            (
                "有没有8000元以内的？",
                json!({"price_max": 8000.0, "currency": "CNY"}),
            ),
            (
                "4000元以内的呢？",
                json!({"price_max": 4000.0, "currency": "CNY"}),
            ),
            (
                "不超过5000的小米手机",
                json!({"category": "手机", "brand": "小米", "price_max": 5000.0}),
            ),
            (
                "3000到5000的平板",
                json!({"category": "平板", "price_min": 3000.0, "price_max": 5000.0}),
            ),
            (
                "2000元以下的红色手机",
                json!({"category": "手机", "price_max": 2000.0, "currency": "CNY", "attributes": {"color": "red"}}),
            ),
            (
                "1.5万以上的电脑",
                json!({"category": "电脑", "price_min": 15000.0}),
            ),
            (
                "3000左右的手机",
                json!({"category": "手机", "price_min": 2550.0, "price_max": 3450.0}),
            ),
            (
                "I want a good value phone",
                json!({"category": "手机", "preference": "best_value"}),
            ),
            ("any under 8000?", json!({"price_max": 8000.0})),
            ("cheaper ones?", json!({"preference": "cheapest"})),
            ("in red?", json!({"attributes": {"color": "red"}})),
            (
                "Apple laptops under $1,500",
                json!({"category": "电脑", "brand": "Apple", "price_max": 1500.0, "currency": "USD"}),
            ),
            (
                "phones below 20k rupees",
                json!({"category": "手机", "price_max": 20000.0, "currency": "INR"}),
            ),
            (
                "tablet between 300 and 500 dollars",
                json!({"category": "平板", "price_min": 300.0, "price_max": 500.0, "currency": "USD"}),
            ),
            (
                "xiaomi 128gb 5g phone",
                json!({"category": "手机", "brand": "Xiaomi", "attributes": {"storage": "128GB"}}),
            ),
            ("best rated headphones", json!({"preference": "best_rated"})),
            ("iphone 14", json!({})),
            ("draw with a pen", json!({})),
        ];
        for (query, expected) in cases {
            check(&extractor, query, expected);
        }
    }
}
