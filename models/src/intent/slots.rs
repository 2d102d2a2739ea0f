//! Slot extraction: the constraints a query states, found against the catalog's own
//! vocabulary (categories with their taxonomy aliases, brands) and a few universal patterns
//! (prices with currency words, colours, storage sizes, ranking preferences), in Chinese and
//! English.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

use inkling_domain::product_words::{brand_names, category_parts};

use super::{Preference, Slots};

/// The catalog words slot extraction matches: `(surface form, canonical value)` pairs.
#[derive(Debug, Clone, Default)]
pub struct CatalogVocabulary {
    pub categories: Vec<(String, String)>,
    pub brands: Vec<(String, String)>,
    /// Per brand, how sure a mention of its name means the brand (1 when absent): a brand
    /// called "Coffee" or "Black" is mostly an ordinary word of other products' titles.
    pub brand_confidence: HashMap<String, f64>,
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

    /// Adds each part of a category named as a list ("wallets" and "clutches" for "Wallets &
    /// Clutches", "手机保护套" and "壳" for "手机保护套/壳"), so a query naming one part finds
    /// the category. Call it after every category's own names: a part that is also a
    /// category's name keeps that category.
    pub fn add_category_parts(&mut self, category: &str) {
        for part in category_parts(category) {
            for variant in number_variants(part) {
                self.categories.push((variant, category.to_string()));
            }
        }
    }

    pub fn add_brand(&mut self, brand: &str) {
        self.add_brand_surface(brand, brand);
    }

    /// Adds `brand` under its name, the names its spelling holds ([`brand_names`]) and
    /// `aliases`, read with `confidence` (see [`CatalogVocabulary::brand_confidence`]).
    /// A name two brands share goes to the brand added first: add the brands with the most
    /// products first.
    pub fn add_brand_with(&mut self, brand: &str, aliases: &[String], confidence: f64) {
        let names = brand_names(brand);
        for surface in names.iter().chain(aliases).map(String::as_str) {
            self.add_brand_surface(surface, brand);
        }
        self.brand_confidence.insert(brand.to_string(), confidence);
    }

    fn add_brand_surface(&mut self, surface: &str, brand: &str) {
        // One- or two-letter brands ("AW") would match ordinary words and units.
        if surface.chars().count() >= 3 || !surface.is_ascii() {
            self.brands.push((surface.to_string(), brand.to_string()));
        }
    }
}

/// Confidence in a category or brand the shopper stated as a constraint: "只看手机", "only Apple".
pub const STATED: f64 = 1.0;
/// Confidence in a category the query is about: the last thing it names ("跑步鞋", "小米手机"),
/// or followed only by a price, a preposition or a particle ("watch for men", "手机吗").
pub const HEAD_CATEGORY: f64 = 0.9;
/// Confidence in a category word that qualifies another word: "phone cover", "laptop battery".
pub const MODIFIER_CATEGORY: f64 = 0.4;

/// Words that state the next category or brand as a constraint.
const ONLY_MARKERS: &[&str] = &["只看", "只要", "只买", "只想要", "仅限", "only "];

/// Latin words that may follow the thing a query is about without naming another thing.
const TRAILING_WORDS: &[&str] = &[
    "for", "with", "under", "below", "above", "over", "less", "more", "than", "in", "from", "of",
    "to", "by", "at", "within", "between", "around", "about", "that", "which", "and", "or",
    "please", "cheap", "cheaper", "cheapest", "budget", "rs", "inr", "usd", "rupees", "dollars",
    "yuan", "near", "like", "on", "sale", "online",
];

/// Han words that may follow the thing a query is about without naming another thing.
const TRAILING_HAN: &[&str] = &[
    "的", "吗", "呢", "吧", "啊", "呀", "有", "在", "要", "多少", "价格", "推荐", "哪", "怎么",
    "和", "或", "以", "不", "低于", "便宜", "贵", "好", "左右", "价", "给", "可以", "买",
];

