//! A/B variants and the request ids that attribute later events to them.
//!
//! Every search and recommendation is served under one variant: the one the request names,
//! or the one a stable hash of its user id falls in, by the configured shares. The answer's
//! `request_id` carries the variant's name after a random part (`9f2c…e1.control`), so a
//! click, cart or purchase that quotes it is counted for its variant by whichever gateway
//! receives it, without a lookup and without storing the answer.

use std::fmt;

use inkling_api::limits::Invalid;
use xxhash_rust::xxh3::xxh3_64;

/// The variant of a gateway configured with none.
pub const DEFAULT_VARIANT: &str = "default";
/// The metrics label of an event quoting a variant this gateway does not run (one retired
/// since the answer was given): counted, under a bounded label.
pub const RETIRED_VARIANT: &str = "retired";
/// Longest variant name.
const MAX_NAME_BYTES: usize = 32;
/// Hex digits of a request id's random part.
const RANDOM_HEX: usize = 16;

/// One arm of an experiment: its name, its share of shoppers, and what it changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    pub name: String,
    /// Relative to the other variants' shares; 0 serves it only when a request names it.
    pub share: u32,
    /// The weight of the meaning (embedding) list against the words (BM25) list in search
    /// fusion; the node's configured weight when absent.
    pub semantic_weight: Option<f64>,
}

impl Variant {
    /// Reads `NAME:SHARE[:SEMANTIC_WEIGHT]`, e.g. `control:90` or `more-meaning:10:0.8`.
    pub fn parse(text: &str) -> Result<Variant, String> {
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default().trim();
        check_name(name).map_err(|error| format!("variant `{text}`: {error}"))?;
        let share = parts
            .next()
            .ok_or_else(|| format!("variant `{text}` is not NAME:SHARE[:SEMANTIC_WEIGHT]"))?;
        let share = share
            .trim()
            .parse()
            .map_err(|_| format!("variant `{text}`: share `{share}` is not a whole number"))?;
        let semantic_weight = match parts.next() {
            None => None,
            Some(weight) => Some(parse_weight(text, weight)?),
        };
        if parts.next().is_some() {
            return Err(format!(
                "variant `{text}` is not NAME:SHARE[:SEMANTIC_WEIGHT]"
            ));
        }
        Ok(Variant {
            name: name.to_string(),
            share,
            semantic_weight,
        })
    }
}

fn parse_weight(text: &str, weight: &str) -> Result<f64, String> {
    match weight.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && (0.0..=10.0).contains(&value) => Ok(value),
        _ => Err(format!(
            "variant `{text}`: semantic weight `{weight}` is not a number from 0 to 10"
        )),
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.share)?;
        match self.semantic_weight {
            Some(weight) => write!(f, ":{weight}"),
            None => Ok(()),
        }
    }
}

/// A variant's name: 1 to 32 of `a-z`, `0-9`, `-` and `_`, so it is a safe metrics label
/// and never contains the `.` that ends a request id's random part.
fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if name.is_empty() || name.len() > MAX_NAME_BYTES || !name.chars().all(allowed) {
        return Err(format!(
            "a variant name is 1 to {MAX_NAME_BYTES} of a-z, 0-9, - and _, got {name:?}"
        ));
    }
    Ok(())
}

/// The variants a gateway serves.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiments {
    variants: Vec<Variant>,
    total_share: u64,
}

impl Default for Experiments {
    /// One variant, [`DEFAULT_VARIANT`], changing nothing.
    fn default() -> Self {
        Self::new(vec![Variant {
            name: DEFAULT_VARIANT.to_string(),
            share: 1,
            semantic_weight: None,
        }])
        .expect("the default variant is valid")
    }
}

impl Experiments {
    /// Checks that names are unique and that some variant has a share.
    pub fn new(variants: Vec<Variant>) -> Result<Self, String> {
        for (index, variant) in variants.iter().enumerate() {
            if variants[..index].iter().any(|v| v.name == variant.name) {
                return Err(format!("variant `{}` is listed twice", variant.name));
            }
        }
        let total_share: u64 = variants.iter().map(|v| u64::from(v.share)).sum();
        if total_share == 0 {
            return Err("at least one variant needs a share above 0".to_string());
        }
        Ok(Self {
            variants,
            total_share,
        })
    }

    pub fn variants(&self) -> &[Variant] {
        &self.variants
    }

    /// The variant `named` if the request names one, else the one `user_id` hashes into: the
    /// same user gets the same variant on every gateway and every day, so long as the shares
    /// stay the same.
    pub fn assign(&self, user_id: &str, named: Option<&str>) -> Result<&Variant, Invalid> {
        if let Some(name) = named {
            return self.named(name).ok_or_else(|| {
                let known: Vec<&str> = self.variants.iter().map(|v| v.name.as_str()).collect();
                format!(
                    "`variant` {name:?} is not served here; the variants are {}",
                    known.join(", ")
                )
            });
        }
        let mut point = xxh3_64(user_id.as_bytes()) % self.total_share;
        for variant in &self.variants {
            let share = u64::from(variant.share);
            if point < share {
                return Ok(variant);
            }
            point -= share;
        }
        unreachable!("the point lies below the total share")
    }

