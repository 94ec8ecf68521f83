//! The `tojson` filter as Hugging Face's chat templates get it: Python's
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
//!
//! Jinja's own `tojson` (and minijinja's) escapes `<`, `>`, `&` and `'` for HTML; the templates
//! were written against `transformers`, which replaces the filter with a plain `json.dumps`
//! (`transformers.utils.chat_template_utils`), so `"<b>"` must stay `"<b>"`. Keys keep their
//! order (the workspace builds serde_json and minijinja with `preserve_order`).

use minijinja::value::Kwargs;
use minijinja::{Error, ErrorKind, Value};
use serde_json::Value as Json;

/// How `json.dumps` lays a value out.
struct Layout {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

fn write_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn newline(out: &mut String, layout: &Layout, level: usize) {
    if let Some(unit) = &layout.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(unit);
        }
    }
}

fn write_value(out: &mut String, v: &Json, layout: &Layout, level: usize) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&python_number(n)),
        Json::String(s) => write_str(out, s, layout.ensure_ascii),
        Json::Array(items) if items.is_empty() => out.push_str("[]"),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&layout.item_sep);
                }
                newline(out, layout, level + 1);
                write_value(out, item, layout, level + 1);
            }
            newline(out, layout, level);
            out.push(']');
        }
        Json::Object(map) if map.is_empty() => out.push_str("{}"),
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            if layout.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(&layout.item_sep);
                }
                newline(out, layout, level + 1);
                write_str(out, k, layout.ensure_ascii);
                out.push_str(&layout.key_sep);
                write_value(out, item, layout, level + 1);
            }
            newline(out, layout, level);
            out.push('}');
        }
    }
}

/// A number as Python's `repr` writes it: floats keep a `.0` and use `e+XX` / `e-XX`
/// exponents beyond 1e16 / below 1e-4.
fn python_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let Some(f) = n.as_f64() else {
        return n.to_string();
    };
    if f == f.trunc() && f.abs() < 1e16 {
        return format!("{f:.1}");
    }
    let abs = f.abs();
    if (1e-4..1e16).contains(&abs) {
        return format!("{f}");
    }
    // Shortest round-trip digits in scientific form, exponent with a sign and two digits.
    let s = format!("{f:e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// `value | tojson(indent=None, ensure_ascii=False, separators=None, sort_keys=False)`.
pub fn tojson(value: Value, indent: Option<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let indent = match indent {
        Some(v) => Some(v),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let separators = kwargs.get::<Option<Value>>("separators")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                let n = i64::try_from(v)
                    .map_err(|_| bad("tojson: indent must be an integer or a string"))?;
                Some(" ".repeat(usize::try_from(n).unwrap_or(0)))
            }
        },
    };
    let (item_sep, key_sep) = match separators.filter(|s| !s.is_none() && !s.is_undefined()) {
        Some(seps) => {
            let pair: Vec<String> = seps
                .try_iter()
                .map_err(|_| bad("tojson: separators must be a pair of strings"))?
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("tojson: separators must be a pair of strings"))?;
            match <[String; 2]>::try_from(pair) {
                Ok([a, b]) => (a, b),
                Err(_) => return Err(bad("tojson: separators must be a pair of strings")),
            }
        }
        // Python's default: ", " / ": ", and "," / ": " when indenting.
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let json = serde_json::to_value(&value)
        .map_err(|e| bad(format!("tojson: cannot serialize the value: {e}")))?;
    let layout = Layout {
        ensure_ascii,
        indent,
        item_sep,
        key_sep,
        sort_keys,
    };
    let mut out = String::new();
    write_value(&mut out, &json, &layout, 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dumps(v: Json) -> String {
        let layout = Layout {
            ensure_ascii: false,
            indent: None,
            item_sep: ", ".into(),
            key_sep: ": ".into(),
            sort_keys: false,
        };
        let mut out = String::new();
        write_value(&mut out, &v, &layout, 0);
        out
    }

    /// Expected strings are Python 3.11's `json.dumps(..., ensure_ascii=False)`.
    #[test]
    fn matches_python_json_dumps() {
        assert_eq!(
            dumps(serde_json::json!({"b": "<x> & 'y'", "a": [1, 2.5, 3.0, null, true]})),
            r#"{"b": "<x> & 'y'", "a": [1, 2.5, 3.0, null, true]}"#
        );
        assert_eq!(dumps(serde_json::json!("é\u{1}\n")), "\"é\\u0001\\n\"");
        assert_eq!(dumps(serde_json::json!(1e20)), "1e+20");
        assert_eq!(dumps(serde_json::json!(1.5e-7)), "1.5e-07");
        assert_eq!(dumps(serde_json::json!({})), "{}");
    }
}