/// Whether the phrase ending at byte `end` is what the query is about, not a word that
/// qualifies the next one.
fn is_head(text: &str, end: usize) -> bool {
    let is_gap =
        |c: char| c.is_whitespace() || c.is_ascii_punctuation() || "，。？！、：；".contains(c);
    let rest = text[end..].trim_start_matches(is_gap);
    let Some(next) = rest.chars().next() else {
        return true;
    };
    if next.is_ascii_digit() || "¥￥$₹".contains(next) {
        return true;
    }
    if !next.is_ascii() {
        return TRAILING_HAN.iter().any(|word| rest.starts_with(word));
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    TRAILING_WORDS.contains(&word.as_str())
}

/// Whether the text before byte `start` states what follows as a constraint.
fn stated_as_constraint(text: &str, start: usize) -> bool {
    let before = &text[..start];
    ONLY_MARKERS.iter().any(|marker| before.contains(marker))
}

/// "phones" for "phone", "phone" for "phones" and "watch" for "watches", so either form of
/// a query matches.
fn number_variants(surface: &str) -> Vec<String> {
    let mut variants = vec![surface.to_string()];
    if !surface.is_ascii() || surface.len() < 4 {
        return variants;
    }
    let sibilant = |stem: &str| {
        ["ch", "sh", "x", "s", "z"]
            .iter()
            .any(|end| stem.ends_with(end))
    };
    if let Some(stem) = surface.strip_suffix("es")
        && sibilant(stem)
    {
        variants.push(stem.to_string());
    } else if let Some(singular) = surface.strip_suffix('s') {
        variants.push(singular.to_string());
    } else if sibilant(surface) {
        variants.push(format!("{surface}es"));
    } else {
        variants.push(format!("{surface}s"));
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

    /// The first hit only: a query reads one preference or colour, so it stops scanning there.
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

pub(super) static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:between|from)?\s*{CURRENCY}?\s*{NUMBER}\s*{CURRENCY}?\s*(?:-|~|–|到|至|and|to)\s*{CURRENCY}?\s*{NUMBER}\s*({CURRENCY})?"
    ))
    .expect("valid regex")
});
pub(super) static MAX_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:under|below|less than|cheaper than|up to|within|max(?:imum)?|no more than|at most|not more than|不超过|低于|少于|不到|小于|不高于|最多|预算)\s*({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?"
    ))
    .expect("valid regex")
});
pub(super) static MAX_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?\s*(?:以内|以下|之内|内|or less|or under|and under|and below|max)"
    ))
    .expect("valid regex")
});
pub(super) static MIN_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:over|above|more than|at least|高于|超过|大于|不低于|至少)\s*({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?"
    ))
    .expect("valid regex")
});
pub(super) static MIN_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?\s*(?:以上|起|or more|and up|and above|plus)"
    ))
    .expect("valid regex")
});
pub(super) static AROUND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:(?:around|about|approximately|roughly)\s*({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?|({CURRENCY})?\s*{NUMBER}\s*({CURRENCY})?\s*(?:左右|上下))"
    ))
    .expect("valid regex")
});
pub(super) static STORAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d+)\s*(gb|g|tb|t)\b").expect("valid regex"));
pub(super) static CURRENCY_WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(CURRENCY).expect("valid regex"));

