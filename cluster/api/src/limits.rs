//! Every size limit of the public API, in one place. The README's "HTTP API v1" section
//! documents the same table; change both together.
//!
//! String limits count bytes of UTF-8, not characters: `手` is three bytes.

/// Largest batch of products or events one request may carry.
pub const MAX_BATCH: usize = 10_000;
/// Largest `k` a search or recommendation may ask for.
pub const MAX_K: usize = 200;
/// Largest request body.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Every id: user, session, event (the idempotency key), item and product ids.
pub const MAX_ID_BYTES: usize = 128;
/// A product title.
pub const MAX_TITLE_BYTES: usize = 1024;
/// A search query, in `POST /v1/search` and in `search` events.
pub const MAX_QUERY_BYTES: usize = 1024;
/// One level of a product's category path, and `filters.category`.
pub const MAX_CATEGORY_BYTES: usize = 128;
/// Levels of a product's category path.
pub const MAX_CATEGORY_LEVELS: usize = 8;
/// A product's brand, and `filters.brand`.
pub const MAX_BRAND_BYTES: usize = 128;
/// A currency is an ISO 4217 code: exactly three uppercase letters.
pub const CURRENCY_BYTES: usize = 3;
/// The key of one product attribute.
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 64;
/// The value of one product attribute.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 256;
/// Attributes of one product.
pub const MAX_ATTRIBUTES: usize = 64;
/// Alternatives one filter field may list (`filters.brand: [...]`).
pub const MAX_FILTER_VALUES: usize = 32;
/// Largest `offset` a search may page to: pages come from the best matches, and shoppers
/// do not read past the first few hundred.
pub const MAX_OFFSET: usize = 1000;
/// Largest `position` an event may quote: the last place of the deepest page.
pub const MAX_POSITION: u32 = (MAX_OFFSET + MAX_K) as u32;

/// The latest time a product may carry (`listed_at_ms`): the last millisecond of the year
/// 9999, so every accepted time is a date a calendar can show.
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// Seconds a client should wait before retrying a 503 `overloaded` answer.
pub const RETRY_AFTER_OVERLOADED_SECS: u64 = 1;
/// Seconds a client should wait before retrying a 503 `unavailable` answer.
pub const RETRY_AFTER_UNAVAILABLE_SECS: u64 = 1;

/// A validation failure, as a message that names the field by its path in the request.
pub type Invalid = String;

/// A required string: present, not blank, and at most `max` bytes.
pub fn required(path: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.trim().is_empty() {
        return Err(format!("`{path}` must not be empty"));
    }
    at_most(path, value, max)
}

/// An ISO 4217 code: exactly three uppercase letters.
pub fn currency(path: &str, value: &str) -> Result<(), Invalid> {
    at_most(path, value, CURRENCY_BYTES)?;
    if value.len() == CURRENCY_BYTES && value.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return Ok(());
    }
    Err(format!(
        "`{path}` must be a 3-letter ISO code such as CNY, got {value:?}"
    ))
}

/// An id (user, session, event, item, product): required, at most [`MAX_ID_BYTES`], and
/// free of control characters (NUL included), which no id needs and which break logs,
/// keys and the tools that read them.
pub fn id(path: &str, value: &str) -> Result<(), Invalid> {
    required(path, value, MAX_ID_BYTES)?;
    printable(path, value)
}

/// An optional id: when present, at most [`MAX_ID_BYTES`] and free of control characters.
/// Whether it may be blank is the domain's rule, checked after conversion.
pub fn optional_id(path: &str, value: Option<&str>) -> Result<(), Invalid> {
    value.map_or(Ok(()), |value| {
        at_most(path, value, MAX_ID_BYTES)?;
        printable(path, value)
    })
}

/// No control character (`char::is_control`: NUL, newlines, escapes, C1 controls).
pub fn printable(path: &str, value: &str) -> Result<(), Invalid> {
    match value.chars().find(|character| character.is_control()) {
        Some(control) => Err(format!(
            "`{path}` contains the control character U+{:04X}; ids may not",
            u32::from(control)
        )),
        None => Ok(()),
    }
}

/// The times, in milliseconds since the Unix epoch, a node accepts for an event: from
/// `earliest_ms` to `latest_ms`, both included. Times outside would distort what every
/// shopper sees (popularity counters, recency decay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub earliest_ms: u64,
    pub latest_ms: u64,
}

impl TimeWindow {
    /// `past_ms` before `now_ms` to `future_ms` after it.
    pub fn around(now_ms: u64, past_ms: u64, future_ms: u64) -> Self {
        Self {
            earliest_ms: now_ms.saturating_sub(past_ms),
            latest_ms: now_ms.saturating_add(future_ms),
        }
    }

