//! Conversation sets for the topic-isolation experiment (`adapt isolate bench`): JSON Lines,
//! one conversation per line — `{"id", "system", "turns": [{"topic", "user", "assistant"}],
//! "questions": [{"topic", "user", "answer"}]}` — whose turns interleave topics and whose
//! questions each ask for a fact one topic's turns state. Every problem names the file, the
//! line and the field.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{At, DataError};
use crate::example::type_name;

/// One conversation of the set.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConversation {
    pub id: String,
    /// The 1-based line it was read from.
    pub line: u64,
    pub system: String,
    pub turns: Vec<LabelledTurn>,
    pub questions: Vec<Question>,
}

/// A turn of the history, labelled with its topic.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledTurn {
    pub topic: String,
    pub user: String,
    pub assistant: String,
}

/// A final question about one topic, with the answer its turns give.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub topic: String,
    pub user: String,
    pub answer: String,
}

impl TopicConversation {
    /// The topic labels in the order they first appear.
    pub fn topics(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for t in &self.turns {
            if !out.contains(&t.topic.as_str()) {
                out.push(&t.topic);
            }
        }
        out
    }
}

/// Reads and checks the set in `path`.
pub fn read_set(path: &Path) -> Result<Vec<TopicConversation>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out: Vec<TopicConversation> = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let at = || At::new(path, line);
        let text = std::str::from_utf8(raw).map_err(|e| DataError::InvalidUtf8 {
            at: at(),
            byte: e.valid_up_to(),
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(text).map_err(|e| DataError::MalformedJson {
            at: at(),
            message: e.to_string(),
        })?;
        let conversation = conversation(&value, path, line)?;
        if let Some(first) = out.iter().find(|c| c.id == conversation.id) {
            return Err(DataError::IsolationSet {
                at: at().field("id"),
                message: format!(
                    "the id '{}' is used on line {} already; give each conversation its own",
                    conversation.id, first.line
                ),
            });
        }
        out.push(conversation);
    }
    if out.is_empty() {
        return Err(DataError::EmptyFile {
            at: At::new(path, 0),
            detail: String::new(),
        });
    }
    Ok(out)
}

fn conversation(value: &Value, path: &Path, line: u64) -> Result<TopicConversation, DataError> {
    let at = |field: &str| At::new(path, line).field(field);
    let object = value.as_object().ok_or_else(|| DataError::WrongType {
        at: At::new(path, line),
        expected: "an object",
        found: type_name(value),
    })?;
    let id = text(object, "id", &at("id"))?;
    let system = text(object, "system", &at("system"))?;
    let turns = triples(object, "turns", ["topic", "user", "assistant"], &at)?
        .into_iter()
        .map(|[topic, user, assistant]| LabelledTurn {
            topic,
            user,
            assistant,
        })
        .collect();
    let questions = triples(object, "questions", ["topic", "user", "answer"], &at)?
        .into_iter()
        .map(|[topic, user, answer]| Question {
            topic,
            user,
            answer,
        })
        .collect();
    let c = TopicConversation {
        id,
        line,
        system,
        turns,
        questions,
    };
    let rule = |field: String, message: String| DataError::IsolationSet {
        at: at(&field),
        message,
    };
    if c.turns.is_empty() {
        return Err(rule(
            "turns".into(),
            "there are no turns; add the history".into(),
        ));
    }
    if c.questions.is_empty() {
        return Err(rule(
            "questions".into(),
            "there are no questions; add at least one".into(),
        ));
    }
    let topics = c.topics();
    for (i, q) in c.questions.iter().enumerate() {
        if !topics.contains(&q.topic.as_str()) {
            return Err(rule(
                format!("questions[{i}].topic"),
                format!(
                    "no turn has the topic '{}' (the turns' topics: {}); a question asks about \
                     a topic of its conversation",
                    q.topic,
                    topics.join(", ")
                ),
            ));
        }
    }
    Ok(c)
}

