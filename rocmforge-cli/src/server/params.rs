//! Checking the request fields and turning them into the engine's [`GenerateParams`].

use rocmforge_model::engine::MAX_TOP_LOGPROBS;
use rocmforge_model::{GenerateParams, SamplingParams};

use super::error::ApiError;
use super::logit_bias;
use super::types::{CommonFields, StopField};

/// Most stop strings per request.
pub const MAX_STOP_STRINGS: usize = 16;
/// Longest stop string in bytes.
pub const MAX_STOP_BYTES: usize = 256;
/// Most completions (`n`) per request.
pub const MAX_N: i64 = 16;

/// What a request asks for, checked.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Generation parameters for the engine.
    pub params: GenerateParams,
    /// Stream the answer.
    pub stream: bool,
    /// Send usage in the last streamed chunk.
    pub include_usage: bool,
    /// `Some(k)`: report each token's log-probability with `k` alternatives.
    pub logprobs: Option<usize>,
    /// Completions to generate for the prompt (`n`), each its own sequence in the batch; the
    /// i-th samples with `params.sampling.seed + i`.
    pub n: usize,
}

fn in_range(name: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<Option<f32>, ApiError> {
    match v {
        None => Ok(None),
        Some(x) if x.is_finite() && x >= lo && x <= hi => Ok(Some(x as f32)),
        Some(x) => Err(ApiError::invalid(
            Some(name),
            format!("{name} must be between {lo} and {hi}, got {x}"),
        )),
    }
}

fn stops(field: Option<&StopField>) -> Result<Vec<String>, ApiError> {
    let list = match field {
        None => Vec::new(),
        Some(StopField::One(s)) => vec![s.clone()],
        Some(StopField::Many(v)) => v.clone(),
    };
    if list.len() > MAX_STOP_STRINGS {
        return Err(ApiError::invalid(
            Some("stop"),
            format!(
                "at most {MAX_STOP_STRINGS} stop strings are allowed, got {}",
                list.len()
            ),
        ));
    }
    if let Some(long) = list.iter().find(|s| s.len() > MAX_STOP_BYTES) {
        return Err(ApiError::invalid(
            Some("stop"),
            format!(
                "a stop string of {} bytes is longer than the limit of {MAX_STOP_BYTES}",
                long.len()
            ),
        ));
    }
    Ok(list)
}

/// An integer field in `0..=max`, or `None` when absent or null.
fn small_int(
    name: &str,
    v: Option<&serde_json::Value>,
    max: u64,
) -> Result<Option<usize>, ApiError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(x) => match x.as_u64().filter(|&n| n <= max) {
            Some(n) => Ok(Some(n as usize)),
            None => Err(ApiError::invalid(
                Some(name),
                format!("{name} must be an integer between 0 and {max}, got {x}"),
            )),
        },
    }
}

/// The log-probabilities asked for: chat's `logprobs: true` with `top_logprobs` alternatives,
/// or completions' `logprobs: N` (N alternatives); `None` when not asked.
fn logprobs_wanted(c: &CommonFields) -> Result<Option<usize>, ApiError> {
    use serde_json::Value;
    let max = MAX_TOP_LOGPROBS as u64;
    let top = small_int("top_logprobs", c.top_logprobs.as_ref(), max)?;
    match &c.logprobs {
        None | Some(Value::Null) | Some(Value::Bool(false)) => match top {
            Some(t) if t > 0 => Err(ApiError::invalid(
                Some("top_logprobs"),
                "top_logprobs requires logprobs to be true",
            )),
            _ => Ok(None),
        },
        Some(Value::Bool(true)) => Ok(Some(top.unwrap_or(0))),
        Some(n @ Value::Number(_)) => small_int("logprobs", Some(n), max),
        Some(other) => Err(ApiError::invalid(
            Some("logprobs"),
            format!(
                "logprobs must be a boolean (chat) or an integer between 0 and {max} (completions), got {other}"
            ),
        )),
    }
}

/// What the served model bounds a request by.
#[derive(Debug, Clone, Copy)]
pub struct ModelLimits<'a> {
    /// The served model's id (a request naming another is refused).
    pub id: &'a str,
    /// Tokens per sequence.
    pub ctx: usize,
    /// Tokens of the vocabulary (`logit_bias` keys lie below).
    pub vocab: usize,
}

