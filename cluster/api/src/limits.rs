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
}
