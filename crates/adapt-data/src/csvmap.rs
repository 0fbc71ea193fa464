//! CSV / TSV import: a header row names the columns, and a column mapping — two Jinja
//! templates over the columns — turns each record into a prompt / completion pair (or, for a
//! lone `text` column, a text example). Quoted fields may hold newlines, delimiters and
//! doubled quotes; CRLF and a UTF-8 BOM are accepted.
//!
//! In templates each column is a variable (`{{ Age }}`) and `row` maps every column name to
//! its value (`{{ row["Home port"] }}`); values are strings, so use `|int` / `|float` to compare
//! numbers.
//!
//! A column without a name — the row index pandas and R write first (a header `,class,age` or
//! `"","class","age"`) — is named as pandas names it, `Unnamed: N` (N counting columns from
//! 0), and left out of the default templates; a template may still use it
//! (`{{ row["Unnamed: 0"] }}`).

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use crate::error::{At, DataError};
use crate::example::{Example, Format, Keys};
use crate::row::{digest, Row};

/// CSV / TSV settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CsvOptions {
    /// Field delimiter; default `,` (`\t` for `.tsv`, or when the header has tabs and no commas).
    pub delimiter: Option<u8>,
    /// Jinja template of the prompt.
    pub prompt_template: Option<String>,
    /// Jinja template of the completion.
    pub completion_template: Option<String>,
    /// The column to learn; the prompt then lists the other columns as `name: value` lines.
    pub completion_column: Option<String>,
}

/// How a CSV record becomes an example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CsvMapping {
    /// The header's columns.
    pub columns: Vec<String>,
    /// The delimiter used.
    pub delimiter: char,
    /// The prompt template (completions) or text template (text).
    pub prompt: String,
    /// The completion template; `None` makes text examples.
    pub completion: Option<String>,
}

impl CsvMapping {
    /// The examples' format.
    pub fn format(&self) -> Format {
        if self.completion.is_some() {
            Format::Completions
        } else {
            Format::Text
        }
    }

    fn choose(
        columns: &[String],
        opts: &CsvOptions,
        keys: &Keys,
        at: &At,
    ) -> Result<CsvMapping, DataError> {
        let has = |c: &str| columns.iter().any(|x| x == c);
        let named: Vec<&String> = columns.iter().filter(|c| !is_unnamed(c)).collect();
        let var = |c: &str| format!("{{{{ row[{}] }}}}", serde_json::Value::from(c));
        let (prompt, completion) = match (&opts.prompt_template, &opts.completion_template) {
            (Some(p), Some(c)) => (p.clone(), Some(c.clone())),
            (Some(p), None) if opts.completion_column.is_none() => (p.clone(), None),
            (p, c) => {
                let target = match &opts.completion_column {
                    Some(col) if !has(col) => {
                        return Err(DataError::CsvUnknownColumn {
                            at: at.clone(),
                            column: col.clone(),
                            available: columns.join(", "),
                        })
                    }
                    Some(col) => Some(col.clone()),
                    None if has(&keys.prompt) && has(&keys.completion) => {
                        Some(keys.completion.clone())
                    }
                    None if has(&keys.text) && named.len() == 1 => None,
                    None => named.last().map(|c| c.to_string()),
                };
                let default_prompt = match &target {
                    Some(t) if t == &keys.completion && has(&keys.prompt) => var(&keys.prompt),
                    Some(t) => named
                        .iter()
                        .filter(|c| *c != &t)
                        .map(|c| format!("{c}: {}", var(c)))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    None => var(&keys.text),
                };
                (
                    p.clone().unwrap_or(default_prompt),
                    c.clone().or_else(|| target.as_deref().map(var)),
                )
            }
        };
        Ok(CsvMapping {
            columns: columns.to_vec(),
            delimiter: ',',
            prompt,
            completion,
        })
    }
}

/// How a column without a name is called: `Unnamed: ` and its index from 0, as in pandas.
const UNNAMED: &str = "Unnamed: ";