/// Checks the shared fields against the served model.
pub fn check(c: &CommonFields, model: ModelLimits<'_>) -> Result<Checked, ApiError> {
    let ModelLimits { id, ctx, vocab } = model;
    if let Some(asked) = c.model.as_deref().filter(|m| *m != id) {
        return Err(ApiError::unknown_model(asked));
    }
    let logprobs = logprobs_wanted(c)?;
    let n = match c.n {
        None => 1,
        Some(n) if (1..=MAX_N).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(
                Some("n"),
                format!("n must be between 1 and {MAX_N}, got {n}"),
            ));
        }
    };
    let (param, requested) = match (c.max_completion_tokens, c.max_tokens) {
        (Some(m), _) => ("max_completion_tokens", Some(m)),
        (None, m) => ("max_tokens", m),
    };
    let max_tokens = match requested {
        None => ctx.min(512),
        Some(m) if m >= 1 && (m as u64) < ctx as u64 => m as usize,
        Some(m) => {
            return Err(ApiError::invalid(
                Some(param),
                format!(
                    "{param} must be between 1 and {} (the context size less one), got {m}",
                    ctx.saturating_sub(1)
                ),
            ));
        }
    };
    let defaults = SamplingParams::default();
    let temperature = in_range("temperature", c.temperature, 0.0, 2.0)?.unwrap_or(1.0);
    let top_p = in_range("top_p", c.top_p, 0.0, 1.0)?.unwrap_or(1.0);
    let min_p = in_range("min_p", c.min_p, 0.0, 1.0)?.unwrap_or(0.0);
    let presence = in_range("presence_penalty", c.presence_penalty, -2.0, 2.0)?.unwrap_or(0.0);
    let frequency = in_range("frequency_penalty", c.frequency_penalty, -2.0, 2.0)?.unwrap_or(0.0);
    let repeat = in_range("repeat_penalty", c.repeat_penalty, 0.01, 10.0)?.unwrap_or(1.0);
    let top_k = match c.top_k {
        None => 0,
        Some(k) if (0..=1_000_000).contains(&k) => k as usize,
        Some(k) => {
            return Err(ApiError::invalid(
                Some("top_k"),
                format!("top_k must be between 0 and 1000000, got {k}"),
            ));
        }
    };
    let seed = c.seed.map_or_else(random_seed, |s| s as u64);
    let sampling = SamplingParams {
        temperature,
        top_k,
        top_p,
        min_p,
        repeat_penalty: repeat,
        presence_penalty: presence,
        frequency_penalty: frequency,
        seed,
        logit_bias: logit_bias::parse(c.logit_bias.as_ref(), vocab)?,
        ..defaults
    };
    sampling
        .validate()
        .map_err(|e| ApiError::invalid(None, e.to_string()))?;
    Ok(Checked {
        params: GenerateParams {
            max_tokens,
            sampling,
            stop: stops(c.stop.as_ref())?,
        },
        stream: c.stream,
        include_usage: c.stream_options.as_ref().is_some_and(|o| o.include_usage),
        logprobs,
        n,
    })
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::server::types::common_fields as fields;

    fn check(c: &CommonFields, id: &str, ctx: usize) -> Result<Checked, ApiError> {
        super::check(
            c,
            ModelLimits {
                id,
                ctx,
                vocab: 1000,
            },
        )
    }

    #[test]
    fn defaults_and_limits() {
        let ok = check(
            &fields(r#"{"model":"m","max_tokens":5,"temperature":0}"#),
            "m",
            100,
        )
        .unwrap();
        assert_eq!(ok.params.max_tokens, 5);
        assert_eq!(ok.params.sampling.temperature, 0.0);
        assert_eq!(ok.n, 1);
        assert_eq!(check(&fields(r#"{"n":3}"#), "m", 100).unwrap().n, 3);
        let streamed = check(&fields(r#"{"n":3,"stream":true}"#), "m", 100).unwrap();
        assert_eq!((streamed.n, streamed.stream), (3, true));
        for bad in [
            r#"{"max_tokens":0}"#,
            r#"{"max_tokens":-3}"#,
            r#"{"max_tokens":2147483648}"#,
            r#"{"max_completion_tokens":100}"#,
            r#"{"temperature":3}"#,
            r#"{"top_p":-0.5}"#,
            r#"{"n":0}"#,
            r#"{"n":17}"#,
            r#"{"model":"other"}"#,
        ] {
            let e = check(&fields(bad), "m", 100).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad}");
        }
        let many = format!(
            r#"{{"stop":{}}}"#,
            serde_json::to_string(&vec!["x"; 10_000]).unwrap()
        );
        assert_eq!(
            check(&fields(&many), "m", 100)
                .unwrap_err()
                .param
                .as_deref(),
            Some("stop")
        );
    }

    #[test]
    fn logit_bias_goes_to_the_sampler_and_defaults_ask_nothing() {
        let c = check(&fields(r#"{"logit_bias":{"15":-100,"7":3}}"#), "m", 100).unwrap();
        assert_eq!(
            c.params.sampling.logit_bias.to_vec(),
            vec![(7, 3.0), (15, -100.0)]
        );
        let e = check(&fields(r#"{"logit_bias":{"1000":1}}"#), "m", 100).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("logit_bias"));
        // What asks for nothing passes (clients send these defaults).
        for json in [
            r#"{"tools":[],"tool_choice":"none"}"#,
            r#"{"response_format":{"type":"text"}}"#,
            r#"{"logprobs":false,"top_logprobs":0,"logit_bias":{}}"#,
            r#"{"logprobs":null,"grammar":null,"json_schema":null,"tools":null}"#,
        ] {
            let c = check(&fields(json), "m", 100).unwrap();
            assert!(c.params.sampling.logit_bias.is_empty(), "{json}");
        }
    }

    #[test]
    fn logprobs_in_the_chat_and_the_completions_forms() {
        let wanted = |json: &str| check(&fields(json), "m", 100).map(|c| c.logprobs);
        assert_eq!(wanted(r#"{"logprobs":true}"#).unwrap(), Some(0));
        assert_eq!(
            wanted(r#"{"logprobs":true,"top_logprobs":5}"#).unwrap(),
            Some(5)
        );
        assert_eq!(wanted(r#"{"logprobs":3}"#).unwrap(), Some(3));
        assert_eq!(wanted(r#"{"logprobs":0}"#).unwrap(), Some(0));
        assert_eq!(wanted(r#"{"logprobs":false}"#).unwrap(), None);
        assert_eq!(wanted("{}").unwrap(), None);
        for (json, param) in [
            (r#"{"top_logprobs":2}"#, "top_logprobs"),
            (r#"{"logprobs":true,"top_logprobs":21}"#, "top_logprobs"),
            (r#"{"logprobs":true,"top_logprobs":-1}"#, "top_logprobs"),
            (r#"{"logprobs":21}"#, "logprobs"),
            (r#"{"logprobs":"yes"}"#, "logprobs"),
            (r#"{"logprobs":1.5}"#, "logprobs"),
        ] {
            let e = check(&fields(json), "m", 100).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{json}");
            assert_eq!(e.param.as_deref(), Some(param), "{json}");
        }
    }
}
