//! What a turn asks for besides its constraints: the words that name a product need.
//!
//! A follow-up such as "有没有8000元以内的？" or "cheaper ones in red?" is made only of
//! constraints and filler, so it keeps the previous turn's need, whether or not that need
//! was mapped to a category. A turn with words left over ("running shoes under 1500")
//! names a need of its own.

use serde::{Deserialize, Serialize};

use super::slots::{
    AROUND, CURRENCY_WORD, MAX_AFTER, MAX_BEFORE, MIN_AFTER, MIN_BEFORE, RANGE, STORAGE,
    SlotExtractor,
};

/// Chinese words that ask or point without naming anything, longest first so a longer
/// filler is removed before a character inside it.
#[rustfmt::skip]
const HAN_FILLER: &[&str] = &[
    "还有没有", "有没有", "有木有", "能不能", "我想要", "我想找", "看一下", "我想", "我要", "想要", "给我", "帮我", "推荐", "看看",
    "一下", "一些", "一款", "一个", "有点", "一点", "别的", "其他", "还有", "可以", "是否", "那种", "这种", "那个", "这个",
    "的话", "价格", "价位", "预算", "以内", "以下", "以上", "左右", "呢", "吗", "吧", "啊", "呀", "哦", "的", "要", "找",
    "有", "看", "再", "更", "点", "些", "款", "个", "只", "那", "这", "买", "请", "高", "最",
];

/// English words that ask or point without naming anything.
#[rustfmt::skip]
const ENGLISH_FILLER: &[&str] = &[
    "a", "about", "above", "also", "an", "and", "any", "anything", "are", "around", "at",
    "below", "but", "can", "could", "cost", "costs", "do", "else", "find", "for", "get", "got",
    "has", "have", "how", "i", "in", "instead", "is", "it", "just", "k", "less", "like",
    "looking", "maybe", "me", "more", "need", "of", "ok", "okay", "one", "ones", "only",
    "option", "options", "or", "other", "others", "over", "please", "price", "priced", "see",
    "show", "some", "something", "still", "than", "that", "the", "them", "then", "there",
    "these", "those", "to", "too", "under", "want", "what", "whats", "with", "within", "would",
    "you",
];

/// What a follow-up names that a search can match in titles: a brand ("OPPO的呢"), a colour
/// ("in red?") or a category, by kind, in the query's own spelling.
pub type Mentions = Vec<(MentionKind, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MentionKind {
    Category,
    Brand,
    Colour,
}

impl SlotExtractor {
    /// The brand, colour and category words of `query`, as written.
    pub fn mentions(&self, query: &str) -> Mentions {
        let text = query.to_lowercase();
        let kinds = [
            (MentionKind::Category, &self.categories),
            (MentionKind::Brand, &self.brands),
            (MentionKind::Colour, &self.colours),
        ];
        kinds
            .into_iter()
            .flat_map(|(kind, dictionary)| {
                let hits = dictionary.find_all(&text);
                let text = &text;
                hits.into_iter()
                    .map(move |hit| (kind, text[hit.start..hit.end].to_string()))
            })
            .collect()
    }

    /// The words of `query` that are neither a constraint this extractor reads (category,
    /// brand, colour, preference, price, storage) nor filler, joined by spaces; empty for a
    /// pure follow-up.
    pub fn product_words(&self, query: &str) -> String {
        let text = query.to_lowercase();
        let mut covered = vec![false; text.len()];
        let mut cover = |start: usize, end: usize| covered[start..end].fill(true);
        let dictionaries = [
            &self.categories,
            &self.brands,
            &self.colours,
            &self.preferences,
        ];
        for dictionary in dictionaries {
            for hit in dictionary.find_all(&text) {
                cover(hit.start, hit.end);
            }
        }
        let patterns = [
            &RANGE,
            &MAX_BEFORE,
            &MAX_AFTER,
            &MIN_BEFORE,
            &MIN_AFTER,
            &AROUND,
            &STORAGE,
            &CURRENCY_WORD,
        ];
        for pattern in patterns {
            for found in pattern.find_iter(&text) {
                cover(found.start(), found.end());
            }
        }
        let mut rest: String = text
            .char_indices()
            .map(|(at, c)| if covered[at] { ' ' } else { c })
            .collect();
        for filler in HAN_FILLER {
            rest = rest.replace(filler, " ");
        }
        rest.split(|c: char| !c.is_alphanumeric())
            .filter(|word| !word.is_empty())
            .filter(|word| !ENGLISH_FILLER.contains(word))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::MentionKind;
    use crate::intent::{CatalogVocabulary, SlotExtractor};

    #[test]
    fn follow_ups_name_no_product_and_new_needs_do() {
        let mut vocabulary = CatalogVocabulary::default();
        vocabulary.add_category("手机", &["phone".to_string()]);
        vocabulary.add_brand("Apple");
        let extractor = SlotExtractor::new(&vocabulary);
        let cases = [
            ("有没有8000元以内的？", ""),
            ("1500以内的呢", ""),
            ("便宜点的", ""),
            ("性价比高一点的", ""),
            ("有没有红色的", ""),
            ("cheaper ones?", ""),
            ("under 1500", ""),
            ("any in red under $50?", ""),
            ("what about Apple?", ""),
            ("只看手机", ""),
            ("running shoes under 1500", "running shoes"),
            ("运动鞋", "运动鞋"),
            ("有没有蓝牙耳机", "蓝牙耳机"),
            ("red dress", "dress"),
            // A number outside a price is a model number or a size: something to search for.
            ("2430", "2430"),
            ("有没有64的", "64"),
        ];
        for (query, expected) in cases {
            assert_eq!(extractor.product_words(query), expected, "{query}");
        }
    }

    #[test]
    fn mentions_are_brands_colours_and_categories_as_written() {
        let mut vocabulary = CatalogVocabulary::default();
        vocabulary.add_category("手机", &["phone".to_string()]);
        vocabulary.add_brand("OPPO");
        let extractor = SlotExtractor::new(&vocabulary);
        let cases: [(&str, &[(MentionKind, &str)]); 3] = [
            ("OPPO的呢", &[(MentionKind::Brand, "oppo")]),
            (
                "any red phone?",
                &[
                    (MentionKind::Category, "phone"),
                    (MentionKind::Colour, "red"),
                ],
            ),
            ("under 1500", &[]),
        ];
        for (query, expected) in cases {
            let expected: Vec<(MentionKind, String)> = expected
                .iter()
                .map(|(kind, word)| (*kind, word.to_string()))
                .collect();
            assert_eq!(extractor.mentions(query), expected, "{query}");
        }
    }
}