/// Extracts [`Slots`] from query text.
pub struct SlotExtractor {
    pub(super) categories: DictionaryMatcher,
    pub(super) brands: DictionaryMatcher,
    brand_confidence: HashMap<String, f64>,
    pub(super) colours: DictionaryMatcher,
    pub(super) preferences: DictionaryMatcher,
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
            brand_confidence: vocabulary.brand_confidence.clone(),
            colours: DictionaryMatcher::new(colours),
            preferences: DictionaryMatcher::new(preferences),
        }
    }

    pub fn extract(&self, query: &str) -> Slots {
        let text = query.to_lowercase();
        // The category a query is about is its head noun, the first category word that does
        // not qualify a later one: "手机壳" is about 壳 (phone cases), not 手机.
        let categories = self.categories.find_all(&text);
        let category = categories
            .iter()
            .find(|hit| self.category_confidence(&text, hit) > MODIFIER_CATEGORY)
            .or(categories.first())
            .cloned();
        // A brand word inside the category's own name ("coffee" in "coffee mug") is not a brand.
        let brand = self.brands.find_all(&text).into_iter().find(|brand| {
            let outside_category = category
                .as_ref()
                .is_none_or(|category| brand.end <= category.start || brand.start >= category.end);
            // "only" in "only apple" states a constraint, even where a brand is called Only.
            let marker =
                ONLY_MARKERS.contains(&format!("{} ", &text[brand.start..brand.end]).as_str());
            outside_category && !marker
        });
        let mut slots = Slots {
            category_confidence: category
                .as_ref()
                .map(|hit| self.category_confidence(&text, hit)),
            category: category.map(|hit| hit.value.to_string()),
            brand_confidence: brand.as_ref().map(|hit| self.brand_confidence(&text, hit)),
            brand: brand.map(|hit| hit.value.to_string()),
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

    fn category_confidence(&self, text: &str, hit: &DictionaryHit) -> f64 {
        if stated_as_constraint(text, hit.start) {
            STATED
        } else if is_head(text, hit.end) {
            HEAD_CATEGORY
        } else {
            MODIFIER_CATEGORY
        }
    }

    fn brand_confidence(&self, text: &str, hit: &DictionaryHit) -> f64 {
        if stated_as_constraint(text, hit.start) {
            return STATED;
        }
        self.brand_confidence.get(hit.value).copied().unwrap_or(1.0) * HEAD_CATEGORY
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

    /// Checks the slots extracted from `query` against `expected` (as JSON), leaving the
    /// confidences to [`confidence_says_how_sure_a_reading_is`].
    fn check(extractor: &SlotExtractor, query: &str, expected: serde_json::Value) {
        let mut actual = serde_json::to_value(extractor.extract(query)).unwrap();
        let fields = actual.as_object_mut().unwrap();
        fields.remove("category_confidence");
        fields.remove("brand_confidence");
        assert_eq!(actual, expected, "{query}");
    }

    #[test]
    fn confidence_says_how_sure_a_reading_is() {
        let mut vocabulary = CatalogVocabulary::default();
        vocabulary.add_category("手机", &["mobile phone".to_string(), "phone".to_string()]);
        vocabulary.add_category("Coffee Mugs", &[]);
        vocabulary.add_category("鞋", &[]);
        vocabulary.add_category("Watches", &[]);
        vocabulary.add_brand_with("Xiaomi", &["小米".to_string()], 1.0);
        vocabulary.add_brand_with("Coffee", &[], 0.1);
        vocabulary.add_brand_with("Apple", &[], 0.5);
        vocabulary.add_brand_with("Only", &[], 0.5);
        for category in [
            "Wallets & Clutches",
            "手机保护套/壳",
            "Cargos, Shorts & 3/4ths",
        ] {
            vocabulary.add_category(category, &[]);
            vocabulary.add_category_parts(category);
        }
        let extractor = SlotExtractor::new(&vocabulary);
        // (query, category and its confidence, brand and its confidence)
        type Reading<'a> = Option<(&'a str, f64)>;
        let cases: [(&str, Reading, Reading); 14] = [
            ("跑步鞋", Some(("鞋", HEAD_CATEGORY)), None),
            (
                "小米手机",
                Some(("手机", HEAD_CATEGORY)),
                Some(("Xiaomi", 0.9)),
            ),
            ("只看手机", Some(("手机", STATED)), None),
            (
                "only apple phones",
                Some(("手机", STATED)),
                Some(("Apple", STATED)),
            ),
            (
                "apple phones",
                Some(("手机", HEAD_CATEGORY)),
                Some(("Apple", 0.45)),
            ),
            (
                "mobile phone cover",
                Some(("手机", MODIFIER_CATEGORY)),
                None,
            ),
            // The head noun names the category: 壳 of "手机保护套/壳", not 手机.
            ("手机壳", Some(("手机保护套/壳", HEAD_CATEGORY)), None),
            ("苹果手机壳", Some(("手机保护套/壳", HEAD_CATEGORY)), None),
            // A slash inside an English name is not a list: "3" is no category.
            ("iphone 3 under 500", None, None),
            ("watch for men", Some(("Watches", HEAD_CATEGORY)), None),
            // The brand "Coffee" is a word of the category's name, not a brand here.
            ("coffee mug", Some(("Coffee Mugs", HEAD_CATEGORY)), None),
            ("coffee", None, Some(("Coffee", 0.09))),
            // "only" states the constraint, though a brand is called Only.
            ("only apple", None, Some(("Apple", STATED))),
            (
                "wallet under 800",
                Some(("Wallets & Clutches", HEAD_CATEGORY)),
                None,
            ),
        ];
        for (query, category, brand) in cases {
            let slots = extractor.extract(query);
            let read = |value: Option<String>, confidence: Option<f64>| {
                value.map(|value| (value, (confidence.unwrap() * 100.0).round() / 100.0))
            };
            let expect = |slot: Option<(&str, f64)>| {
                slot.map(|(value, confidence)| {
                    (value.to_string(), (confidence * 100.0).round() / 100.0)
                })
            };
            assert_eq!(
                (
                    read(slots.category, slots.category_confidence),
                    read(slots.brand, slots.brand_confidence)
                ),
                (expect(category), expect(brand)),
                "{query}"
            );
        }
    }

    #[test]
    fn a_shared_brand_name_goes_to_the_brand_added_first() {
        let mut vocabulary = CatalogVocabulary::default();
        vocabulary.add_category("手机", &[]);
        for brand in ["MIUI/小米", "小米", "小米（家电）"] {
            vocabulary.add_brand_with(brand, &[], 1.0);
        }
        let extractor = SlotExtractor::new(&vocabulary);
        for query in ["小米的呢？", "miui手机", "小米手机"] {
            assert_eq!(
                extractor.extract(query).brand.as_deref(),
                Some("MIUI/小米"),
                "{query}"
            );
        }
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
