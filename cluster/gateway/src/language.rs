//! The language a shopper reads reasons in, from the request's `Accept-Language` header.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::header::ACCEPT_LANGUAGE;
use axum::http::request::Parts;
use inkling_domain::Language;

/// The language of the answer's reason texts: the first supported language the request
/// accepts, by quality; English when it names none (or sends no header).
pub struct ShopperLanguage(pub Language);

impl<S: Send + Sync> FromRequestParts<S> for ShopperLanguage {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        Ok(Self(preferred(header)))
    }
}

/// The first language of `Language::ALL` whose primary subtag the header accepts with a
/// quality above zero, in the header's order of preference ("zh-CN" accepts `zh`).
fn preferred(header: &str) -> Language {
    accept_language::parse_with_quality(header)
        .into_iter()
        .filter(|(_, quality)| *quality > 0.0)
        .find_map(|(tag, _)| {
            let primary = tag.split('-').next().unwrap_or_default();
            Language::ALL
                .into_iter()
                .find(|language| primary.eq_ignore_ascii_case(language.tag()))
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_preferred_supported_language_wins() {
        let cases = [
            ("", Language::En),
            ("zh-CN,zh;q=0.9,en;q=0.8", Language::Zh),
            ("en-US,en;q=0.9,zh-CN;q=0.8", Language::En),
            ("fr-FR, zh;q=0.5, en;q=0.3", Language::Zh),
            ("ZH-hant", Language::Zh),
            ("zh;q=0, en", Language::En),
            ("de, fr", Language::En),
            ("*", Language::En),
            (";;;q=,,", Language::En),
        ];
        for (header, expected) in cases {
            assert_eq!(preferred(header), expected, "{header:?}");
        }
    }
}
