//! Options: one serde type per capability ([`crate::dedup::ExactOptions`],
//! [`crate::dedup::LinesOptions`], [`crate::dedup::near::NearOptions`], the refine stages' …),
//! holding its defaults and its checks. Every surface builds the same type: the command line
//! from its flags, Python from its dataclass (as JSON), `tamis refine` from a `[[stage]]` table.
//!
//! Errors name the option in the words of the surface it came from ([`Surface`]): `--min-score`
//! on the command line, `min_score` in a Python call or a configuration file.
//!
//! ```
//! use tamis_core::dedup::LinesOptions;
//! use tamis_core::options::{Options, Surface};
//! let e = LinesOptions::from_json(r#"{"max_occurrences": 0}"#).unwrap_err();
//! assert_eq!(e.render(&Surface::Cli), "--max-occurrences must be at least 1, got 0");
//! assert_eq!(e.render(&Surface::Python), "max_occurrences must be at least 1, got 0");
//! ```

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// An invalid option value. `message` refers to options as `{0}`, `{1}`, … (the entries of
/// `fields`), which [`OptionError::render`] writes in the words of the surface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    /// Names of the options concerned (Rust field names, which are the Python keywords and the
    /// configuration keys; flags are the same with `--` and dashes).
    pub fields: Vec<String>,
    /// The message, with `{i}` where option `i` is named.
    pub message: String,
}

/// Where options came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Surface {
    /// Command-line flags: `--num-perm`.
    Cli,
    /// Python keywords and dataclass fields: `num_perm`.
    Python,
    /// A configuration table: `num_perm`, after a prefix such as `stage 4 (dedup_near)`.
    Config(String),
}

impl Surface {
    /// How option `field` is called on this surface.
    pub fn name(&self, field: &str) -> String {
        match self {
            Surface::Cli => format!("--{}", field.replace('_', "-")),
            Surface::Python | Surface::Config(_) => field.to_string(),
        }
    }
}

impl OptionError {
    /// `{field} {what}`, e.g. `OptionError::new("ngram", "must be at least 1, got 0")`.
    pub fn new(field: &str, what: impl fmt::Display) -> Self {
        OptionError {
            fields: vec![field.to_string()],
            message: format!("{{0}} {what}"),
        }
    }

    /// A message naming several options as `{0}`, `{1}`, …
    pub fn with_fields(fields: &[&str], message: impl Into<String>) -> Self {
        OptionError {
            fields: fields.iter().map(|f| f.to_string()).collect(),
            message: message.into(),
        }
    }

    /// The message in the words of `surface`.
    pub fn render(&self, surface: &Surface) -> String {
        let mut text = self.message.clone();
        for (i, f) in self.fields.iter().enumerate() {
            text = text.replace(&format!("{{{i}}}"), &surface.name(f));
        }
        match surface {
            Surface::Config(prefix) if !prefix.is_empty() => format!("{prefix}: {text}"),
            _ => text,
        }
    }

    /// The same error about options nested under `parent` (e.g. `report.examples`).
    pub fn nested(mut self, parent: &str) -> Self {
        for f in &mut self.fields {
            *f = format!("{parent}.{f}");
        }
        self
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&Surface::Python))
    }
}

impl std::error::Error for OptionError {}

/// A capability's options: serde (unknown fields refused, missing ones defaulted), with checks.
pub trait Options: Serialize + DeserializeOwned + Default + Clone {
    /// Check values and combinations; called by every constructor below.
    fn validate(&self) -> Result<(), OptionError>;

    /// From a JSON object (as Python sends it); missing fields take their defaults.
    fn from_value(value: Value) -> Result<Self, OptionError> {
        let options: Self = deserialize(value)?;
        options.validate()?;
        Ok(options)
    }

    /// From JSON text.
    fn from_json(text: &str) -> Result<Self, OptionError> {
        let value: Value = serde_json::from_str(text).map_err(|e| OptionError {
            fields: Vec::new(),
            message: format!("options are not valid JSON: {e}"),
        })?;
        Self::from_value(value)
    }

    /// The defaults as a JSON object (what Python's dataclasses are built from).
    fn defaults() -> Value {
        serde_json::to_value(Self::default()).unwrap_or(Value::Null)
    }

