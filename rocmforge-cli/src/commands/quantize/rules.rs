//! Which block type each weight gets under a mix: llama-quantize's per-tensor policy (more bits
//! for attn_v and ffn_down on the "more bits" layers, the output and token-embedding types, the
//! K-quant fallbacks for rows that are not whole 256-value blocks), so that a mix names the same
//! file here as there. Layer-dependent rules take the layer from the tensor's name (`blk.N.`):
//! llama-quantize visits the weights layer by layer, so its running counters are the layer
//! index whatever order the file stores them in.

use rocmforge_gguf::{GgmlType, TensorInfo};

use super::mix::Mix;

/// What a tensor is to the policy (by name, as llama-quantize sorts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Output,
    TokenEmbd,
    /// attn_v, attn_qkv and attn_kv_b: the value-like projections.
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

fn category(name: &str) -> Category {
    if name == "output.weight" {
        Category::Output
    } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        Category::TokenEmbd
    } else if ["attn_qkv.weight", "attn_kv_b.weight", "attn_v.weight"]
        .iter()
        .any(|p| name.contains(p))
    {
        Category::AttnV
    } else if name.contains("attn_k.weight") {
        Category::AttnK
    } else if name.contains("attn_q.weight") {
        Category::AttnQ
    } else if name.contains("attn_output.weight") {
        Category::AttnOutput
    } else if name.contains("ffn_up") {
        Category::FfnUp
    } else if name.contains("ffn_gate") {
        Category::FfnGate
    } else if name.contains("ffn_down") {
        Category::FfnDown
    } else {
        Category::Other
    }
}

/// The user's choices beside the mix (llama-quantize's options of the same names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Every quantized weight gets the mix's default type (no per-tensor rules).
    pub pure: bool,
    /// The type of `output.weight` (and of a tied token embedding).
    pub output_type: Option<GgmlType>,
    /// The type of `token_embd.weight`.
    pub token_embedding_type: Option<GgmlType>,
    /// `output.weight` is not quantized.
    pub leave_output: bool,
    /// An importance matrix is given (`--imatrix`).
    pub imatrix: bool,
}

/// The model facts the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFacts {
    /// Architecture is falcon (its own rules).
    pub falcon: bool,
    /// A 70B-class llama (80 layers): attn_v one step up.
    pub llama_70b: bool,
    pub n_layer: usize,
    /// Query heads per KV head.
    pub n_gqa: usize,
    pub n_expert: usize,
}

/// The per-tensor policy of one run; call [`Rules::type_for`] for every tensor in file order.
#[derive(Debug)]
pub struct Rules {
    mix: Mix,
    opts: Options,
    model: ModelFacts,
    /// No `output.weight`: the token embedding is also the output.
    tied: bool,
    n_attn_v: usize,
    i_attn_v: usize,
    i_ffn_down: usize,
    /// Tensors whose row length forced a fallback type.
    pub fallbacks: usize,
}

/// The layer of a `blk.N.` tensor.
fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// llama-quantize's "more bits" layers: the first and last eighth and every third in between.
fn more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i as i64 - (n / 8) as i64).rem_euclid(3) == 2
}