/// Whether `column` is a column without a name (or one pandas named so when it wrote a file
/// it had read): left out of the default templates.
pub fn is_unnamed(column: &str) -> bool {
    column
        .strip_prefix(UNNAMED)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Reads a CSV file record by record and renders each through the mapping: reading is
/// sequential ([`CsvReader::read_record`]), rendering ([`CsvRenderer::render`]) needs only
/// the record, so a chunk of records can be rendered on several threads.
pub(crate) struct CsvReader<R> {
    reader: csv::Reader<BufReader<R>>,
    renderer: CsvRenderer,
    record: csv::ByteRecord,
    count: u64,
}

/// What turns a record into a [`Row`]: the mapping and its compiled templates.
pub(crate) struct CsvRenderer {
    path: PathBuf,
    mapping: CsvMapping,
    env: Environment<'static>,
    limit: usize,
}

/// A record read and not yet rendered, with where it is in the file.
pub(crate) struct CsvRecord {
    record: csv::ByteRecord,
    at: At,
}

impl<R: Read> CsvReader<R> {
    /// Reads the header of `input` and sets the mapping up; records longer than `limit` bytes
    /// are refused.
    pub(crate) fn new(
        mut input: BufReader<R>,
        path: &Path,
        opts: &CsvOptions,
        keys: &Keys,
        tsv: bool,
        limit: usize,
    ) -> Result<CsvReader<R>, DataError> {
        use std::io::BufRead;
        let header_at = At::new(path, 1);
        let head = input.fill_buf().map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let delimiter = opts.delimiter.unwrap_or(
            if tsv || (first_line.contains(&b'\t') && !first_line.contains(&b',')) {
                b'\t'
            } else {
                b','
            },
        );
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            // Records end at `\n`; a `\r` before it is removed from the last field below. (With
            // csv's CRLF terminator the `\n` is consumed with the next record, which puts the
            // next record's reported line one too early.)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(input);
        let mut header = csv::ByteRecord::new();
        let got = reader
            .read_byte_record(&mut header)
            .map_err(|e| csv_error(e, path, 1))?;
        if !got {
            return Err(DataError::EmptyFile {
                at: At::new(path, 0),
                detail: String::new(),
            });
        }
        let mut columns = Vec::with_capacity(header.len());
        for (i, name) in header.iter().enumerate() {
            let name = std::str::from_utf8(name).map_err(|e| DataError::InvalidUtf8 {
                at: header_at.clone().field(format!("column {}", i + 1)),
                byte: e.valid_up_to(),
            })?;
            let name = match name.trim() {
                "" => format!("{UNNAMED}{i}"),
                name => name.to_string(),
            };
            if columns.contains(&name) {
                return Err(DataError::CsvHeader {
                    at: header_at,
                    message: format!("column '{name}' appears twice"),
                });
            }
            columns.push(name);
        }
        let mut mapping = CsvMapping::choose(&columns, opts, keys, &header_at)?;
        mapping.delimiter = delimiter as char;
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in [
            ("prompt", Some(&mapping.prompt)),
            ("completion", mapping.completion.as_ref()),
        ] {
            let Some(source) = source else { continue };
            env.add_template_owned(name, source.clone())
                .map_err(|e| DataError::CsvTemplate {
                    at: header_at.clone().field(format!("{name} template")),
                    message: describe(&e),
                })?;
            let template = env.get_template(name).map_err(|e| DataError::CsvTemplate {
                at: header_at.clone(),
                message: describe(&e),
            })?;
            let mut unknown: Vec<String> = template
                .undeclared_variables(false)
                .into_iter()
                .filter(|v| v != "row" && !columns.contains(v))
                .collect();
            unknown.sort();
            if let Some(column) = unknown.into_iter().next() {
                return Err(DataError::CsvUnknownColumn {
                    at: header_at.field(format!("{name} template")),
                    column,
                    available: columns.join(", "),
                });
            }
        }
        Ok(CsvReader {
            reader,
            renderer: CsvRenderer {
                path: path.to_path_buf(),
                mapping,
                env,
                limit,
            },
            record: csv::ByteRecord::new(),
            count: 0,
        })
    }

    pub(crate) fn mapping(&self) -> &CsvMapping {
        &self.renderer.mapping
    }

    /// What renders the records this reader reads.
    pub(crate) fn renderer(&self) -> &CsvRenderer {
        &self.renderer
    }

    /// The next row, read and rendered.
    pub(crate) fn next(&mut self) -> Option<Result<Row, DataError>> {
        let record = self.read_record()?;
        Some(record.and_then(|r| self.renderer.render(&r)))
    }

    /// The next record, read but not rendered (blank lines skipped); `None` at the end.
    pub(crate) fn read_record(&mut self) -> Option<Result<CsvRecord, DataError>> {
        loop {
            let line = self.reader.position().line() + 1;
            let path = &self.renderer.path;
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) if self.count == 0 => {
                    self.count = 1;
                    return Some(Err(DataError::EmptyFile {
                        at: At::new(path, 0),
                        detail: " (a header but no rows)".into(),
                    }));
                }
                Ok(false) => return None,
                Err(e) => {
                    self.count += 1;
                    return Some(Err(csv_error(e, path, line)));
                }
                Ok(true) => {
                    self.count += 1;
                    let r = &self.record;
                    if r.len() == 1 && r[0].iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let line = r.position().map_or(line, |p| p.line());
                    let mut at = At::new(path, line);
                    at.record = Some(self.count);
                    return Some(Ok(CsvRecord {
                        record: r.clone(),
                        at,
                    }));
                }
            }
        }
    }
}

