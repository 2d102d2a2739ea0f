//! Why an item is shown: a stable code with its parameters, rendered as text in the
//! shopper's language.
//!
//! A storefront keys its own wording or icons on [`Reason::code`] and reads the values it
//! needs from the parameters; the text is for the ones that show it as it is. Codes are part
//! of the public API: rename one only with a new API version.

use serde::{Deserialize, Serialize};

/// The languages reasons are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    #[default]
    En,
    Zh,
}

impl Language {
    /// Every language, in the order a tie is broken.
    pub const ALL: [Language; 2] = [Language::En, Language::Zh];

    /// The language's primary subtag, as in `Accept-Language`.
    pub fn tag(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Zh => "zh",
        }
    }
}

/// One reason an item is shown. Serialised with its `code` beside its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// The product's text holds the words of the search.
    MatchesSearch { query: String },
    /// The product is close in meaning to the search, without its words.
    CloseInMeaning { query: String },
    /// The shopper has been viewing products of this category.
    BrowsingCategory { category: String },
    /// The shopper has shown interest in this brand.
    InterestInBrand { brand: String },
    /// The price sits where the shopper usually buys.
    UsualPriceRange,
    /// The product's rating, out of 5.
    Rated { rating: f32 },
    /// The shopper viewed the product in this session.
    SeenRecently,
    /// The price is within the budget the shopper stated.
    WithinBudget { amount: f64, currency: String },
    /// Rated well for its price (the shopper asked for value).
    GoodValue {
        rating: f32,
        price: f64,
        currency: String,
    },
    /// Among the cheaper matches (the shopper asked for a low price).
    LowPrice { price: f64, currency: String },
    /// Among the dearer matches (the shopper asked for premium).
    Premium,
    /// Among the best-rated matches (the shopper asked for the best rated).
    TopRated { rating: f32 },
    /// Shoppers whose sessions resemble this one viewed it.
    SimilarSessions,
    /// Many shoppers viewed it after the named product.
    ViewedAfter { title: String },
    /// Often bought together with the named product.
    BoughtTogether { title: String },
    /// Popular across the catalog right now.
    PopularNow,
    /// Popular today within the named category.
    PopularInCategory { category: String },
    /// Popular with shoppers of the same segment.
    PopularInSegment,
    /// Similar to the product whose page the shopper is on.
    SimilarToPage { title: String },
    /// Similar to a product the shopper viewed.
    SimilarToViewed { title: String },
    /// Among the best-rated products of the catalog.
    AmongBestRated,
}

