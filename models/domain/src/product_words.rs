//! How catalogs name things: a bilingual dictionary of product and category words
//! (`data/product-words.tsv`), so query understanding reads a category named in one
//! language from the other's words, and the way a category's name lists its parts and a
//! brand's spelling holds its names.

use std::collections::HashMap;
use std::sync::LazyLock;

const WORDS: &str = include_str!("../data/product-words.tsv");

/// Every name → the other names of the same thing.
static TRANSLATIONS: LazyLock<HashMap<String, Vec<String>>> = LazyLock::new(|| parse(WORDS));

fn parse(text: &str) -> HashMap<String, Vec<String>> {
    let mut translations = HashMap::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let names: Vec<String> = line
            .split(['\t', '|'])
            .map(|name| name.trim().to_lowercase())
            // One Han character ("包", "书") sits inside too many other words to name a thing.
            .filter(|name| !name.is_empty() && (name.is_ascii() || name.chars().count() > 1))
            .collect();
        for name in &names {
            let others = names.iter().filter(|other| *other != name).cloned();
            translations
                .entry(name.clone())
                .or_insert_with(Vec::new)
                .extend(others);
        }
    }
    translations
}

/// The other names of `word` ("microwave ovens" → "微波炉"), found as written or as an
/// English singular; empty for a word the dictionary does not hold.
pub fn translations_of(word: &str) -> &'static [String] {
    let word = word.trim().to_lowercase();
    let singulars = [word.strip_suffix("es"), word.strip_suffix('s')];
    std::iter::once(Some(word.as_str()))
        .chain(singulars)
        .flatten()
        .find_map(|form| TRANSLATIONS.get(form))
        .map_or(&[], Vec::as_slice)
}

/// The dictionary's names for a catalog category, in the other language and this one:
/// names of the whole ("Microwave Ovens" → "微波炉"), and for a Chinese name also of its
/// parts ("手机保护套/壳" → "phone case"): a Chinese slash joins two names of one thing, while
/// an English list joins related things ("Mobiles & Accessories" holds no phones).
pub fn names_of_category(category: &str) -> Vec<String> {
    let chinese = !category.is_ascii();
    let parts = if chinese {
        category_parts(category)
    } else {
        Vec::new()
    };
    let mut names: Vec<String> = Vec::new();
    for name in std::iter::once(category)
        .chain(parts)
        .flat_map(translations_of)
    {
        if name != category && !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The parts of a category named as a list: "Wallets & Clutches", "Bangles, Bracelets &
/// Armlets", or in a Chinese marketplace's way "手机保护套/壳". Empty for a single name.
pub fn category_parts(category: &str) -> Vec<&str> {
    // In English names a slash is part of a word ("Cargos, Shorts & 3/4ths").
    let chinese = !category.is_ascii();
    let separators: &[char] = if chinese {
        &[',', '&', '/']
    } else {
        &[',', '&']
    };
    let parts: Vec<&str> = category
        .split(separators)
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    if parts.len() < 2 {
        return Vec::new();
    }
    parts
}

/// The names a brand is spelled with. Chinese marketplaces write a brand as its Latin and
/// Chinese names joined by a slash, sometimes with the seller's note in brackets:
/// "MIUI/小米", "Apple/苹果", "小米（家电）". A shopper types one of the names: "小米的呢？".
pub fn brand_names(brand: &str) -> Vec<String> {
    let without_note = brand.split(['（', '(']).next().unwrap_or(brand).trim();
    let mut names = vec![brand.trim().to_string()];
    for name in std::iter::once(without_note).chain(without_note.split('/')) {
        let name = name.trim();
        if !name.is_empty() && !names.iter().any(|known| known == name) {
            names.push(name.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that `given` holds exactly the names `expected`, in any order.
    fn assert_same_names(mut given: Vec<String>, expected: &[&str], case: &str) {
        let mut expected: Vec<String> = expected.iter().map(|name| name.to_string()).collect();
        given.sort();
        expected.sort();
        assert_eq!(given, expected, "{case}");
    }

    #[test]
    fn words_translate_both_ways() {
        let cases: [(&str, &[&str]); 5] = [
            ("microwave ovens", &["microwave", "微波炉"]),
            ("微波炉", &["microwave", "microwave oven"]),
            (
                "Laptops",
                &["notebook computer", "notebook", "笔记本电脑", "笔记本"],
            ),
            ("book", &["图书"]),
            ("spaceship", &[]),
        ];
        for (word, expected) in cases {
            assert_same_names(translations_of(word).to_vec(), expected, word);
        }
    }

    #[test]
    fn a_category_is_named_by_its_words_and_a_chinese_names_parts() {
        let cases: [(&str, &[&str]); 3] = [
            ("Microwave Ovens", &["microwave", "微波炉"]),
            (
                "手机保护套/壳",
                &[
                    "phone case",
                    "phone cover",
                    "mobile cover",
                    "mobile case",
                    "手机壳",
                    "手机套",
                ],
            ),
            ("Mobiles & Accessories", &[]),
        ];
        for (category, expected) in cases {
            assert_same_names(names_of_category(category), expected, category);
        }
    }

    #[test]
    fn brand_names_come_from_the_marketplace_spelling() {
        let cases: [(&str, &[&str]); 5] = [
            ("Xiaomi", &["Xiaomi"]),
            ("MIUI/小米", &["MIUI/小米", "MIUI", "小米"]),
            ("小米（家电）", &["小米（家电）", "小米"]),
            ("Kaia（数码）", &["Kaia（数码）", "Kaia"]),
            ("G－VOr/杰沃 ", &["G－VOr/杰沃", "G－VOr", "杰沃"]),
        ];
        for (brand, expected) in cases {
            assert_eq!(brand_names(brand), expected, "{brand}");
        }
    }

    #[test]
    fn category_parts_split_lists_not_words() {
        let cases: [(&str, &[&str]); 4] = [
            ("Wallets & Clutches", &["Wallets", "Clutches"]),
            ("手机保护套/壳", &["手机保护套", "壳"]),
            ("Cargos, Shorts & 3/4ths", &["Cargos", "Shorts", "3/4ths"]),
            ("Mobiles", &[]),
        ];
        for (category, expected) in cases {
            assert_eq!(category_parts(category), expected, "{category}");
        }
    }
}