impl CsvRenderer {
    /// The row `record` becomes: its fields checked and rendered through the templates.
    pub(crate) fn render(&self, record: &CsvRecord) -> Result<Row, DataError> {
        let CsvRecord { record, at } = record;
        let at = at.clone();
        if record.as_slice().len() > self.limit {
            return Err(DataError::LineTooLong {
                at,
                limit: self.limit,
            });
        }
        if record.len() != self.mapping.columns.len() {
            return Err(DataError::CsvFieldCount {
                at,
                expected: self.mapping.columns.len(),
                found: record.len(),
            });
        }
        let mut pairs = Vec::with_capacity(record.len());
        let last = record.len().saturating_sub(1);
        for (i, (name, value)) in self.mapping.columns.iter().zip(record.iter()).enumerate() {
            let value = if i == last {
                value.strip_suffix(b"\r").unwrap_or(value)
            } else {
                value
            };
            let value = std::str::from_utf8(value).map_err(|e| DataError::InvalidUtf8 {
                at: at.clone().field(name.as_str()),
                byte: e.valid_up_to(),
            })?;
            pairs.push((name.as_str(), Value::from(value)));
        }
        let row: BTreeMap<&str, Value> = pairs.iter().cloned().collect();
        let mut ctx = row.clone();
        ctx.insert("row", Value::from(row));
        let ctx = Value::from(ctx);
        let render = |name: &str| -> Result<String, DataError> {
            let field = format!("{name} template");
            let text = self
                .env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| DataError::CsvTemplate {
                    at: at.clone().field(field.as_str()),
                    message: describe(&e),
                })?;
            if text.trim().is_empty() {
                return Err(DataError::EmptyContent {
                    at: at.clone().field(field.as_str()),
                });
            }
            Ok(text)
        };
        let prompt = render("prompt")?;
        let example = match self.mapping.completion {
            Some(_) => Example::Completion {
                prompt,
                completion: render("completion")?,
            },
            None => Example::Text { text: prompt },
        };
        Ok(Row {
            line: at.line,
            example,
            digest: digest(&[record.as_slice()]),
        })
    }
}

fn csv_error(e: csv::Error, path: &Path, line: u64) -> DataError {
    let line = e.position().map_or(line, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => DataError::CsvMalformed {
            at: At::new(path, line),
            message: format!("{other:?}"),
        },
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut s = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    if let Some(line) = e.line() {
        s.push_str(&format!(" (template line {line})"));
    }
    s
}
