//! The OpenAPI schemas of the API's limited fields, built from [`crate::limits`], so the
//! contract states the limits the server checks and cannot drift from them. The request
//! types name these with `#[schema(schema_with = …)]`.
//!
//! JSON Schema's `maxLength` counts characters while the server counts bytes of UTF-8, so
//! a schema's `maxLength` is the byte limit: necessary, not sufficient, for text outside
//! ASCII. Each description says so.

use utoipa::openapi::schema::{
    ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, SchemaType, Type,
};
use utoipa::openapi::{RefOr, Schema};

use crate::limits::{
    CURRENCY_BYTES, MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES,
    MAX_BRAND_BYTES, MAX_CATEGORY_BYTES, MAX_CATEGORY_LEVELS, MAX_FILTER_VALUES, MAX_ID_BYTES,
    MAX_K, MAX_OFFSET, MAX_POSITION, MAX_QUERY_BYTES, MAX_TIME_MS, MAX_TITLE_BYTES,
};

fn text(max_bytes: usize, what: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max_bytes))
        .description(Some(format!("{what}; at most {max_bytes} bytes of UTF-8")))
}

/// `object`, or null: the schema of an `Option` field, which takes `null` as absent.
fn nullable(mut object: Object) -> Object {
    if let SchemaType::Type(kind) = object.schema_type {
        object.schema_type = SchemaType::Array(vec![kind, Type::Null]);
    }
    object
}

/// For each `optional => schema`, `optional()`: that schema, or null.
macro_rules! optional {
    ($($optional:ident => $schema:ident),* $(,)?) => {
        $(
            #[doc = concat!("[`", stringify!($schema), "`], or null.")]
            pub fn $optional() -> Object {
                nullable($schema())
            }
        )*
    };
}

optional! {
    optional_id => id,
    optional_query => query,
    optional_brand => brand,
    optional_currency => currency,
    optional_position => position,
    optional_time_ms => time_ms,
    optional_rating => rating,
}

fn integer(minimum: usize, maximum: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(minimum as f64))
        .maximum(Some(maximum as f64))
}

/// No control character (C0, DEL or C1), as ids must be.
const NO_CONTROL_CHARACTERS: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// Holds something besides white space, as required text must.
const NOT_BLANK: &str = "\\S";

fn id_text() -> ObjectBuilder {
    text(MAX_ID_BYTES, "an id without control characters").pattern(Some(NO_CONTROL_CHARACTERS))
}

/// A user, session, event or item id, or a variant or request id.
pub fn id() -> Object {
    id_text().build()
}

/// An id that must not be blank: a product's.
pub fn required_id() -> Object {
    id_text().min_length(Some(1)).build()
}

/// A search query.
pub fn query() -> Object {
    text(MAX_QUERY_BYTES, "what the shopper typed, in any language")
        .pattern(Some(NOT_BLANK))
        .build()
}

/// A product title.
pub fn title() -> Object {
    text(MAX_TITLE_BYTES, "the product's title")
        .pattern(Some(NOT_BLANK))
        .build()
}

/// A product's brand.
pub fn brand() -> Object {
    text(MAX_BRAND_BYTES, "the brand").build()
}

/// An ISO 4217 code.
pub fn currency() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[A-Z]{{{CURRENCY_BYTES}}}$")))
        .description(Some("an ISO 4217 code such as CNY or USD"))
        .examples([serde_json::json!("CNY")])
        .build()
}

/// A product's categories, from the broadest to the narrowest.
pub fn category_path() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(text(MAX_CATEGORY_BYTES, "one level of the category path").build())
        .max_items(Some(MAX_CATEGORY_LEVELS))
}

/// A product's attributes, by name.
pub fn attributes() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(text(
            MAX_ATTRIBUTE_VALUE_BYTES,
            "the attribute's value",
        )))
        .property_names(Some(text(MAX_ATTRIBUTE_KEY_BYTES, "an attribute name")))
        .max_properties(Some(MAX_ATTRIBUTES))
        .description(Some("attributes by name"))
        .build()
}

/// How many items an answer holds.
pub fn k() -> Object {
    integer(1, MAX_K).build()
}

/// Where a page starts among the ranked matches.
pub fn offset() -> Object {
    integer(0, MAX_OFFSET).build()
}

/// Where an item was in the answer an event quotes, from 1.
pub fn position() -> Object {
    integer(1, MAX_POSITION as usize).build()
}

/// A time in milliseconds since the Unix epoch.
pub fn time_ms() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0.0))
        .maximum(Some(MAX_TIME_MS as f64))
        .description(Some("milliseconds since the Unix epoch"))
        .build()
}

/// A rating from 0 to 5.
pub fn rating() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(0.0))
        .maximum(Some(5.0))
        .build()
}

/// One value, or a list of alternatives any of which passes.
fn any_of(max_bytes: usize, what: &str) -> RefOr<Schema> {
    let one = || text(max_bytes, what).build();
    let list = ArrayBuilder::new()
        .items(one())
        .max_items(Some(MAX_FILTER_VALUES));
    OneOfBuilder::new().item(one()).item(list).into()
}

/// `filters.category`: a category at any level of the path, or alternatives.
pub fn category_filter() -> RefOr<Schema> {
    any_of(MAX_CATEGORY_BYTES, "a category at any level")
}

/// `filters.brand`: a brand, or alternatives.
pub fn brand_filter() -> RefOr<Schema> {
    any_of(MAX_BRAND_BYTES, "a brand")
}

/// `filters.attributes`: by attribute name, a value or alternatives.
pub fn attribute_filter() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(any_of(
            MAX_ATTRIBUTE_VALUE_BYTES,
            "the attribute's value",
        )))
        .property_names(Some(text(MAX_ATTRIBUTE_KEY_BYTES, "an attribute name")))
        .max_properties(Some(MAX_ATTRIBUTES))
        .build()
}
