//! Text analysis for product text in English, Chinese, and both at once ("iPhone 手机壳").
//!
//! Text splits into runs of Han characters and runs of other letters and digits; anything
//! else separates tokens. Latin runs become one token each; Han runs are segmented into words
//! by jieba (search mode, so "智能手机" also yields "手机") or into overlapping character
//! bigrams. The analyzer then lowercases, drops English stop words and applies Porter
//! stemming, which leave Han tokens untouched.
//!
//! A second analyzer, [`han_grams_analyzer`], turns only the Han text into single characters
//! and neighbouring pairs. Short, misspelt or unusually segmented Chinese queries ("薯愿" for
//! a brand jieba splits differently, a dropped character, a model-number fragment) still
//! share characters and pairs with the titles they mean, where whole words would not match.

use std::sync::LazyLock;

use jieba_rs::Jieba;
use serde::{Deserialize, Serialize};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, Stemmer, StopWordFilter, TextAnalyzer, Token,
    TokenStream, Tokenizer,
};

/// jieba's dictionary takes a moment to load, so every analyzer shares one.
static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// How runs of Han characters become tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChineseSegmentation {
    /// Dictionary word segmentation (jieba-rs, search mode).
    #[default]
    Jieba,
    /// Overlapping pairs of characters; a lone character stays a unigram.
    Bigram,
}

impl ChineseSegmentation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jieba => "jieba",
            Self::Bigram => "bigram",
        }
    }
}

/// The analyzer product text is indexed and searched with.
pub fn product_text_analyzer(segmentation: ChineseSegmentation) -> TextAnalyzer {
    TextAnalyzer::builder(MixedTokenizer { segmentation })
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(Language::English).expect("tantivy ships English stop words"))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The analyzer of the Han n-gram field: every Han character and every pair of neighbouring
/// Han characters; Latin words and digits yield nothing (the word fields hold them).
pub fn han_grams_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(HanGramTokenizer).build()
}

/// The terms `text` is indexed (or searched) as, in order, duplicates kept.
pub fn analyze(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while stream.advance() {
        terms.push(stream.token().text.clone());
    }
    terms
}

#[derive(Clone)]
struct MixedTokenizer {
    segmentation: ChineseSegmentation,
}

pub use inkling_domain::is_han;

#[derive(PartialEq)]
enum Run {
    Han,
    Word,
    Separator,
}

fn run_of(c: char) -> Run {
    if is_han(c) {
        Run::Han
    } else if c.is_alphanumeric() {
        Run::Word
    } else {
        Run::Separator
    }
}

/// The maximal runs of one kind in `text`, as byte ranges.
fn runs(text: &str) -> Vec<(Run, usize, usize)> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        let run = run_of(c);
        let next_is_same = chars.peek().is_some_and(|&(_, next)| run_of(next) == run);
        if next_is_same {
            continue;
        }
        let end = offset + c.len_utf8();
        runs.push((run, start, end));
        start = end;
    }
    runs
}

impl Tokenizer for MixedTokenizer {
    type TokenStream<'a> = BufferedTokens;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> BufferedTokens {
        let mut tokens = Vec::new();
        for (run, start, end) in runs(text) {
            match run {
                Run::Word => push(&mut tokens, text, start, end),
                Run::Han => self.segment(&mut tokens, text, start, end),
                Run::Separator => {}
            }
        }
        BufferedTokens::new(tokens)
    }
}

#[derive(Clone)]
struct HanGramTokenizer;

impl Tokenizer for HanGramTokenizer {
    type TokenStream<'a> = BufferedTokens;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> BufferedTokens {
        let mut tokens = Vec::new();
        for (run, start, end) in runs(text) {
            if run != Run::Han {
                continue;
            }
            let bounds = char_bounds(text, start, end);
            for single in bounds.windows(2) {
                push(&mut tokens, text, single[0], single[1]);
            }
            for pair in bounds.windows(3) {
                push(&mut tokens, text, pair[0], pair[2]);
            }
        }
        BufferedTokens::new(tokens)
    }
}

/// The byte offsets of every character boundary in `text[start..end]`, both ends included.
fn char_bounds(text: &str, start: usize, end: usize) -> Vec<usize> {
    text[start..end]
        .char_indices()
        .map(|(offset, _)| start + offset)
        .chain([end])
        .collect()
}

impl MixedTokenizer {
    fn segment(&self, tokens: &mut Vec<Token>, text: &str, start: usize, end: usize) {
        let run = &text[start..end];
        match self.segmentation {
            ChineseSegmentation::Jieba => {
                for word in JIEBA.cut_for_search(run, true) {
                    push(tokens, text, start + word.byte_start, start + word.byte_end);
                }
            }
            ChineseSegmentation::Bigram => {
                let bounds = char_bounds(text, start, end);
                if bounds.len() == 2 {
                    push(tokens, text, bounds[0], bounds[1]);
                }
                for pair in bounds.windows(3) {
                    push(tokens, text, pair[0], pair[2]);
                }
            }
        }
    }
}

fn push(tokens: &mut Vec<Token>, text: &str, from: usize, to: usize) {
    tokens.push(Token {
        offset_from: from,
        offset_to: to,
        position: tokens.len(),
        text: text[from..to].to_string(),
        position_length: 1,
    });
}

struct BufferedTokens {
    tokens: Vec<Token>,
    next: usize,
    empty: Token,
}

impl BufferedTokens {
    fn new(tokens: Vec<Token>) -> Self {
        Self {
            tokens,
            next: 0,
            empty: Token::default(),
        }
    }
}

impl TokenStream for BufferedTokens {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        self.tokens
            .get(self.next.wrapping_sub(1))
            .unwrap_or(&self.empty)
    }

    fn token_mut(&mut self) -> &mut Token {
        match self.tokens.get_mut(self.next.wrapping_sub(1)) {
            Some(token) => token,
            None => &mut self.empty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(segmentation: ChineseSegmentation, text: &str, expected: &[&str]) {
        let mut analyzer = product_text_analyzer(segmentation);
        assert_eq!(analyze(&mut analyzer, text), expected, "{text:?}");
    }

    #[test]
    fn analysis_cases() {
        use ChineseSegmentation::{Bigram, Jieba};
        let cases: &[(ChineseSegmentation, &str, &[&str])] = &[
            (Jieba, "The Running Shoes", &["run", "shoe"]),
            (Jieba, "12-Gauge Angle", &["12", "gaug", "angl"]),
            (Jieba, "iPhone 手机壳", &["iphon", "手机", "壳"]),
            (Jieba, "iPhone手机壳", &["iphon", "手机", "壳"]),
            (Jieba, "智能手机", &["智能", "能手", "手机", "智能手机"]),
            (Bigram, "智能手机", &["智能", "能手", "手机"]),
            (Bigram, "壳 a", &["壳"]),
            (Jieba, "", &[]),
            (Jieba, "  ,,, ", &[]),
        ];
        for (segmentation, text, expected) in cases {
            check(*segmentation, text, expected);
        }
    }

    #[test]
    fn han_grams_cases() {
        let cases: &[(&str, &[&str])] = &[
            ("手机壳", &["手", "机", "壳", "手机", "机壳"]),
            ("iPhone 手机", &["手", "机", "手机"]),
            ("壳 a 套", &["壳", "套"]),
            ("Running Shoes 2024", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(
                analyze(&mut han_grams_analyzer(), text),
                *expected,
                "{text:?}"
            );
        }
    }
}