    /// `value_ms` inside the window, or a message naming the field and the window.
    pub fn check(&self, path: &str, value_ms: u64) -> Result<(), Invalid> {
        if (self.earliest_ms..=self.latest_ms).contains(&value_ms) {
            return Ok(());
        }
        Err(format!(
            "`{path}` is {value_ms}, outside the accepted range {} to {} (milliseconds since \
             the Unix epoch: the server's clock minus its event window to plus its allowed \
             skew); omit it to use the server's clock",
            self.earliest_ms, self.latest_ms
        ))
    }
}

/// An optional string: when present, at most `max` bytes. Whether it may be blank is the
/// domain's rule, checked after conversion.
pub fn optional(path: &str, value: Option<&str>, max: usize) -> Result<(), Invalid> {
    value.map_or(Ok(()), |value| at_most(path, value, max))
}

/// At most `max` bytes of UTF-8.
pub fn at_most(path: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.len() > max {
        return Err(format!("`{path}` is longer than {max} bytes"));
    }
    Ok(())
}

/// At most `max` entries in a list or map.
pub fn at_most_entries(path: &str, len: usize, max: usize) -> Result<(), Invalid> {
    if len > max {
        return Err(format!(
            "`{path}` holds {len} entries; at most {max} are allowed"
        ));
    }
    Ok(())
}

/// A batch: not empty, and at most [`MAX_BATCH`] entries.
pub fn batch(path: &str, len: usize) -> Result<(), Invalid> {
    if len == 0 {
        return Err(format!("`{path}` must not be empty"));
    }
    if len > MAX_BATCH {
        return Err(format!(
            "`{path}` holds {len} entries; at most {MAX_BATCH} are allowed per request"
        ));
    }
    Ok(())
}

/// `k` between 1 and [`MAX_K`].
pub fn k(value: usize) -> Result<(), Invalid> {
    if value == 0 || value > MAX_K {
        return Err(format!("`k` must be between 1 and {MAX_K}, got {value}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_bytes_and_name_the_path() {
        let cases: &[(&str, usize, Result<(), &str>)] = &[
            ("abc", 3, Ok(())),
            ("abcd", 3, Err("`x.y` is longer than 3 bytes")),
            ("手", 3, Ok(())),
            ("手手", 5, Err("`x.y` is longer than 5 bytes")),
            (" ", 3, Err("`x.y` must not be empty")),
        ];
        for (value, max, expected) in cases {
            let actual = required("x.y", value, *max);
            assert_eq!(
                actual.as_ref().map(|_| ()).map_err(String::as_str),
                *expected,
                "{value:?}"
            );
        }
        assert_eq!(optional("x.y", None, 0), Ok(()));
        assert!(
            batch("events", MAX_BATCH + 1)
                .unwrap_err()
                .contains("at most 10000")
        );
        assert!(k(0).is_err() && k(MAX_K).is_ok() && k(MAX_K + 1).is_err());
    }

    /// Each case: an id, and the error (a fragment) or none.
    #[test]
    fn ids_refuse_control_characters_and_name_the_path() {
        let cases: &[(&str, Option<&str>)] = &[
            ("user-7", None),
            ("手机 user", None),
            ("", Some("`a.id` must not be empty")),
            (
                "nul\0inside",
                Some("`a.id` contains the control character U+0000"),
            ),
            ("line\nbreak", Some("U+000A")),
            ("escape\u{1b}[31m", Some("U+001B")),
            ("c1\u{85}", Some("U+0085")),
        ];
        for (value, expected) in cases {
            let actual = id("a.id", value);
            match (actual, expected) {
                (Ok(()), None) => {}
                (Err(error), Some(fragment)) => assert!(error.contains(fragment), "{error}"),
                (outcome, _) => panic!("{value:?}: {outcome:?}"),
            }
        }
        assert_eq!(optional_id("a.id", None), Ok(()));
        assert!(optional_id("a.id", Some("a\0")).is_err());
        assert_eq!(
            optional_id("a.id", Some("")),
            Ok(()),
            "blank is the domain's call"
        );
    }

    #[test]
    fn times_outside_the_window_name_the_field_and_the_range() {
        let window = TimeWindow::around(1_000_000, 1_000, 10);
        let cases = [
            (999_000, true),
            (1_000_010, true),
            (998_999, false),
            (1_000_011, false),
            (u64::MAX, false),
            (0, false),
        ];
        for (value, accepted) in cases {
            let outcome = window.check("events[3].timestamp", value);
            assert_eq!(outcome.is_ok(), accepted, "{value}: {outcome:?}");
            if let Err(error) = outcome {
                assert!(
                    error.contains("`events[3].timestamp`") && error.contains("999000 to 1000010"),
                    "{error}"
                );
            }
        }
        assert_eq!(TimeWindow::around(5, 10, u64::MAX).earliest_ms, 0);
    }
}
