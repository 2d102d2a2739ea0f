//! The BERT encoder forward pass in tch ops, shared by both models: embeddings, N layers of
//! masked self-attention and GELU feed-forward with post-layer-norm, then mean pooling over
//! the real tokens and L2 normalisation.

use tch::{Device, Kind, Tensor};

use super::Precision;

#[derive(Debug, Clone, Copy)]
pub struct BertConfig {
    pub hidden: i64,
    pub layers: usize,
    pub heads: i64,
    pub layer_norm_eps: f64,
    /// Longest input, special tokens included.
    pub max_tokens: usize,
}

pub struct BertLayer {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub attention_out: Linear,
    pub attention_norm: LayerNorm,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_norm: LayerNorm,
}

pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }
}

pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
}

pub struct BertWeights {
    pub word: Tensor,
    pub position: Tensor,
    /// Row 0 of the token-type table: every input is a single segment.
    pub token_type: Tensor,
    pub embedding_norm: LayerNorm,
    pub layers: Vec<BertLayer>,
}

pub struct Bert {
    config: BertConfig,
    weights: BertWeights,
    device: Device,
    /// What [`Precision::kind_on`] picks for the device.
    kind: Kind,
}

impl Bert {
    pub fn new(
        config: BertConfig,
        weights: BertWeights,
        device: Device,
        precision: Precision,
    ) -> Self {
        let kind = precision.kind_on(device);
        let weights = weights.to(device, kind);
        Self {
            config,
            weights,
            device,
            kind,
        }
    }

    /// Encodes a batch of token-id sequences (special tokens included) into unit vectors.
    pub fn embed(&self, sequences: &[Vec<u32>]) -> Vec<Vec<f32>> {
        if sequences.is_empty() {
            return Vec::new();
        }
        // Pad to the longest sequence of this batch only.
        let longest = sequences.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut ids = Vec::with_capacity(sequences.len() * longest);
        let mut mask = Vec::with_capacity(sequences.len() * longest);
        for sequence in sequences {
            ids.extend(sequence.iter().map(|&id| i64::from(id)));
            ids.extend(std::iter::repeat_n(0, longest - sequence.len()));
            mask.extend(std::iter::repeat_n(1.0f32, sequence.len()));
            mask.extend(std::iter::repeat_n(0.0f32, longest - sequence.len()));
        }
        let shape = [sequences.len() as i64, longest as i64];
        let pooled = tch::no_grad(|| {
            let ids = Tensor::from_slice(&ids).view(shape).to(self.device);
            let mask = Tensor::from_slice(&mask).view(shape).to(self.device);
            self.forward(&ids, &mask)
        });
        let pooled = pooled.to_kind(Kind::Float).to(Device::Cpu).contiguous();
        let flat: Vec<f32> = Vec::try_from(pooled.view([-1])).expect("pooled output is f32");
        flat.chunks(self.config.hidden as usize)
            .map(<[f32]>::to_vec)
            .collect()
    }

    fn forward(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        let (batch, tokens) = ids.size2().expect("ids are [batch, tokens]");
        let hidden = self.config.hidden;
        let heads = self.config.heads;
        let head_dim = hidden / heads;
        let weights = &self.weights;

        let positions = weights.position.narrow(0, 0, tokens);
        let mut x = weights
            .word
            .index_select(0, &ids.view([-1]))
            .view([batch, tokens, hidden])
            + positions.unsqueeze(0)
            + weights.token_type.view([1, 1, hidden]);
        x = self.layer_norm(&x, &weights.embedding_norm);

        // Additive mask: padding keys get a large negative score before the softmax.
        let attention_mask = ((mask.ones_like() - mask) * -1e4)
            .to_kind(self.kind)
            .view([batch, 1, 1, tokens]);
        let split_heads = |t: Tensor| t.view([batch, tokens, heads, head_dim]).transpose(1, 2);
        for layer in &weights.layers {
            let query = split_heads(layer.query.forward(&x));
            let key = split_heads(layer.key.forward(&x));
            let value = split_heads(layer.value.forward(&x));
            let context = Tensor::scaled_dot_product_attention(
                &query,
                &key,
                &value,
                Some(&attention_mask),
                0.0,
                false,
                None,
                false,
            )
            .transpose(1, 2)
            .contiguous()
            .view([batch, tokens, hidden]);
            x = self.layer_norm(
                &(layer.attention_out.forward(&context) + &x),
                &layer.attention_norm,
            );
            let inner = layer.intermediate.forward(&x).gelu("none");
            x = self.layer_norm(&(layer.output.forward(&inner) + &x), &layer.output_norm);
        }

        // Mean over real tokens (special tokens included, as sentence-transformers does).
        let mask = mask.to_kind(x.kind()).unsqueeze(-1);
        let summed = (&x * &mask).sum_dim_intlist([1i64].as_slice(), false, x.kind());
        let counts = mask
            .sum_dim_intlist([1i64].as_slice(), false, x.kind())
            .clamp_min(1e-9);
        let pooled = (summed / counts).to_kind(Kind::Float);
        let norms = pooled
            .norm_scalaropt_dim(2, [-1i64].as_slice(), true)
            .clamp_min(1e-12);
        pooled / norms
    }

    fn layer_norm(&self, x: &Tensor, norm: &LayerNorm) -> Tensor {
        x.layer_norm(
            [self.config.hidden].as_slice(),
            Some(&norm.weight),
            Some(&norm.bias),
            self.config.layer_norm_eps,
            false,
        )
    }
}

impl BertWeights {
    fn to(self, device: Device, kind: Kind) -> Self {
        let move_to = |t: Tensor| t.to_device(device).to_kind(kind);
        let linear = |l: Linear| Linear {
            weight: move_to(l.weight),
            bias: move_to(l.bias),
        };
        let norm = |n: LayerNorm| LayerNorm {
            weight: move_to(n.weight),
            bias: move_to(n.bias),
        };
        Self {
            word: move_to(self.word),
            position: move_to(self.position),
            token_type: move_to(self.token_type),
            embedding_norm: norm(self.embedding_norm),
            layers: self
                .layers
                .into_iter()
                .map(|layer| BertLayer {
                    query: linear(layer.query),
                    key: linear(layer.key),
                    value: linear(layer.value),
                    attention_out: linear(layer.attention_out),
                    attention_norm: norm(layer.attention_norm),
                    intermediate: linear(layer.intermediate),
                    output: linear(layer.output),
                    output_norm: norm(layer.output_norm),
                })
                .collect(),
        }
    }
}
