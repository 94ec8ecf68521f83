//! The quantization mixes `rocmforge quantize` offers: llama-quantize's names (`Q4_K_M`,
//! `Q5_K_S`, `Q3_K_L`, `IQ4_XS`, ...), each with the `general.file_type` (llama.cpp's
//! `llama_ftype`) it records and the block type most weights get.

use rocmforge_gguf::GgmlType;

/// A named mix (llama.cpp's `llama_ftype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum Mix {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q2_K_S,
    Q3_K_S,
    Q3_K_M,
    Q3_K_L,
    Q4_K_S,
    Q4_K_M,
    Q5_K_S,
    Q5_K_M,
    Q6_K,
    IQ4_NL,
    IQ4_XS,
    /// gpt-oss's mix (ggml-org's files): 3-D expert tensors MXFP4, every other weight Q8_0.
    MXFP4_MOE,
}

impl Mix {
    /// Every mix, in llama-quantize's order of its list.
    pub const ALL: [Mix; 21] = [
        Mix::Q4_0,
        Mix::Q4_1,
        Mix::Q5_0,
        Mix::Q5_1,
        Mix::IQ4_NL,
        Mix::IQ4_XS,
        Mix::Q2_K,
        Mix::Q2_K_S,
        Mix::Q3_K_S,
        Mix::Q3_K_M,
        Mix::Q3_K_L,
        Mix::Q4_K_S,
        Mix::Q4_K_M,
        Mix::Q5_K_S,
        Mix::Q5_K_M,
        Mix::Q6_K,
        Mix::Q8_0,
        Mix::MXFP4_MOE,
        Mix::F16,
        Mix::BF16,
        Mix::F32,
    ];

    /// The name users type (`Q4_K_M`).
    pub fn name(self) -> &'static str {
        match self {
            Mix::F32 => "F32",
            Mix::F16 => "F16",
            Mix::BF16 => "BF16",
            Mix::Q4_0 => "Q4_0",
            Mix::Q4_1 => "Q4_1",
            Mix::Q5_0 => "Q5_0",
            Mix::Q5_1 => "Q5_1",
            Mix::Q8_0 => "Q8_0",
            Mix::Q2_K => "Q2_K",
            Mix::Q2_K_S => "Q2_K_S",
            Mix::Q3_K_S => "Q3_K_S",
            Mix::Q3_K_M => "Q3_K_M",
            Mix::Q3_K_L => "Q3_K_L",
            Mix::Q4_K_S => "Q4_K_S",
            Mix::Q4_K_M => "Q4_K_M",
            Mix::Q5_K_S => "Q5_K_S",
            Mix::Q5_K_M => "Q5_K_M",
            Mix::Q6_K => "Q6_K",
            Mix::IQ4_NL => "IQ4_NL",
            Mix::IQ4_XS => "IQ4_XS",
            Mix::MXFP4_MOE => "MXFP4_MOE",
        }
    }

    /// The `general.file_type` value (llama.cpp's `llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            Mix::F32 => 0,
            Mix::F16 => 1,
            Mix::Q4_0 => 2,
            Mix::Q4_1 => 3,
            Mix::Q8_0 => 7,
            Mix::Q5_0 => 8,
            Mix::Q5_1 => 9,
            Mix::Q2_K => 10,
            Mix::Q3_K_S => 11,
            Mix::Q3_K_M => 12,
            Mix::Q3_K_L => 13,
            Mix::Q4_K_S => 14,
            Mix::Q4_K_M => 15,
            Mix::Q5_K_S => 16,
            Mix::Q5_K_M => 17,
            Mix::Q6_K => 18,
            Mix::Q2_K_S => 21,
            Mix::IQ4_NL => 25,
            Mix::IQ4_XS => 30,
            Mix::BF16 => 32,
            Mix::MXFP4_MOE => 38,
        }
    }

    /// The block type the mix gives a weight no rule singles out.
    pub fn default_type(self) -> GgmlType {
        use GgmlType as T;
        match self {
            Mix::F32 => T::F32,
            Mix::F16 => T::F16,
            Mix::BF16 => T::BF16,
            Mix::Q4_0 => T::Q4_0,
            Mix::Q4_1 => T::Q4_1,
            Mix::Q5_0 => T::Q5_0,
            Mix::Q5_1 => T::Q5_1,
            Mix::Q8_0 => T::Q8_0,
            Mix::Q2_K | Mix::Q2_K_S => T::Q2_K,
            Mix::Q3_K_S | Mix::Q3_K_M | Mix::Q3_K_L => T::Q3_K,
            Mix::Q4_K_S | Mix::Q4_K_M => T::Q4_K,
            Mix::Q5_K_S | Mix::Q5_K_M => T::Q5_K,
            Mix::Q6_K => T::Q6_K,
            Mix::IQ4_NL => T::IQ4_NL,
            Mix::IQ4_XS => T::IQ4_XS,
            Mix::MXFP4_MOE => T::MXFP4,
        }
    }

    /// Parses a mix name, case-insensitively. A bare K-quant type name (`Q4_K`, `Q5_K`, `Q3_K`)
    /// is the mix llama-quantize makes of it (`Q4_K_M`, `Q5_K_M`, `Q3_K_M`).
    pub fn parse(name: &str) -> Option<Mix> {
        let upper = name.trim().to_ascii_uppercase();
        let alias = match upper.as_str() {
            "Q4_K" => "Q4_K_M",
            "Q5_K" => "Q5_K_M",
            "Q3_K" => "Q3_K_M",
            other => other,
        };
        Mix::ALL.into_iter().find(|m| m.name() == alias)
    }

    /// The names of every mix, comma separated.
    pub fn names() -> String {
        Mix::ALL.map(Mix::name).join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_file_types_are_llama_cpps() {
        for m in Mix::ALL {
            assert_eq!(Mix::parse(m.name()), Some(m));
            assert_eq!(Mix::parse(&m.name().to_ascii_lowercase()), Some(m));
        }
        assert_eq!(Mix::parse("q4_k"), Some(Mix::Q4_K_M));
        assert_eq!(Mix::parse("Q9_9"), None);
        assert_eq!(Mix::Q4_K_M.file_type(), 15);
        assert_eq!(Mix::Q5_K_M.file_type(), 17);
        assert_eq!(Mix::IQ4_XS.file_type(), 30);
        assert_eq!(Mix::parse("mxfp4_moe"), Some(Mix::MXFP4_MOE));
        assert_eq!(Mix::MXFP4_MOE.file_type(), 38);
        assert_eq!(Mix::Q3_K_L.default_type(), GgmlType::Q3_K);
    }
}
