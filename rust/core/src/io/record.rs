//! From raw records to documents: text, id, optional dedup key, and (for JSONL) the raw fields
//! needed to rewrite a record without touching the others.

use std::borrow::Cow;
use std::marker::PhantomData;

use arrow_array::{Array, ArrayRef, StringArray};
use arrow_schema::DataType;
use rayon::prelude::*;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::batch::{Batch, BatchData};
use crate::error::{json_type_name, Location};
use crate::{RecordError, Result};

/// Which fields make a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Field holding the text (default `text`).
    pub text_key: String,
    /// Field holding the id (default `id`).
    pub id_key: String,
    /// Optional extra string field to read (e.g. `url` for `dedup exact --key url`).
    pub key: Option<String>,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            text_key: "text".into(),
            id_key: "id".into(),
            key: None,
        }
    }
}

/// The top-level fields of a JSON object, in order, with their values as raw JSON text.
#[derive(Debug, Default)]
pub struct JsonFields<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonFields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de> Visitor<'de> for V<'de> {
            type Value = JsonFields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    fields.push((k, v));
                }
                Ok(JsonFields(fields))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

impl<'a> JsonFields<'a> {
    /// The raw value of `key` (the last one if the key is repeated, as JSON parsers do).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// Where a document's other fields live, for writers.
#[derive(Debug)]
pub enum DocSource<'a> {
    /// A JSONL line.
    Json {
        /// The raw line.
        raw: &'a str,
    },
    /// A row of the batch's record batch.
    Row(usize),
}

/// One document.
#[derive(Debug)]
pub struct Doc<'a> {
    /// The id: the id field, or `"{file name}:{line or row}"` when missing or null.
    pub id: Cow<'a, str>,
    /// Whether `id` was generated (the writer then adds it to the record).
    pub id_generated: bool,
    /// The text.
    pub text: Cow<'a, str>,
    /// The value of [`ExtractOptions::key`], when asked for.
    pub key: Option<Cow<'a, str>>,
    /// Line or row in the file.
    pub location: Location,
    /// The record's other fields.
    pub source: DocSource<'a>,
}

/// String views of a Parquet batch's text, id and key columns (cast to UTF-8 where needed).
/// A missing or non-string text or key column is a problem of every row, reported per row so
/// that `--on-error skip` can skip and count them like bad JSONL records.
#[derive(Debug)]
pub struct BatchColumns {
    text: std::result::Result<StringArray, RecordError>,
    id: Option<StringArray>,
    key: Option<std::result::Result<StringArray, RecordError>>,
}

fn as_strings(col: &ArrayRef) -> Option<StringArray> {
    let cast: ArrayRef = arrow_cast::cast(col, &DataType::Utf8).ok()?;
    cast.as_any().downcast_ref::<StringArray>().cloned()
}

fn is_string_type(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        // Dictionary-encoded strings (polars' Categorical, pandas' category).
        DataType::Dictionary(_, values) => is_string_type(values),
        _ => false,
    }
}

impl BatchColumns {
    /// Look up and cast the columns of an Arrow batch; a JSONL batch needs none.
    pub fn new(batch: &Batch, opts: &ExtractOptions) -> Result<Self> {
        let BatchData::Arrow { batch: rb, .. } = &batch.data else {
            return Ok(BatchColumns {
                text: Err(RecordError::NotAnObject),
                id: None,
                key: None,
            });
        };
        let text = match rb.column_by_name(&opts.text_key) {
            None => Err(RecordError::MissingText(opts.text_key.clone())),
            Some(c) if !is_string_type(c.data_type()) => Err(RecordError::TextNotString {
                key: opts.text_key.clone(),
                found: "a non-string column",
            }),
            Some(c) => as_strings(c).ok_or_else(|| RecordError::MissingText(opts.text_key.clone())),
        };
        let key = opts.key.as_ref().map(|k| match rb.column_by_name(k) {
            None => Err(RecordError::MissingKey(k.clone())),
            Some(c) if !is_string_type(c.data_type()) => Err(RecordError::KeyNotString {
                key: k.clone(),
                found: "a non-string column",
            }),
            Some(c) => as_strings(c).ok_or_else(|| RecordError::MissingKey(k.clone())),
        });
        // Ids of any type are read as text (integers, for instance); when that fails they are generated.
        let id = rb.column_by_name(&opts.id_key).and_then(as_strings);
        Ok(BatchColumns { text, id, key })
    }
}

pub(crate) fn raw_str(raw: &RawValue) -> std::result::Result<Cow<'_, str>, RecordError> {
    let s = raw.get();
    if !s.starts_with('"') {
        return Err(RecordError::TextNotString {
            key: String::new(),
            found: json_type_name(s),
        });
    }
    let inner = &s[1..s.len() - 1];
    if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
        Ok(Cow::Borrowed(inner))
    } else {
        serde_json::from_str::<String>(s)
            .map(Cow::Owned)
            .map_err(|e| RecordError::InvalidJson(e.to_string()))
    }
}

