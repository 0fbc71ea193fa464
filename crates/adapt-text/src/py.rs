//! Python-compatible formatting for chat templates: `str()` of values as Jinja2 prints them, and
//! `json.dumps` as transformers' `tojson` filter calls it.

use std::fmt::Write;

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16.
pub(crate) fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Rust: "1.5e-7" / "1e16"; Python: "1.5e-07" / "1e+16".
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        s + ".0"
    }
}

/// Python's `repr(str)`.
fn str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `str(value)` for what a template prints: `None`, `True`, `1.0`, `['a', 1]`,
/// `{'k': 'v'}`. Strings print as themselves; `None` is returned for undefined (prints empty).
pub(crate) fn py_str(v: &Value) -> Option<String> {
    match v.kind() {
        ValueKind::Undefined => None,
        ValueKind::String => Some(v.as_str().unwrap_or_default().to_string()),
        _ => {
            let mut out = String::new();
            repr(v, &mut out, 0);
            Some(out)
        }
    }
}

/// Python's `repr(value)`; nested containers print their items with `repr`.
fn repr(v: &Value, out: &mut String, depth: usize) {
    if depth > 64 {
        out.push_str("...");
        return;
    }
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::Number if !v.is_integer() => out.push_str(&float_repr(as_f64(v))),
        ValueKind::String => str_repr(v.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (i, item) in v.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr(&item, out, depth + 1);
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in v.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr(&key, out, depth + 1);
                out.push_str(": ");
                repr(&v.get_item(&key).unwrap_or_default(), out, depth + 1);
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{v}");
        }
    }
}

fn as_f64(v: &Value) -> f64 {
    f64::try_from(v.clone()).unwrap_or(f64::NAN)
}

/// Options of Python's `json.dumps` that `tojson` exposes.
pub(crate) struct JsonOptions {
    pub indent: Option<String>,
    pub item_sep: String,
    pub key_sep: String,
    pub sort_keys: bool,
    pub ensure_ascii: bool,
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions {
            indent: None,
            item_sep: ", ".into(),
            key_sep: ": ".into(),
            sort_keys: false,
            ensure_ascii: false,
        }
    }
}

/// `json.dumps(value, ...)` with Python's formatting.
pub(crate) fn json_dumps(v: &Value, opts: &JsonOptions) -> Result<String, Error> {
    let mut out = String::new();
    dump(v, opts, 0, &mut out)?;
    Ok(out)
}

fn dump(v: &Value, o: &JsonOptions, level: usize, out: &mut String) -> Result<(), Error> {
    if level > 128 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nests too deeply",
        ));
    }
    match v.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number if v.is_integer() => {
            let _ = write!(out, "{v}");
        }
        ValueKind::Number => {
            let f = as_f64(v);
            out.push_str(&if f.is_nan() {
                "NaN".to_string()
            } else if f.is_infinite() {
                if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
            } else {
                float_repr(f)
            });
        }
        ValueKind::String => json_str(v.as_str().unwrap_or_default(), o.ensure_ascii, out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            container(out, o, level, '[', ']', items.len(), |i, out| {
                dump(&items[i], o, level + 1, out)
            })?;
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if o.sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            container(out, o, level, '{', '}', keys.len(), |i, out| {
                let key = &keys[i];
                match key.as_str() {
                    Some(s) => json_str(s, o.ensure_ascii, out),
                    None => json_str(&py_str(key).unwrap_or_default(), o.ensure_ascii, out),
                }
                out.push_str(&o.key_sep);
                dump(&v.get_item(key)?, o, level + 1, out)
            })?;
        }
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: a value of type {kind} is not JSON serializable"),
            ))
        }
    }
    Ok(())
}

fn container(
    out: &mut String,
    o: &JsonOptions,
    level: usize,
    open: char,
    close: char,
    len: usize,
    mut item: impl FnMut(usize, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if len == 0 {
        out.push(close);
        return Ok(());
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(indent) = &o.indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(indent);
            }
        }
    };
    for i in 0..len {
        if i > 0 {
            out.push_str(&o.item_sep);
        }
        newline(out, level + 1);
        item(i, out)?;
    }
    newline(out, level);
    out.push(close);
    Ok(())
}

fn json_str(s: &str, ensure_ascii: bool, out: &mut String) {
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
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (123456789.0, "123456789.0"),
            (1e-4, "0.0001"),
            (0.0, "0.0"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(float_repr(f), want);
        }
    }

    #[test]
    fn str_of_values_is_python_like() {
        let v = Value::from(minijinja::value::Serde(
            serde_json::json!({"a": [1, "it's", null, true, 2.0]}),
        ));
        assert_eq!(
            py_str(&v).as_deref(),
            Some("{'a': [1, \"it's\", None, True, 2.0]}")
        );
        assert_eq!(py_str(&Value::from(false)).as_deref(), Some("False"));
        assert_eq!(py_str(&Value::UNDEFINED), None);
    }

    #[test]
    fn json_dumps_matches_python() {
        let v = Value::from(minijinja::value::Serde(
            serde_json::json!({"name": "f", "x": [1, 2.5, "é\n\"q\""], "o": {}, "n": null}),
        ));
        assert_eq!(
            json_dumps(&v, &JsonOptions::default()).ok().as_deref(),
            Some(r#"{"name": "f", "x": [1, 2.5, "é\n\"q\""], "o": {}, "n": null}"#)
        );
        let opts = JsonOptions {
            indent: Some("  ".into()),
            item_sep: ",".into(),
            sort_keys: true,
            ensure_ascii: true,
            ..JsonOptions::default()
        };
        assert_eq!(
            json_dumps(&v, &opts).ok().as_deref(),
            Some("{\n  \"n\": null,\n  \"name\": \"f\",\n  \"o\": {},\n  \"x\": [\n    1,\n    2.5,\n    \"\\u00e9\\n\\\"q\\\"\"\n  ]\n}")
        );
    }
}