    fn named(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|variant| variant.name == name)
    }

    /// The metrics label for the variant a request id names: the name when this gateway
    /// serves it, [`RETIRED_VARIANT`] when not.
    pub fn label_of<'a>(&'a self, request_id: &str) -> Result<&'a str, Invalid> {
        let name = variant_of(request_id)?;
        Ok(self
            .named(name)
            .map_or(RETIRED_VARIANT, |variant| variant.name.as_str()))
    }
}

/// A fresh request id for an answer served under `variant`.
pub fn request_id(variant: &Variant) -> String {
    // A request id needs to be unique, not secret; the clock stands in if the OS has no
    // randomness to give.
    let random = getrandom::u64().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        xxh3_64(&nanos.to_le_bytes())
    });
    format!("{random:0width$x}.{}", variant.name, width = RANDOM_HEX)
}

/// The variant name a request id carries, checking its form.
pub fn variant_of(request_id: &str) -> Result<&str, Invalid> {
    let malformed = || {
        format!(
            "{request_id:?} is not a request id this API issued (16 hex digits, a dot, a variant)"
        )
    };
    let (random, name) = request_id.split_once('.').ok_or_else(malformed)?;
    let hex = random.len() == RANDOM_HEX && random.chars().all(|c| c.is_ascii_hexdigit());
    if !hex || check_name(name).is_err() {
        return Err(malformed());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case: a variant as written, and what it reads as or a fragment of the error.
    #[test]
    fn variants_are_read_from_their_spec() {
        /// A variant's name, share and semantic weight, or a fragment of the error.
        type Read<'a> = Result<(&'a str, u32, Option<f64>), &'a str>;
        let cases: [(&str, Read); 6] = [
            ("control:90", Ok(("control", 90, None))),
            ("more-meaning:10:0.8", Ok(("more-meaning", 10, Some(0.8)))),
            ("Control:1", Err("a variant name is 1 to 32")),
            ("control", Err("is not NAME:SHARE")),
            ("control:ten", Err("share `ten` is not a whole number")),
            (
                "control:1:-1",
                Err("semantic weight `-1` is not a number from 0 to 10"),
            ),
        ];
        for (text, expected) in cases {
            match (Variant::parse(text), expected) {
                (Ok(variant), Ok((name, share, weight))) => {
                    assert_eq!(
                        (
                            variant.name.as_str(),
                            variant.share,
                            variant.semantic_weight
                        ),
                        (name, share, weight),
                        "{text}"
                    );
                    assert_eq!(Variant::parse(&variant.to_string()).unwrap(), variant);
                }
                (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{text}: {error}"),
                (outcome, _) => panic!("{text}: {outcome:?}"),
            }
        }
    }

    #[test]
    fn users_split_by_share_and_keep_their_variant() {
        let experiments = Experiments::new(vec![
            Variant::parse("control:3").unwrap(),
            Variant::parse("treatment:1").unwrap(),
            Variant::parse("manual:0").unwrap(),
        ])
        .unwrap();
        let assigned: Vec<&str> = (0..4000)
            .map(|n| {
                let user = format!("user-{n}");
                let first = experiments.assign(&user, None).unwrap();
                assert_eq!(experiments.assign(&user, None).unwrap(), first);
                first.name.as_str()
            })
            .collect();
        let treated = assigned.iter().filter(|name| **name == "treatment").count();
        assert!((800..1200).contains(&treated), "{treated} of 4000");
        assert!(!assigned.contains(&"manual"));
        let named = experiments.assign("user-1", Some("manual")).unwrap();
        assert_eq!(named.name, "manual");
        let unknown = experiments.assign("user-1", Some("nope")).unwrap_err();
        assert!(unknown.contains("control, treatment, manual"), "{unknown}");
    }

    #[test]
    fn request_ids_carry_their_variant() {
        let experiments = Experiments::default();
        let variant = experiments.assign("u", None).unwrap();
        let id = request_id(variant);
        assert_ne!(id, request_id(variant));
        assert_eq!(experiments.label_of(&id).unwrap(), DEFAULT_VARIANT);
        assert_eq!(
            experiments.label_of("0123456789abcdef.gone").unwrap(),
            RETIRED_VARIANT
        );
        for bad in [
            "",
            "control",
            "xyz.control",
            "0123456789abcdef.",
            "0123456789abcdef.Bad",
        ] {
            assert!(experiments.label_of(bad).is_err(), "{bad:?}");
        }
        assert!(
            Experiments::new(vec![Variant::parse("a:0").unwrap()])
                .unwrap_err()
                .contains("share above 0")
        );
    }
}
