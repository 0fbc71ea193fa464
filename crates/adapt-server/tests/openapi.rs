//! `openapi.json` against the handlers: it lists exactly the routes the server serves, and
//! every operation, called with its documented example on a live server, answers with a body
//! that holds to its documented schema (types, required fields, enums, items, `$ref`s).

mod common;

use std::collections::BTreeSet;

use adapt_api::ServerSettings;
use adapt_server::routes::{OPENAPI, ROUTES};
use common::{lock, raw, tiny_model, Harness};
use serde_json::Value;

fn doc() -> Value {
    serde_json::from_str(OPENAPI).unwrap()
}

/// `value` against `schema` (the subset of JSON Schema the description uses); the problems.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return check(
            doc,
            &doc["components"]["schemas"][name],
            value,
            at,
            problems,
        );
    }
    if let Some(all) = schema["allOf"].as_array() {
        return all.iter().for_each(|s| check(doc, s, value, at, problems));
    }
    if let Some(any) = schema["oneOf"].as_array() {
        let fits = any.iter().any(|s| {
            let mut p = Vec::new();
            check(doc, s, value, at, &mut p);
            p.is_empty()
        });
        if !fits {
            problems.push(format!("{at}: fits none of oneOf"));
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let fits = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !fits {
        problems.push(format!("{at}: a {kind}, documented as {types:?}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            problems.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Value::Object(object) = value {
        for field in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(field.as_str().unwrap()) {
                problems.push(format!("{at}: '{field}' is missing"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, sub) in properties {
                if let Some(v) = object.get(name) {
                    check(doc, sub, v, &format!("{at}.{name}"), problems);
                }
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check(doc, item, v, &format!("{at}[{i}]"), problems);
        }
    }
}

#[test]
fn the_description_lists_exactly_the_routes_served() {
    let doc = doc();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);
}

#[test]
fn every_operation_answers_its_example_as_documented() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let h = Harness::start(
        &dir.path().join("data"),
        &model,
        None,
        ServerSettings::default(),
    );
    let doc = doc();
    let mut problems = Vec::new();
    for (method, path) in ROUTES {
        let op = &doc["paths"][path][method.to_lowercase()];
        let url_path = path.replace("{model}", &h.base);
        let body = op["requestBody"]["content"]["application/json"]["example"]
            .to_string()
            .replace("BASE", &h.base);
        let body = (*method == "POST").then_some(body.as_str());
        let (status, text) = raw(&h.url, method, &url_path, None, body);
        assert_eq!(status, 200, "{method} {path}: {text}");
        let value: Value = serde_json::from_str(&text).unwrap();
        let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
        check(
            &doc,
            schema,
            &value,
            &format!("{method} {path}"),
            &mut problems,
        );
    }
    // A documented error, too.
    let (status, text) = raw(&h.url, "GET", "/v1/models/none", None, None);
    assert_eq!(status, 404);
    let error = &doc["components"]["responses"]["Error"]["content"]["application/json"]["schema"];
    check(
        &doc,
        error,
        &serde_json::from_str(&text).unwrap(),
        "error",
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:#?}");
}
