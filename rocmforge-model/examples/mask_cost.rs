//! The host cost of constrained sampling per generated token: for JSON-schema grammars over a
//! model's vocabulary, the time to consume a token and compute the next mask (llguidance) and
//! the time to apply the mask to a logits row.
//!
//! ```text
//! cargo run --release -p rocmforge-model --example mask_cost -- models/SmolLM2-135M-Instruct.Q4_1.gguf
//! ```
//!
//! Tokens are chosen pseudo-randomly among the allowed ones (not by a model), which walks
//! deeper into strings and arrays than a model usually does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rocmforge_gguf::GgufFile;
use rocmforge_model::constraint::{Grammar, GrammarCompiler};
use rocmforge_model::tokenizer::Tokenizer;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: mask_cost <model.gguf>")?;
    let file = GgufFile::open(&path)?;
    let tok = Arc::new(Tokenizer::from_gguf(&file)?);
    let vocab = tok.vocab_size();
    let started = Instant::now();
    let compiler = GrammarCompiler::new(tok.clone())?;
    println!(
        "vocabulary {vocab} tokens; token environment built in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let schemas = [
        json!({"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]},
               "count": {"type": "integer", "minimum": 0, "maximum": 9}},
               "required": ["color", "count"], "additionalProperties": false}),
        json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
               "ok": {"type": "boolean"}}, "required": ["name", "ok"]}),
        json!({"type": "array", "items": {"type": "object", "properties": {
               "id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"},
               "maxItems": 4}}, "required": ["id", "tags"]}, "maxItems": 6}),
        json!({"type": "object"}),
    ];
    let mut logits = vec![0.5f32; vocab];
    let (mut tokens, mut step, mut apply) = (0u32, Duration::ZERO, Duration::ZERO);
    let mut compile = Duration::ZERO;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for (i, schema) in schemas.iter().enumerate() {
        for seed in 0..8u64 {
            let t0 = Instant::now();
            let mut c = compiler.compile(&Grammar::JsonSchema(schema.clone()))?;
            compile += t0.elapsed();
            rng ^= seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64;
            for _ in 0..300 {
                if c.is_complete() {
                    break;
                }
                let t1 = Instant::now();
                c.mask_logits(&mut logits);
                apply += t1.elapsed();
                let ok: Vec<u32> = (0..vocab as u32)
                    .filter(|&t| logits[t as usize].is_finite() && !tok.is_eog(t))
                    .collect();
                logits.fill(0.5);
                if ok.is_empty() {
                    break;
                }
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let t = ok[(rng >> 33) as usize % ok.len()];
                let t2 = Instant::now();
                c.accept(t)?;
                step += t2.elapsed();
                tokens += 1;
            }
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(tokens.max(1));
    println!(
        "{tokens} tokens over {} grammars: consume + next mask {:.1} us/token, mask applied to the logits {:.1} us/token, compile {:.2} ms/grammar",
        schemas.len() * 8,
        per(step),
        per(apply),
        compile.as_secs_f64() * 1e3 / (schemas.len() * 8) as f64
    );
    Ok(())
}
