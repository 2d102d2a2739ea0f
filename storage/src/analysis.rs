//! Text analysis for product text in English, Chinese, and both at once ("iPhone 手机壳").
//!
//! Text splits into runs of Han characters and runs of other letters and digits; anything
//! else separates tokens. Latin runs become one token each; Han runs are segmented into words
//! by jieba (search mode, so "智能手机" also yields "手机") or into overlapping character
//! bigrams. The analyzer then lowercases, drops English stop words and applies Porter
//! stemming, which leave Han tokens untouched.

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

/// Whether `c` is a Han (Chinese) character.
pub fn is_han(c: char) -> bool {
    matches!(c,
        '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FA1F}')
}

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

impl Tokenizer for MixedTokenizer {
    type TokenStream<'a> = BufferedTokens;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> BufferedTokens {
        let mut tokens = Vec::new();
        let mut start = 0;
        let mut chars = text.char_indices().peekable();
        while let Some((offset, c)) = chars.next() {
            let run = run_of(c);
            let next_is_same = chars.peek().is_some_and(|&(_, next)| run_of(next) == run);
            if next_is_same {
                continue;
            }
            let end = offset + c.len_utf8();
            match run {
                Run::Word => push(&mut tokens, text, start, end),
                Run::Han => self.segment(&mut tokens, text, start, end),
                Run::Separator => {}
            }
            start = end;
        }
        BufferedTokens {
            tokens,
            next: 0,
            empty: Token::default(),
        }
    }
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
                let bounds: Vec<usize> = run
                    .char_indices()
                    .map(|(offset, _)| start + offset)
                    .chain([end])
                    .collect();
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
}
