//! `logit_bias`: OpenAI's map from token id (a decimal string) to a bias in [-100, 100], added to
//! that token's logit before sampling (on whichever backend samples: see rocmforge-tensor's
//! `sample_rows`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::error::ApiError;

/// Most entries of one request's `logit_bias`.
pub const MAX_ENTRIES: usize = 1024;
/// The bias range OpenAI accepts.
pub const MAX_BIAS: f64 = 100.0;

fn invalid(message: String) -> ApiError {
    ApiError::invalid(Some("logit_bias"), message)
}

/// The request's `logit_bias` as distinct `(token, bias)` pairs in token order, for a model of
/// `vocab` tokens; `null` and `{}` ask for nothing, and zero biases are dropped.
pub fn parse(field: Option<&Value>, vocab: usize) -> Result<Arc<[(u32, f32)]>, ApiError> {
    let map = match field {
        None | Some(Value::Null) => return Ok(Arc::from([])),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(invalid(format!(
                "logit_bias must be an object mapping token ids to biases, got {other}"
            )));
        }
    };
    if map.len() > MAX_ENTRIES {
        return Err(invalid(format!(
            "logit_bias has {} entries; at most {MAX_ENTRIES} are allowed",
            map.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (key, value) in map {
        // Digits only (no sign, spaces or exponent), as a token id is written.
        let token = key
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| key.parse::<u32>().ok())
            .flatten()
            .filter(|&t| (t as usize) < vocab);
        let Some(token) = token else {
            return Err(invalid(format!(
                "Invalid key in 'logit_bias': {key:?}. Keys must be token ids between 0 and {}",
                vocab.saturating_sub(1)
            )));
        };
        let bias = value
            .as_f64()
            .filter(|b| b.is_finite() && (-MAX_BIAS..=MAX_BIAS).contains(b));
        let Some(bias) = bias else {
            return Err(invalid(format!(
                "Invalid value for 'logit_bias' key {key}: {value}. Biases must be numbers \
                 between -{MAX_BIAS} and {MAX_BIAS}"
            )));
        };
        // Two keys naming one token ("7" and "07"): the last one counts.
        if bias != 0.0 {
            out.insert(token, bias as f32);
        } else {
            out.remove(&token);
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parsed(json: &str) -> Result<Vec<(u32, f32)>, ApiError> {
        let v: Value = serde_json::from_str(json).unwrap();
        parse(Some(&v), 1000).map(|b| b.to_vec())
    }

    #[test]
    fn token_ids_to_biases_in_token_order() {
        assert_eq!(
            parsed(r#"{"15": -100, "3": 2.5, "999": 100, "4": 0}"#).unwrap(),
            vec![(3, 2.5), (15, -100.0), (999, 100.0)]
        );
        assert!(parsed("{}").unwrap().is_empty());
        assert!(parsed("null").unwrap().is_empty());
        assert!(parse(None, 1000).unwrap().is_empty());
    }

    #[test]
    fn bad_keys_and_values_are_400s_naming_the_field() {
        for json in [
            r#"{"1000": 1}"#,
            r#"{"-1": 1}"#,
            r#"{"abc": 1}"#,
            r#"{"1e2": 1}"#,
            r#"{" 5": 1}"#,
            r#"{"": 1}"#,
            r#"{"99999999999999999999": 1}"#,
            r#"{"5": 100.5}"#,
            r#"{"5": -101}"#,
            r#"{"5": "1"}"#,
            r#"{"5": null}"#,
            r#"{"5": [1]}"#,
            r#"[[5, 1]]"#,
            r#""5""#,
        ] {
            let e = parsed(json).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{json}");
            assert_eq!(e.param.as_deref(), Some("logit_bias"), "{json}");
        }
        let many: serde_json::Map<String, Value> = (0..=MAX_ENTRIES)
            .map(|i| (i.to_string(), Value::from(1)))
            .collect();
        let e = parse(Some(&Value::Object(many)), 10_000).unwrap_err();
        assert!(e.message.contains("at most"), "{}", e.message);
    }
}