    /// As a JSON object.
    fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Deserialize `value` into `T`, turning serde's messages into [`OptionError`]s that name the
/// offending option.
pub fn deserialize<T: DeserializeOwned>(value: Value) -> Result<T, OptionError> {
    if !matches!(value, Value::Object(_)) {
        return Err(OptionError {
            fields: Vec::new(),
            message: format!("options must be a table, got {}", describe(&value)),
        });
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        translate(&field, &e.inner().to_string())
    })
}

/// serde's wording ("invalid type: string \"five\", expected usize") to ours ("ngram must be an
/// integer >= 0, got \"five\"").
fn translate(field: &str, message: &str) -> OptionError {
    let name = |f: &str| -> String {
        if field.is_empty() {
            f.to_string()
        } else {
            format!("{field}.{f}")
        }
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (unknown, known) = rest.split_once('`').unwrap_or((rest, ""));
        // The path already ends with the unknown field.
        let parent = field
            .strip_suffix(unknown)
            .map(|p| p.trim_end_matches('.'))
            .unwrap_or(field);
        let name = |f: &str| -> String {
            if parent.is_empty() {
                f.to_string()
            } else {
                format!("{parent}.{f}")
            }
        };
        let known: Vec<&str> = known
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| !s.is_empty())
            .collect();
        return OptionError {
            fields: Vec::new(),
            message: format!(
                "unknown parameter '{}' (known: {})",
                name(unknown),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let missing = rest.split('`').next().unwrap_or(rest);
        return OptionError::new(&name(missing), "is required");
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (got, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let choices: Vec<&str> = expected
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| !s.is_empty())
            .collect();
        return OptionError::new(
            field,
            format!("must be one of {}, got '{got}'", choices.join(", ")),
        );
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (got, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, ""));
            return OptionError::new(
                field,
                format!(
                    "must be {}, got {}",
                    expected_words(expected),
                    got_words(got)
                ),
            );
        }
    }
    OptionError::new(field, message)
}

fn expected_words(expected: &str) -> String {
    match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" => "an integer >= 0".into(),
        "i64" | "i32" => "an integer".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a string" => "a string".into(),
        other => other.trim_end_matches(" at line 1").to_string(),
    }
}

fn got_words(got: &str) -> String {
    // serde writes `string "x"`, `integer `5``, `floating point `1.5``, `boolean `true``.
    for (prefix, keep_quotes) in [
        ("string ", true),
        ("integer ", false),
        ("floating point ", false),
        ("boolean ", false),
    ] {
        if let Some(v) = got.strip_prefix(prefix) {
            let v = v.trim_matches('`');
            return if keep_quotes { v.to_string() } else { v.into() };
        }
    }
    match got {
        "sequence" => "a list".into(),
        "map" => "a table".into(),
        "null" | "unit value" => "nothing (null)".into(),
        other => other.to_string(),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a table".into(),
    }
}

/// `value` must lie in `[low, high]` (either bound optional).
pub fn check_range<T: PartialOrd + fmt::Display>(
    field: &str,
    value: T,
    low: Option<T>,
    high: Option<T>,
) -> Result<(), OptionError> {
    match (low, high) {
        (Some(lo), Some(hi)) if !(value >= lo && value <= hi) => Err(OptionError::new(
            field,
            format!("must be from {lo} to {hi}, got {value}"),
        )),
        (Some(lo), None) if value < lo => Err(OptionError::new(
            field,
            format!("must be at least {lo}, got {value}"),
        )),
        (None, Some(hi)) if value > hi => Err(OptionError::new(
            field,
            format!("must be at most {hi}, got {value}"),
        )),
        _ => Ok(()),
    }
}

/// A finite number strictly between `low` and `high`.
pub fn check_open(field: &str, value: f64, low: f64, high: f64) -> Result<(), OptionError> {
    if value.is_finite() && value > low && value < high {
        Ok(())
    } else {
        Err(OptionError::new(
            field,
            format!("must be greater than {low} and less than {high}, got {value}"),
        ))
    }
}

/// A finite number in `[low, high]`.
pub fn check_closed(field: &str, value: f64, low: f64, high: f64) -> Result<(), OptionError> {
    if value.is_finite() && value >= low && value <= high {
        Ok(())
    } else {
        Err(OptionError::new(
            field,
            format!("must be from {low} to {high}, got {value}"),
        ))
    }
}

