//! Value types of `serve`'s configuration that check themselves, the same way whichever
//! source (flag, environment variable, file) they come from, so that a bad value is
//! refused with the name of its source.

use std::fmt;
use std::marker::PhantomData;

use inkling_gateway::experiments::Variant;
use inkling_replication::InitialMember;
use serde::de::{self, Deserializer, IntoDeserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Where an empty node's catalog comes from.
#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CatalogArg {
    Demo,
    None,
    File,
}

const ROLES: [&str; 4] = ["gateway", "sessions", "models", "index"];

/// What a node does: a comma-separated, checked subset of [`ROLES`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Roles(String);

impl Roles {
    pub fn parse(text: &str) -> Result<Roles, String> {
        let roles: Vec<&str> = text.split(',').map(str::trim).collect();
        if let Some(unknown) = roles.iter().find(|role| !ROLES.contains(role)) {
            return Err(format!(
                "`{unknown}` is not a role; roles are {}",
                ROLES.join(", ")
            ));
        }
        Ok(Roles(roles.join(",")))
    }

    pub fn all() -> Roles {
        Roles(ROLES.join(","))
    }

    pub fn contains(&self, role: &str) -> bool {
        self.0.split(',').any(|held| held == role)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Roles {
    type Error = String;

    fn try_from(text: String) -> Result<Roles, String> {
        Roles::parse(&text)
    }
}

impl From<Roles> for String {
    fn from(roles: Roles) -> String {
        roles.0
    }
}

/// One of `--initial-members`, written `NAME=ADDR`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Member(pub InitialMember);

impl Member {
    pub fn parse(text: &str) -> Result<Member, String> {
        let (name, addr) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not NAME=ADDR"))?;
        if name.is_empty() {
            return Err(format!("`{text}` has an empty node name"));
        }
        let addr = addr
            .parse()
            .map_err(|error| format!("`{addr}` is not an address like 127.0.0.2:7280: {error}"))?;
        Ok(Member(InitialMember {
            name: name.to_string(),
            addr,
        }))
    }
}

impl TryFrom<String> for Member {
    type Error = String;

    fn try_from(text: String) -> Result<Member, String> {
        Member::parse(&text)
    }
}

impl From<Member> for String {
    fn from(member: Member) -> String {
        format!("{}={}", member.0.name, member.0.addr)
    }
}

/// One of `--variants`, written `NAME:SHARE[:SEMANTIC_WEIGHT]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VariantArg(pub Variant);

impl VariantArg {
    pub fn parse(text: &str) -> Result<VariantArg, String> {
        Variant::parse(text).map(VariantArg)
    }
}

impl TryFrom<String> for VariantArg {
    type Error = String;

    fn try_from(text: String) -> Result<VariantArg, String> {
        VariantArg::parse(&text)
    }
}

impl From<VariantArg> for String {
    fn from(variant: VariantArg) -> String {
        variant.0.to_string()
    }
}

/// A number the flag's own range also bounds (`clap::value_parser!(u16).range(..)`).
pub fn in_range<'de, D, T, const MIN: u64, const MAX: u64>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + Into<u64> + fmt::Display,
{
    let value = T::deserialize(deserializer)?;
    if (MIN..=MAX).contains(&value.into()) {
        Ok(value)
    } else {
        Err(de::Error::custom(format!(
            "{value} is not in {MIN}..={MAX}"
        )))
    }
}

/// A list: a sequence in a file, or one comma-separated string, as the environment
/// variables (`INKLING_SEEDS=a,b`) and the flags (`--seeds a,b`) write it.
pub fn comma_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct CommaList<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for CommaList<T> {
        type Value = Vec<T>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a list, or a comma-separated string")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<T>, E> {
            text.split(',')
                .map(|part| T::deserialize(part.into_deserializer()))
                .collect()
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Vec<T>, A::Error> {
            let mut list = Vec::new();
            while let Some(item) = items.next_element()? {
                list.push(item);
            }
            Ok(list)
        }
    }

    deserializer.deserialize_any(CommaList(PhantomData))
}