fn json_error(e: &serde_json::Error) -> RecordError {
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &msg[..i], e.column()),
        None => msg,
    };
    RecordError::InvalidJson(msg)
}

/// A field value where a string is expected: the string (borrowed when it has no escapes), or
/// the JSON type found instead.
enum TextValue<'a> {
    Str(Cow<'a, str>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for TextValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextValue<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(TextValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(TextValue::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(TextValue::Str(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<Self::Value, E> {
                Ok(TextValue::Other("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<Self::Value, E> {
                Ok(TextValue::Other("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<Self::Value, E> {
                Ok(TextValue::Other("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<Self::Value, E> {
                Ok(TextValue::Other("a number"))
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(TextValue::Other("null"))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TextValue::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TextValue::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields a document needs, read in one pass over the record: other fields are skipped
/// without being decoded, and the text is unescaped while it is scanned.
#[derive(Default)]
struct Found<'a> {
    text: Option<TextValue<'a>>,
    id: Option<IdField<'a>>,
    key: Option<TextValue<'a>>,
}

/// The id field as read: raw JSON, or already decoded when it is also the dedup key.
enum IdField<'a> {
    Raw(&'a RawValue),
    Text(Cow<'a, str>),
    Null,
    /// A number or other non-string shared with the key field; the key check reports it.
    NotText,
}

struct Wanted<'o>(&'o ExtractOptions);

impl<'de> DeserializeSeed<'de> for Wanted<'_> {
    type Value = Found<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Found<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Wanted<'_> {
    type Value = Found<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Found<'de>, A::Error> {
        let opts = self.0;
        let mut found = Found::default();
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let is_text = k == opts.text_key;
            let is_key = opts.key.as_deref() == Some(k.as_ref());
            let is_id = k == opts.id_key;
            if is_text || is_key {
                // One field may serve several roles (e.g. `--key id`): read it once, share it.
                let v: TextValue<'de> = map.next_value()?;
                let copy = |v: &TextValue<'de>| match v {
                    TextValue::Str(s) => TextValue::Str(s.clone()),
                    TextValue::Other(t) => TextValue::Other(t),
                };
                if is_id {
                    found.id = Some(match &v {
                        TextValue::Str(s) => IdField::Text(s.clone()),
                        TextValue::Other("null") => IdField::Null,
                        TextValue::Other(_) => IdField::NotText,
                    });
                }
                if is_text && is_key {
                    found.key = Some(copy(&v));
                }
                if is_text {
                    found.text = Some(v);
                } else {
                    found.key = Some(v);
                }
            } else if is_id {
                found.id = Some(IdField::Raw(map.next_value()?));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

pub(crate) fn parse_line<'a>(
    bytes: &'a [u8],
    line: u64,
    file_name: &str,
    opts: &ExtractOptions,
) -> std::result::Result<Doc<'a>, RecordError> {
    let raw = std::str::from_utf8(bytes).map_err(|e| {
        RecordError::InvalidUtf8(format!("invalid byte at column {}", e.valid_up_to() + 1))
    })?;
    let mut de = serde_json::Deserializer::from_str(raw);
    let found = match Wanted(opts)
        .deserialize(&mut de)
        .and_then(|f| de.end().map(|_| f))
    {
        Ok(f) => f,
        Err(e) => {
            let first = raw.trim_start().as_bytes().first();
            if first != Some(&b'{') && serde_json::from_str::<&RawValue>(raw).is_ok() {
                return Err(RecordError::NotAnObject);
            }
            return Err(json_error(&e));
        }
    };
    let text = match found.text {
        None => return Err(RecordError::MissingText(opts.text_key.clone())),
        Some(TextValue::Other(found)) => {
            return Err(RecordError::TextNotString {
                key: opts.text_key.clone(),
                found,
            })
        }
        Some(TextValue::Str(t)) => t,
    };
    let key = match (&opts.key, found.key) {
        (None, _) => None,
        (Some(k), None) => return Err(RecordError::MissingKey(k.clone())),
        (Some(k), Some(TextValue::Other(found))) => {
            return Err(RecordError::KeyNotString {
                key: k.clone(),
                found,
            })
        }
        (Some(_), Some(TextValue::Str(v))) => Some(v),
    };
    let generated = || (Cow::Owned(format!("{file_name}:{line}")), true);
    let (id, id_generated) = match found.id {
        None | Some(IdField::Null) | Some(IdField::NotText) => generated(),
        Some(IdField::Text(t)) => (t, false),
        Some(IdField::Raw(raw)) => match raw.get() {
            "null" => generated(),
            s if s.starts_with('"') => match raw_str(raw) {
                Ok(id) => (id, false),
                Err(_) => (Cow::Borrowed(s), false),
            },
            s => (Cow::Borrowed(s), false),
        },
    };
    Ok(Doc {
        id,
        id_generated,
        text,
        key,
        location: Location::Line(line),
        source: DocSource::Json { raw },
    })
}

/// Turn every record of `batch` into a document or a record error, in order (in parallel on
/// the current rayon pool).
pub fn extract_docs<'a>(
    batch: &'a Batch,
    cols: &'a BatchColumns,
    opts: &ExtractOptions,
) -> Vec<std::result::Result<Doc<'a>, RecordError>> {
    let file_name = batch.file.name.as_str();
    match &batch.data {
        BatchData::Jsonl { buf, lines } => lines
            .par_iter()
            .with_min_len(64)
            .map(|span| parse_line(&buf[span.start..span.end], span.line, file_name, opts))
            .collect(),
        BatchData::Arrow {
            batch: rb,
            first_row,
        } => (0..rb.num_rows())
            .into_par_iter()
            .with_min_len(256)
            .map(|i| {
                let row = first_row + i as u64;
                let text_col = cols.text.as_ref().map_err(Clone::clone)?;
                if text_col.is_null(i) {
                    return Err(RecordError::TextNotString {
                        key: opts.text_key.clone(),
                        found: "null",
                    });
                }
                let key = match (&opts.key, &cols.key) {
                    (Some(k), Some(col)) => {
                        let col = col.as_ref().map_err(Clone::clone)?;
                        if col.is_null(i) {
                            return Err(RecordError::KeyNotString {
                                key: k.clone(),
                                found: "null",
                            });
                        }
                        Some(Cow::Borrowed(col.value(i)))
                    }
                    (Some(k), None) => return Err(RecordError::MissingKey(k.clone())),
                    _ => None,
                };
                let (id, id_generated) = match &cols.id {
                    Some(col) if !col.is_null(i) => (Cow::Borrowed(col.value(i)), false),
                    _ => (Cow::Owned(format!("{file_name}:{row}")), true),
                };
                Ok(Doc {
                    id,
                    id_generated,
                    text: Cow::Borrowed(text_col.value(i)),
                    key,
                    location: Location::Row(row),
                    source: DocSource::Row(i),
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_field_can_also_be_the_key() {
        let opts = ExtractOptions {
            key: Some("id".into()),
            ..ExtractOptions::default()
        };
        let d = parse_line(br#"{"id":"A","text":"x"}"#, 1, "f", &opts).expect("doc");
        assert_eq!(
            (d.id.as_ref(), d.id_generated, d.key.as_deref()),
            ("A", false, Some("A"))
        );
    }

    fn parse(line: &str) -> std::result::Result<Doc<'_>, RecordError> {
        parse_line(line.as_bytes(), 7, "f.jsonl", &ExtractOptions::default())
    }

    #[test]
    fn reads_text_id_and_unescapes() {
        let d = parse(r#"{"id":"a","text":"x\ny","meta":{"k":[1,2]}}"#).expect("doc");
        assert_eq!(d.id, "a");
        assert_eq!(d.text, "x\ny");
        assert!(!d.id_generated);
        let d = parse(r#"{"text":"plain","id":17}"#).expect("doc");
        assert!(matches!(d.text, Cow::Borrowed("plain")));
        assert_eq!(d.id, "17");
    }

    #[test]
    fn generates_ids_from_file_and_line() {
        let d = parse(r#"{"text":"t"}"#).expect("doc");
        assert_eq!(d.id, "f.jsonl:7");
        assert!(d.id_generated);
        assert_eq!(
            parse(r#"{"text":"t","id":null}"#).expect("doc").id,
            "f.jsonl:7"
        );
    }

    #[test]
    fn classifies_bad_records() {
        assert_eq!(
            parse(r#"{"text": 3}"#).err().map(|e| e.slug()),
            Some("text_not_string")
        );
        assert_eq!(
            parse(r#"{"text": null}"#).err().map(|e| e.slug()),
            Some("text_not_string")
        );
        assert_eq!(
            parse(r#"{"body": "x"}"#).err().map(|e| e.slug()),
            Some("missing_text")
        );
        assert_eq!(
            parse(r#"{"text": "x""#).err().map(|e| e.slug()),
            Some("invalid_json")
        );
        assert_eq!(
            parse(r#"["text"]"#).err().map(|e| e.slug()),
            Some("not_an_object")
        );
        let bad = parse_line(b"{\"text\": \"\xff\"}", 1, "f", &ExtractOptions::default());
        assert_eq!(bad.err().map(|e| e.slug()), Some("invalid_utf8"));
        let msg = parse(r#"{"text": "x""#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("column"), "{msg}");
    }
}