/// Overlay the entries of `top` on the object `base` (one level).
pub fn overlay(base: &mut Value, top: &Map<String, Value>) {
    if let Value::Object(b) = base {
        for (k, v) in top {
            b.insert(k.clone(), v.clone());
        }
    }
}

/// A byte size given as a number of bytes or as text such as `512M`, `8G`, `1.5T` (binary
/// units; a trailing `B` or `iB` is accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (num, mult) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 1u64 << 10),
        Some('M') => (&body[..body.len() - 1], 1 << 20),
        Some('G') => (&body[..body.len() - 1], 1 << 30),
        Some('T') => (&body[..body.len() - 1], 1 << 40),
        _ => (body, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 512M or 8G"))?;
    let bytes = v * mult as f64;
    if !(v.is_finite() && v > 0.0 && bytes < u64::MAX as f64) {
        return Err(format!("{s:?}: the size must be positive and below 16 EiB"));
    }
    Ok(bytes as u64)
}

/// serde for byte sizes: a number of bytes, or text like `8G` ([`parse_size`]).
pub mod size {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Written as a number of bytes.
    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_u64(*n),
            None => s.serialize_none(),
        }
    }

    /// Read from a number of bytes or size text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(SizeVisitor)
    }

    struct SizeVisitor;

    impl<'de> Visitor<'de> for SizeVisitor {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a size like 512M or 8G")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(SizeVisitor)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            if v == 0 {
                return Err(E::invalid_value(de::Unexpected::Unsigned(0), &self));
            }
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            match u64::try_from(v) {
                Ok(u) => self.visit_u64(u),
                Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            super::parse_size(v)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        ngram: usize,
        score: f64,
        mode: crate::text::Normalize,
        name: Option<String>,
    }

    impl Options for Demo {
        fn validate(&self) -> Result<(), OptionError> {
            check_range("ngram", self.ngram, Some(1), Some(100))
        }
    }

    #[test]
    fn serde_messages_name_the_option() {
        let e = |j: &str| Demo::from_json(j).unwrap_err().render(&Surface::Python);
        assert_eq!(
            e(r#"{"ngram": "five"}"#),
            "ngram must be an integer >= 0, got \"five\""
        );
        assert_eq!(
            e(r#"{"ngram": -1}"#),
            "ngram must be an integer >= 0, got -1"
        );
        assert_eq!(e(r#"{"score": true}"#), "score must be a number, got true");
        assert_eq!(
            e(r#"{"mode": "nfc"}"#),
            "mode must be one of none, whitespace, simple, got 'nfc'"
        );
        assert_eq!(
            e(r#"{"ngram": 1, "bogus": 2}"#),
            "unknown parameter 'bogus' (known: ngram, score, mode, name)"
        );
        assert_eq!(e(r#"{"ngram": 0}"#), "ngram must be from 1 to 100, got 0");
        assert_eq!(e("[1]"), "options must be a table, got a list");
    }

    #[test]
    fn surfaces() {
        let e = OptionError::with_fields(&["bands", "num_perm"], "{0} too large for {1}");
        assert_eq!(e.render(&Surface::Cli), "--bands too large for --num-perm");
        assert_eq!(
            e.render(&Surface::Config("stage 2 (dedup_near)".into())),
            "stage 2 (dedup_near): bands too large for num_perm"
        );
    }

    #[test]
    fn enum_names_are_what_serde_reads() {
        fn all<T: DeserializeOwned + Serialize>(names: &[&str]) {
            for n in names {
                let v: T = serde_json::from_value(Value::from(*n)).expect(n);
                assert_eq!(serde_json::to_value(&v).expect("ser"), Value::from(*n));
            }
        }
        all::<crate::text::Normalize>(crate::text::Normalize::NAMES);
        all::<crate::dedup::near::Shingling>(crate::dedup::near::Shingling::NAMES);
        all::<crate::dedup::near::Sketch>(crate::dedup::near::Sketch::NAMES);
        all::<crate::io::OnError>(crate::io::OnError::NAMES);
        all::<crate::prox::Mode>(crate::prox::Mode::NAMES);
        all::<crate::refine::ShardCompression>(crate::refine::ShardCompression::NAMES);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("512mb"), Ok(512 << 20));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("1e30T").is_err());
    }
}