impl Reason {
    /// The stable code, as serialised.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::MatchesSearch { .. } => "matches_search",
            Reason::CloseInMeaning { .. } => "close_in_meaning",
            Reason::BrowsingCategory { .. } => "browsing_category",
            Reason::InterestInBrand { .. } => "interest_in_brand",
            Reason::UsualPriceRange => "usual_price_range",
            Reason::Rated { .. } => "rated",
            Reason::SeenRecently => "seen_recently",
            Reason::WithinBudget { .. } => "within_budget",
            Reason::GoodValue { .. } => "good_value",
            Reason::LowPrice { .. } => "low_price",
            Reason::Premium => "premium",
            Reason::TopRated { .. } => "top_rated",
            Reason::SimilarSessions => "similar_sessions",
            Reason::ViewedAfter { .. } => "viewed_after",
            Reason::BoughtTogether { .. } => "bought_together",
            Reason::PopularNow => "popular_now",
            Reason::PopularInCategory { .. } => "popular_in_category",
            Reason::PopularInSegment => "popular_in_segment",
            Reason::SimilarToPage { .. } => "similar_to_page",
            Reason::SimilarToViewed { .. } => "similar_to_viewed",
            Reason::AmongBestRated => "among_best_rated",
        }
    }

    /// Whether the reason states the product's rating (so another one need not).
    pub fn states_rating(&self) -> bool {
        matches!(
            self,
            Reason::Rated { .. } | Reason::GoodValue { .. } | Reason::TopRated { .. }
        )
    }

    /// The reason as a sentence fragment in `language`.
    pub fn text(&self, language: Language) -> String {
        match language {
            Language::En => self.english(),
            Language::Zh => self.chinese(),
        }
    }

    fn english(&self) -> String {
        match self {
            Reason::MatchesSearch { query } => format!("matches your search \"{query}\""),
            Reason::CloseInMeaning { query } => {
                format!("close in meaning to your search \"{query}\"")
            }
            Reason::BrowsingCategory { category } => format!("you have been browsing {category}"),
            Reason::InterestInBrand { brand } => format!("you showed interest in {brand}"),
            Reason::UsualPriceRange => "in your usual price range".to_string(),
            Reason::Rated { rating } => format!("rated {rating:.1}/5"),
            Reason::SeenRecently => "you looked at this recently".to_string(),
            Reason::WithinBudget { amount, currency } => {
                format!("within your {} budget", money(*amount, currency))
            }
            Reason::GoodValue {
                rating,
                price,
                currency,
            } => format!(
                "good value: rated {rating:.1}/5 at {}",
                money(*price, currency)
            ),
            Reason::LowPrice { price, currency } => {
                format!("low price: {}", money(*price, currency))
            }
            Reason::Premium => "a premium pick".to_string(),
            Reason::TopRated { rating } => format!("top rated: {rating:.1}/5"),
            Reason::SimilarSessions => "shoppers with sessions like yours viewed this".to_string(),
            Reason::ViewedAfter { title } => format!("viewed after {title} by many shoppers"),
            Reason::BoughtTogether { title } => format!("often bought together with {title}"),
            Reason::PopularNow => "popular right now".to_string(),
            Reason::PopularInCategory { category } => format!("popular in {category} today"),
            Reason::PopularInSegment => "popular with shoppers like you".to_string(),
            Reason::SimilarToPage { title } => format!("similar to {title}"),
            Reason::SimilarToViewed { title } => format!("similar to {title}, which you viewed"),
            Reason::AmongBestRated => "among the best-rated products".to_string(),
        }
    }

    fn chinese(&self) -> String {
        match self {
            Reason::MatchesSearch { query } => format!("符合您的搜索「{query}」"),
            Reason::CloseInMeaning { query } => format!("与您的搜索「{query}」意思相近"),
            Reason::BrowsingCategory { category } => format!("您最近在浏览{category}"),
            Reason::InterestInBrand { brand } => format!("您关注过{brand}"),
            Reason::UsualPriceRange => "在您常买的价位内".to_string(),
            Reason::Rated { rating } => format!("评分 {rating:.1}/5"),
            Reason::SeenRecently => "您最近看过".to_string(),
            Reason::WithinBudget { amount, currency } => {
                format!("在您 {} 的预算内", money(*amount, currency))
            }
            Reason::GoodValue {
                rating,
                price,
                currency,
            } => format!("性价比高：{} 评分 {rating:.1}/5", money(*price, currency)),
            Reason::LowPrice { price, currency } => {
                format!("价格低：{}", money(*price, currency))
            }
            Reason::Premium => "高端之选".to_string(),
            Reason::TopRated { rating } => format!("好评如潮：{rating:.1}/5"),
            Reason::SimilarSessions => "和您浏览相似的顾客看过".to_string(),
            Reason::ViewedAfter { title } => format!("很多顾客看完{title}后看了它"),
            Reason::BoughtTogether { title } => format!("常与{title}一起购买"),
            Reason::PopularNow => "当下热门".to_string(),
            Reason::PopularInCategory { category } => format!("今日{category}热门"),
            Reason::PopularInSegment => "与您相似的顾客喜欢".to_string(),
            Reason::SimilarToPage { title } => format!("与{title}相似"),
            Reason::SimilarToViewed { title } => format!("与您看过的{title}相似"),
            Reason::AmongBestRated => "全站评分最高之一".to_string(),
        }
    }
}

/// An amount with its currency sign and thousands separators, e.g. "¥8,000" or "₹20,000".
pub fn money(amount: f64, currency: &str) -> String {
    let sign = match currency {
        "CNY" => "¥",
        "USD" => "$",
        "INR" => "₹",
        "EUR" => "€",
        other => other,
    };
    let whole = amount.round() as i64;
    let digits = whole.abs().to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let minus = if whole < 0 { "-" } else { "" };
    format!("{minus}{sign}{grouped}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_reads_in_each_language_and_serialises_its_code_beside_its_parameters() {
        let cases = [
            (
                Reason::WithinBudget {
                    amount: 4000.0,
                    currency: "CNY".into(),
                },
                "within your ¥4,000 budget",
                "在您 ¥4,000 的预算内",
                r#"{"code":"within_budget","amount":4000.0,"currency":"CNY"}"#,
            ),
            (
                Reason::Rated { rating: 4.5 },
                "rated 4.5/5",
                "评分 4.5/5",
                r#"{"code":"rated","rating":4.5}"#,
            ),
            (
                Reason::PopularNow,
                "popular right now",
                "当下热门",
                r#"{"code":"popular_now"}"#,
            ),
        ];
        for (reason, english, chinese, json) in cases {
            assert_eq!(reason.text(Language::En), english);
            assert_eq!(reason.text(Language::Zh), chinese);
            assert_eq!(serde_json::to_string(&reason).unwrap(), json);
            assert_eq!(
                serde_json::from_str::<Reason>(json).unwrap(),
                reason,
                "{json}"
            );
            assert_eq!(
                serde_json::to_value(&reason).unwrap()["code"],
                reason.code()
            );
        }
    }

    #[test]
    fn money_groups_thousands_and_signs_the_currency() {
        let cases = [
            (8000.0, "CNY", "¥8,000"),
            (20000.4, "INR", "₹20,000"),
            (999.0, "USD", "$999"),
            (1234567.0, "GBP", "GBP1,234,567"),
            (-1500.0, "EUR", "-€1,500"),
        ];
        for (amount, currency, expected) in cases {
            assert_eq!(money(amount, currency), expected);
        }
    }
}