/// The list `key` of objects, each with the text fields `keys` (errors name `key[i].field`).
fn triples(
    object: &Map<String, Value>,
    key: &str,
    keys: [&str; 3],
    at: &dyn Fn(&str) -> At,
) -> Result<Vec<[String; 3]>, DataError> {
    list(object, key, &at(key))?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let o = item.as_object().ok_or_else(|| DataError::WrongType {
                at: at(&format!("{key}[{i}]")),
                expected: "an object",
                found: type_name(item),
            })?;
            let field = |k: &str| text(o, k, &at(&format!("{key}[{i}].{k}")));
            Ok([field(keys[0])?, field(keys[1])?, field(keys[2])?])
        })
        .collect()
}

fn text(object: &Map<String, Value>, key: &str, at: &At) -> Result<String, DataError> {
    match object.get(key) {
        None => Err(DataError::MissingKey {
            at: at.clone(),
            key: key.to_string(),
        }),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(DataError::EmptyContent { at: at.clone() })
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(DataError::WrongType {
            at: at.clone(),
            expected: "a string",
            found: type_name(other),
        }),
    }
}

fn list<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    at: &At,
) -> Result<&'a Vec<Value>, DataError> {
    match object.get(key) {
        None => Err(DataError::MissingKey {
            at: at.clone(),
            key: key.to_string(),
        }),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(DataError::WrongType {
            at: at.clone(),
            expected: "an array",
            found: type_name(other),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<TopicConversation>, DataError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set.jsonl");
        std::fs::write(&path, text).unwrap();
        read_set(&path)
    }

    const GOOD: &str = r#"{"id": "a", "system": "Be brief.", "turns": [{"topic": "cats", "user": "My cat is Pepper.", "assistant": "Nice."}, {"topic": "boats", "user": "My boat is Wren.", "assistant": "Lovely."}], "questions": [{"topic": "cats", "user": "My cat's name?", "answer": "Pepper"}]}"#;

    #[test]
    fn a_good_set_reads_with_its_topics_in_order() {
        let set = read(&format!("{GOOD}\n\n")).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].topics(), ["cats", "boats"]);
        assert_eq!(set[0].questions[0].answer, "Pepper");
        assert_eq!(set[0].line, 1);
    }

    #[test]
    fn problems_name_the_line_and_the_field() {
        let cases = [
            (
                GOOD.replace(r#""topic": "boats""#, r#""topic": 3"#),
                "turns[1].topic",
                "data.wrong_type",
            ),
            (
                GOOD.replace(r#", "answer": "Pepper""#, ""),
                "questions[0].answer",
                "data.missing_key",
            ),
            (
                GOOD.replace(r#""user": "My cat's name?""#, r#""user": " ""#),
                "questions[0].user",
                "data.empty_content",
            ),
            (
                GOOD.replace(
                    r#"{"topic": "cats", "user": "My cat's"#,
                    r#"{"topic": "dogs", "user": "My cat's"#,
                ),
                "questions[0].topic",
                "data.isolation_set",
            ),
        ];
        for (line, field, code) in cases {
            let e = read(&format!("{GOOD}\n{line}\n")).unwrap_err();
            assert_eq!(e.code(), code, "{e}");
            let message = e.to_string();
            assert!(message.contains("set.jsonl:2"), "{message}");
            assert!(message.contains(&format!("field '{field}'")), "{message}");
        }
        let e = read(&format!("{GOOD}\n{GOOD}\n")).unwrap_err();
        assert!(e.to_string().contains("used on line 1"), "{e}");
        assert_eq!(read("{oops\n").unwrap_err().code(), "data.malformed_json");
        assert_eq!(read("\n").unwrap_err().code(), "data.empty_file");
    }

    #[test]
    fn the_example_set_reads() {
        let path = adapt_testsupport::repo_root().join("examples/topics/conversations.jsonl");
        let set = read_set(&path).unwrap();
        assert!(set.len() >= 20);
        for c in &set {
            assert_eq!(c.topics().len(), 3, "{}", c.id);
            assert_eq!(c.questions.len(), 3, "{}", c.id);
        }
    }
}
