//! Which document a cluster of duplicates keeps ([`Keep`]): the first in input order, the
//! longest, the shortest, or the one with the largest or smallest value of a numeric field.
//!
//! Every policy is a score per document, smaller wins, ties going to the first in input order;
//! so one rule serves exact dedup (a cluster is a hash) and near dedup (a cluster is a connected
//! component of candidate pairs), in one process, as scheduler stages and from datatrove.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::json_type_name;
use crate::io::{Batch, BatchData, Doc, DocSource, JsonFields};
use crate::options::OptionError;
use crate::RecordError;

/// The document a cluster keeps: `first` | `longest` | `shortest` | `max:FIELD` | `min:FIELD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Keep {
    /// The first in input order.
    #[default]
    First,
    /// The one with the most characters (Unicode scalar values) of text.
    Longest,
    /// The one with the fewest characters of text.
    Shortest,
    /// The one with the largest value of this numeric field (missing or null: never preferred).
    Max(String),
    /// The one with the smallest value of this numeric field (missing or null: never preferred).
    Min(String),
}

impl Keep {
    /// The field the policy reads, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Keep::Max(f) | Keep::Min(f) => Some(f),
            _ => None,
        }
    }

    /// Whether documents need a score (every policy but `first`).
    pub fn scores(&self) -> bool {
        *self != Keep::First
    }

    /// The score of a document of `text` whose field (for `max:`/`min:`) holds `value`
    /// (`None`: missing or null). Smaller wins; ties go to the first in input order.
    pub fn score_of(&self, text: &str, value: Option<f64>) -> f64 {
        match self {
            Keep::First => 0.0,
            Keep::Longest => -(text.chars().count() as f64),
            Keep::Shortest => text.chars().count() as f64,
            // NaN (possible in a float column) counts as missing, so scores stay ordered.
            Keep::Max(_) => value.filter(|v| !v.is_nan()).map_or(f64::INFINITY, |v| -v),
            Keep::Min(_) => value.filter(|v| !v.is_nan()).unwrap_or(f64::INFINITY),
        }
    }

    /// The scores of documents whose texts are `texts` and whose field holds `values` (one per
    /// text; required by `max:`/`min:`), for callers that hold columns rather than records.
    pub fn scores_of<'t>(
        &self,
        texts: impl ExactSizeIterator<Item = &'t str>,
        values: Option<&[Option<f64>]>,
    ) -> crate::Result<Vec<f64>> {
        match (values, self.field()) {
            (Some(v), _) if v.len() != texts.len() => {
                return Err(crate::Error::Config(format!(
                    "{} values for {} texts",
                    v.len(),
                    texts.len()
                )))
            }
            (None, Some(f)) => {
                return Err(crate::Error::Config(format!(
                    "keep {self} needs the values of field {f:?}"
                )))
            }
            _ => {}
        }
        Ok(texts
            .enumerate()
            .map(|(i, t)| self.score_of(t, values.and_then(|v| v[i])))
            .collect())
    }

    /// The score of a document of a batch: its field read from its record (JSON, or the row of
    /// a Parquet batch). A field that is present but not a number is a bad record.
    pub fn score(&self, batch: &Batch, doc: &Doc<'_>) -> Result<f64, RecordError> {
        let value = match self.field() {
            Some(f) => field_number(batch, doc, f)?,
            None => None,
        };
        Ok(self.score_of(&doc.text, value))
    }
}

/// The numeric value of `field` of a document (`None` when missing or null).
fn field_number(batch: &Batch, doc: &Doc<'_>, field: &str) -> Result<Option<f64>, RecordError> {
    let not_number = |found: &'static str| RecordError::KeepFieldNotNumber {
        key: field.to_string(),
        found,
    };
    match &doc.source {
        DocSource::Json { raw } => {
            let fields: JsonFields<'_> =
                serde_json::from_str(raw).map_err(|e| RecordError::InvalidJson(e.to_string()))?;
            let Some(v) = fields.get(field) else {
                return Ok(None);
            };
            let text = v.get();
            if text == "null" {
                return Ok(None);
            }
            match text.as_bytes().first() {
                Some(b'-' | b'0'..=b'9') => text
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| not_number("a number out of range")),
                _ => Err(not_number(json_type_name(text))),
            }
        }
        DocSource::Row(i) => {
            use arrow_array::Array;
            let BatchData::Arrow { batch: rb, .. } = &batch.data else {
                return Ok(None);
            };
            let Some(col) = rb.column_by_name(field) else {
                return Ok(None);
            };
            if !col.data_type().is_numeric() {
                return Err(not_number("not a numeric column"));
            }
            let one = col.slice(*i, 1);
            let cast = arrow_cast::cast(&one, &arrow_schema::DataType::Float64)
                .map_err(|_| not_number("not a numeric column"))?;
            let f = cast
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .ok_or_else(|| not_number("not a numeric column"))?;
            Ok((!f.is_null(0)).then(|| f.value(0)))
        }
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keep::First => f.write_str("first"),
            Keep::Longest => f.write_str("longest"),
            Keep::Shortest => f.write_str("shortest"),
            Keep::Max(x) => write!(f, "max:{x}"),
            Keep::Min(x) => write!(f, "min:{x}"),
        }
    }
}

impl FromStr for Keep {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let field = |rest: &str| -> Result<String, String> {
            if rest.is_empty() {
                Err(format!("{s:?} names no field"))
            } else {
                Ok(rest.to_string())
            }
        };
        match s {
            "first" => Ok(Keep::First),
            "longest" => Ok(Keep::Longest),
            "shortest" => Ok(Keep::Shortest),
            _ => match s.split_once(':') {
                Some(("max", f)) => Ok(Keep::Max(field(f)?)),
                Some(("min", f)) => Ok(Keep::Min(field(f)?)),
                _ => Err(format!(
                    "{s:?} is not first, longest, shortest, max:FIELD or min:FIELD"
                )),
            },
        }
    }
}

impl Serialize for Keep {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&s),
                &"first, longest, shortest, max:FIELD or min:FIELD",
            )
        })
    }
}

/// The policy of options that have both `keep` and its older spelling `priority` (= `min:`).
pub fn resolve(keep: &Keep, priority: Option<&str>) -> Result<Keep, OptionError> {
    match (keep, priority) {
        (k, None) => Ok(k.clone()),
        (Keep::First, Some("")) => Err(OptionError::new("priority", "must name a field")),
        (Keep::First, Some(p)) => Ok(Keep::Min(p.to_string())),
        (_, Some(_)) => Err(OptionError::with_fields(
            &["keep", "priority"],
            "give {0} or {1} (which means min:FIELD), not both",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_scores_order() {
        for s in ["first", "longest", "shortest", "max:q", "min:url_rank"] {
            let k: Keep = s.parse().expect(s);
            assert_eq!(k.to_string(), s);
        }
        assert!("max:".parse::<Keep>().is_err());
        assert!("biggest".parse::<Keep>().is_err());
        assert!(Keep::Longest.score_of("ééé", None) < Keep::Longest.score_of("ab", None));
        assert!(Keep::Shortest.score_of("ab", None) < Keep::Shortest.score_of("ééé", None));
        let max = Keep::Max("q".into());
        assert!(max.score_of("", Some(3.0)) < max.score_of("", Some(1.0)));
        assert!(max.score_of("", Some(-1e300)) < max.score_of("", None));
        assert_eq!(resolve(&Keep::First, Some("p")), Ok(Keep::Min("p".into())));
        assert!(resolve(&Keep::Longest, Some("p")).is_err());
    }
}