/// Whether llama-quantize quantizes a tensor at all: 2-D or larger weights (`*weight`), not
/// norms, not `output.weight` when it is left alone, not the expert router or position/type
/// embeddings.
fn quantizable(info: &TensorInfo, opts: &Options) -> bool {
    let name = info.name.as_str();
    // Dimensions as ggml counts them: trailing 1s do not count.
    let n_dims = info.dims.iter().rposition(|&d| d > 1).map_or(1, |p| p + 1);
    n_dims >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && !(opts.leave_output && name == "output.weight")
        && !name.contains("ffn_gate_inp.weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
        && !name.contains("ssm_conv1d")
}

impl Rules {
    pub fn new(mix: Mix, opts: Options, model: ModelFacts, tensors: &[TensorInfo]) -> Self {
        let cats = tensors.iter().map(|t| category(&t.name));
        let n_attn_v = cats.clone().filter(|c| *c == Category::AttnV).count();
        let tied = !cats.clone().any(|c| c == Category::Output);
        Self {
            mix,
            opts,
            model,
            tied,
            n_attn_v,
            i_attn_v: 0,
            i_ffn_down: 0,
            fallbacks: 0,
        }
    }

    /// The type `info` is written in (its own type when it is not quantized).
    pub fn type_for(&mut self, info: &TensorInfo) -> GgmlType {
        let layer = layer_of(&info.name);
        if !quantizable(info, &self.opts) {
            return info.ty;
        }
        let cat = category(&info.name);
        if let (Some(t), Category::TokenEmbd) = (self.opts.token_embedding_type, cat) {
            return t;
        }
        if let (Some(t), Category::Output) = (self.opts.output_type, cat) {
            return t;
        }
        let default = self.mix.default_type();
        if !default.is_quantized() {
            return default;
        }
        let row = info.dims.first().copied().unwrap_or(0);
        // ggml's ne[2] > 1: a 3-D tensor of experts.
        let experts = info.dims.get(2).is_some_and(|&d| d > 1);
        let ty = if self.opts.pure {
            default
        } else if self.mix == Mix::MXFP4_MOE {
            self.mxfp4_moe_type(cat, experts)
        } else {
            self.mixed_type(cat, layer, row, default)
        };
        self.fallback(row, ty)
    }

    /// A compatible type when rows of `row` values are not whole blocks of `ty`.
    fn fallback(&mut self, row: u64, ty: GgmlType) -> GgmlType {
        use GgmlType as T;
        let fits = |t: GgmlType| row % t.block_size() as u64 == 0;
        if fits(ty) {
            return ty;
        }
        self.fallbacks += 1;
        let next = match ty {
            T::IQ4_XS => T::IQ4_NL,
            T::Q2_K | T::Q3_K => T::Q4_0,
            T::Q4_K => T::Q5_0,
            T::Q5_K => T::Q5_1,
            T::Q6_K => T::Q8_0,
            other => other,
        };
        if fits(next) { next } else { T::F16 }
    }

    /// MXFP4_MOE's rule (llama-quantize's): the output (and a tied token embedding) Q8_0 unless
    /// `--output-tensor-type` says otherwise, experts MXFP4, every other weight Q8_0 (the
    /// token embedding included: the rule comes before the token-embedding one there).
    fn mxfp4_moe_type(&self, cat: Category, experts: bool) -> GgmlType {
        let is_output = cat == Category::Output || (self.tied && cat == Category::TokenEmbd);
        match (is_output, self.opts.output_type) {
            (true, Some(o)) => o,
            (false, _) if experts => GgmlType::MXFP4,
            _ => GgmlType::Q8_0,
        }
    }

    /// The mix's rules for a tensor of category `cat` (llama-quantize's, for the mixes here).
    fn mixed_type(
        &mut self,
        cat: Category,
        layer: Option<usize>,
        row: u64,
        default: GgmlType,
    ) -> GgmlType {
        use GgmlType as T;
        use Mix as M;
        let (mix, m) = (self.mix, self.model);
        let mut t = default;
        let is_output = cat == Category::Output || (self.tied && cat == Category::TokenEmbd);
        if is_output {
            if let Some(o) = self.opts.output_type {
                return o;
            }
            if m.falcon || row % t.block_size() as u64 != 0 {
                t = T::Q8_0;
            } else if t != T::Q8_0 {
                t = T::Q6_K;
            }
            return t;
        }
        match cat {
            Category::AttnV => {
                // One value projection per layer: its index is the layer's.
                let i = if self.n_attn_v == m.n_layer {
                    layer.unwrap_or(self.i_attn_v)
                } else {
                    self.i_attn_v
                };
                let n = self.n_attn_v;
                match mix {
                    M::Q2_K => t = if m.n_gqa >= 4 { T::Q4_K } else { T::Q3_K },
                    M::Q2_K_S if m.n_gqa >= 4 => t = T::Q4_K,
                    M::Q3_K_M => t = if i < 2 { T::Q5_K } else { T::Q4_K },
                    M::Q3_K_L => t = T::Q5_K,
                    M::IQ4_NL | M::IQ4_XS if m.n_gqa >= 4 => t = T::Q5_K,
                    M::Q4_K_M | M::Q5_K_M if more_bits(i, n) => t = T::Q6_K,
                    M::Q4_K_S if i < 4 => t = T::Q5_K,
                    _ => {}
                }
                if m.llama_70b && matches!(t, T::Q3_K | T::Q4_K) {
                    t = T::Q5_K;
                }
                if m.n_expert == 8 {
                    t = T::Q8_0;
                }
                self.i_attn_v += 1;
            }
            Category::AttnK if m.n_expert == 8 => t = T::Q8_0,
            Category::FfnDown => {
                let (i, n) = (layer.unwrap_or(self.i_ffn_down), m.n_layer);
                match mix {
                    M::Q2_K => t = T::Q3_K,
                    M::Q2_K_S if i < n / 8 => t = T::Q4_K,
                    M::Q3_K_M => {
                        t = if i < n / 16 {
                            T::Q5_K
                        } else if !m.falcon || more_bits(i, n) {
                            T::Q4_K
                        } else {
                            T::Q3_K
                        }
                    }
                    M::Q3_K_L => t = if m.falcon { T::Q4_K } else { T::Q5_K },
                    M::Q4_K_M => {
                        if m.falcon {
                            t = if i < n / 16 {
                                T::Q6_K
                            } else if more_bits(i, n) {
                                T::Q5_K
                            } else {
                                T::Q4_K
                            };
                        } else if more_bits(i, n) {
                            t = T::Q6_K;
                        }
                    }
                    M::IQ4_NL | M::IQ4_XS if i < n / 8 && !self.opts.imatrix => t = T::Q5_K,
                    M::Q5_K_M if more_bits(i, n) => t = T::Q6_K,
                    M::Q4_K_S if !m.falcon && i < n / 8 => t = T::Q5_K,
                    // With an imatrix, the first eighth's ffn_down of Q4_0/Q5_0 files gets the
                    // types with a minimum.
                    M::Q4_0 if self.opts.imatrix && i < n / 8 => t = T::Q4_1,
                    M::Q5_0 if self.opts.imatrix && i < n / 8 => t = T::Q5_1,
                    _ => {}
                }
                self.i_ffn_down += 1;
            }
            Category::AttnOutput => {
                if !m.falcon {
                    if m.n_expert == 8 {
                        if matches!(
                            mix,
                            M::Q2_K
                                | M::Q3_K_S
                                | M::Q3_K_M
                                | M::IQ4_NL
                                | M::Q4_K_S
                                | M::Q4_K_M
                                | M::IQ4_XS
                        ) {
                            t = T::Q5_K;
                        }
                    } else {
                        match mix {
                            M::Q2_K => t = T::Q3_K,
                            M::Q3_K_M => t = T::Q4_K,
                            M::Q3_K_L => t = T::Q5_K,
                            _ => {}
                        }
                    }
                } else if mix == M::Q3_K_L {
                    t = T::Q4_K;
                }
            }
            _ => {}
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, dims: &[u64]) -> TensorInfo {
        TensorInfo {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty: GgmlType::F32,
            offset: 0,
            size: 0,
        }
    }

    /// A llama-shaped model of `n` layers with `width`-wide rows and no output.weight (tied).
    fn model(n: usize, width: u64) -> Vec<TensorInfo> {
        let mut t = vec![info("token_embd.weight", &[width, 1000])];
        for i in 0..n {
            for (p, dims) in [
                ("attn_norm.weight", vec![width]),
                ("attn_q.weight", vec![width, width]),
                ("attn_k.weight", vec![width, width / 4]),
                ("attn_v.weight", vec![width, width / 4]),
                ("attn_output.weight", vec![width, width]),
                ("ffn_gate.weight", vec![width, 3 * width]),
                ("ffn_up.weight", vec![width, 3 * width]),
                ("ffn_down.weight", vec![3 * width, width]),
            ] {
                t.push(info(&format!("blk.{i}.{p}"), &dims));
            }
        }
        t
    }

    fn facts(n: usize) -> ModelFacts {
        ModelFacts {
            falcon: false,
            llama_70b: false,
            n_layer: n,
            n_gqa: 3,
            n_expert: 0,
        }
    }

    fn types(mix: Mix, opts: Options, ts: &[TensorInfo], n: usize) -> Vec<(String, GgmlType)> {
        let mut r = Rules::new(mix, opts, facts(n), ts);
        ts.iter().map(|t| (t.name.clone(), r.type_for(t))).collect()
    }

    fn get(v: &[(String, GgmlType)], name: &str) -> Option<GgmlType> {
        v.iter().find(|(n, _)| n == name).map(|x| x.1)
    }

    #[test]
    fn q4_k_m_gives_more_bits_to_attn_v_and_ffn_down_and_q6_k_to_the_tied_output() {
        let ts = model(16, 1024);
        let v = types(Mix::Q4_K_M, Options::default(), &ts, 16);
        // 16 layers: more bits for 0, 1, 14, 15 and (i - 2) % 3 == 2 -> 4, 7, 10, 13.
        for i in 0..16 {
            let want = if [0, 1, 4, 7, 10, 13, 14, 15].contains(&i) {
                GgmlType::Q6_K
            } else {
                GgmlType::Q4_K
            };
            assert_eq!(
                get(&v, &format!("blk.{i}.attn_v.weight")),
                Some(want),
                "layer {i}"
            );
            assert_eq!(
                get(&v, &format!("blk.{i}.ffn_down.weight")),
                Some(want),
                "layer {i}"
            );
            assert_eq!(
                get(&v, &format!("blk.{i}.attn_q.weight")),
                Some(GgmlType::Q4_K)
            );
        }
        assert_eq!(get(&v, "token_embd.weight"), Some(GgmlType::Q6_K));
        assert_eq!(get(&v, "blk.0.attn_norm.weight"), Some(GgmlType::F32));
    }

    #[test]
    fn rows_that_are_not_whole_super_blocks_fall_back() {
        // 576-wide rows (SmolLM2): Q4_K -> Q5_0, Q6_K -> Q8_0, the tied output Q8_0.
        let ts = model(8, 576);
        let v = types(Mix::Q4_K_M, Options::default(), &ts, 8);
        assert_eq!(get(&v, "blk.2.attn_q.weight"), Some(GgmlType::Q5_0));
        assert_eq!(get(&v, "blk.0.attn_v.weight"), Some(GgmlType::Q8_0));
        // ffn_down rows of 1728 values: Q6_K (more bits) -> Q8_0, Q4_K -> Q5_0.
        assert_eq!(get(&v, "blk.0.ffn_down.weight"), Some(GgmlType::Q8_0));
        assert_eq!(get(&v, "blk.2.ffn_down.weight"), Some(GgmlType::Q5_0));
        assert_eq!(get(&v, "token_embd.weight"), Some(GgmlType::Q8_0));
        let v = types(Mix::IQ4_XS, Options::default(), &ts, 8);
        assert_eq!(get(&v, "blk.2.attn_q.weight"), Some(GgmlType::IQ4_NL));
    }

    #[test]
    fn an_imatrix_changes_the_first_layers_ffn_down() {
        let ts = model(16, 1024);
        let with = Options {
            imatrix: true,
            ..Options::default()
        };
        // IQ4_XS: Q5_K for the first eighth only without an imatrix.
        let v = types(Mix::IQ4_XS, Options::default(), &ts, 16);
        assert_eq!(get(&v, "blk.1.ffn_down.weight"), Some(GgmlType::Q5_K));
        let v = types(Mix::IQ4_XS, with, &ts, 16);
        assert_eq!(get(&v, "blk.1.ffn_down.weight"), Some(GgmlType::IQ4_XS));
        // Q4_0 / Q5_0: the types with a minimum for the first eighth only with one.
        let v = types(Mix::Q4_0, with, &ts, 16);
        assert_eq!(get(&v, "blk.1.ffn_down.weight"), Some(GgmlType::Q4_1));
        assert_eq!(get(&v, "blk.2.ffn_down.weight"), Some(GgmlType::Q4_0));
        let v = types(Mix::Q5_0, with, &ts, 16);
        assert_eq!(get(&v, "blk.0.ffn_down.weight"), Some(GgmlType::Q5_1));
        let v = types(Mix::Q5_0, Options::default(), &ts, 16);
        assert_eq!(get(&v, "blk.0.ffn_down.weight"), Some(GgmlType::Q5_0));
    }

    #[test]
    fn mxfp4_moe_gives_experts_mxfp4_and_the_rest_q8_0() {
        let mut ts = model(2, 256);
        ts.push(info("blk.0.ffn_gate_exps.weight", &[256, 64, 8]));
        ts.push(info("blk.0.ffn_down_exps.weight", &[64, 256, 8]));
        ts.push(info("blk.0.ffn_gate_inp.weight", &[256, 8]));
        ts.push(info("blk.0.ffn_gate_exps.bias", &[64, 8]));
        ts.push(info("blk.1.ffn_down_exps.weight", &[100, 256, 8]));
        let v = types(Mix::MXFP4_MOE, Options::default(), &ts, 2);
        assert_eq!(get(&v, "blk.0.ffn_gate_exps.weight"), Some(GgmlType::MXFP4));
        assert_eq!(get(&v, "blk.0.ffn_down_exps.weight"), Some(GgmlType::MXFP4));
        // Rows of 100 values are not whole 32-value blocks: F16, as llama-quantize.
        assert_eq!(get(&v, "blk.1.ffn_down_exps.weight"), Some(GgmlType::F16));
        for name in [
            "blk.0.attn_v.weight",
            "blk.1.ffn_down.weight",
            "token_embd.weight",
        ] {
            assert_eq!(get(&v, name), Some(GgmlType::Q8_0), "{name}");
        }
        assert_eq!(get(&v, "blk.0.ffn_gate_inp.weight"), Some(GgmlType::F32));
        assert_eq!(get(&v, "blk.0.ffn_gate_exps.bias"), Some(GgmlType::F32));
        let o = Options {
            output_type: Some(GgmlType::Q6_K),
            ..Options::default()
        };
        let v = types(Mix::MXFP4_MOE, o, &ts, 2);
        assert_eq!(get(&v, "token_embd.weight"), Some(GgmlType::Q6_K));
    }

    #[test]
    fn options_override_the_rules() {
        let ts = model(8, 1024);
        let pure = Options {
            pure: true,
            ..Options::default()
        };
        let v = types(Mix::Q4_K_M, pure, &ts, 8);
        assert_eq!(get(&v, "blk.0.attn_v.weight"), Some(GgmlType::Q4_K));
        let o = Options {
            token_embedding_type: Some(GgmlType::Q8_0),
            ..Options::default()
        };
        let v = types(Mix::Q4_K_M, o, &ts, 8);
        assert_eq!(get(&v, "token_embd.weight"), Some(GgmlType::Q8_0));
        let v = types(Mix::Q8_0, Options::default(), &ts, 8);
        assert!(
            v.iter()
                .all(|(n, t)| n.contains("norm") || *t == GgmlType::Q8_0)
        );
        let v = types(Mix::F16, Options::default(), &ts, 8);
        assert_eq!(get(&v, "blk.0.attn_v.weight"), Some(GgmlType::F16));
    }
}
