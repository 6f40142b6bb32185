//! `tamis refine` from Python, and the bridge that lets Python objects run the stages that live
//! outside Rust (fastText, torch): they get batches of ids and texts and return decisions,
//! texts and fields; records never leave Rust.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use pyo3_arrow::PyRecordBatch;
use serde_json::Value;
use tamis_core::io::FieldValue;
use tamis_core::options::Options;
use tamis_core::refine::{
    registry_json, summary, Checked, ExternalStages, FieldColumn, Outcome, QuickOptions, Quiet,
    Refine, RefineConfig, StageBatch, StageConfig,
};

use crate::errors::{json, keyboard_interrupt, tamis_error, to_py};

/// A batch of documents handed to a Python stage: `ids` and `texts` (lists of str), or the
/// same as an Arrow record batch (`arrow()`: columns `id` and `text`).
#[pyclass(module = "tamis._core", frozen)]
pub struct Batch {
    ids: Vec<String>,
    texts: Vec<String>,
    fields: Vec<(String, Vec<Option<String>>)>,
}

#[pymethods]
impl Batch {
    /// The document ids.
    #[getter]
    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, &self.ids)
    }

    /// The current texts.
    #[getter]
    fn texts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, &self.texts)
    }

    fn __len__(&self) -> usize {
        self.texts.len()
    }

    /// The values of a record field the stage asked for (its `fields`), per document: decoded
    /// JSON values, `None` where the record lacks it.
    fn field<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyList>> {
        let Some((_, values)) = self.fields.iter().find(|(n, _)| n == name) else {
            return Err(tamis_error(format!(
                "field {name:?} was not asked for (a stage lists the fields it reads in `fields`)"
            )));
        };
        let loads = py.import("json")?.getattr("loads")?;
        let decoded = values
            .iter()
            .map(|v| match v {
                Some(text) => loads.call1((text.as_str(),)),
                None => Ok(py.None().into_bound(py)),
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, decoded)
    }

    /// The batch as an Arrow record batch with string columns `id` and `text`.
    fn arrow(&self, py: Python<'_>) -> PyResult<Py<PyRecordBatch>> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
        ]));
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(&self.ids));
        let texts: ArrayRef = Arc::new(StringArray::from_iter_values(&self.texts));
        let rb = RecordBatch::try_new(schema, vec![ids, texts])
            .map_err(|e| tamis_error(e.to_string()))?;
        Py::new(py, PyRecordBatch::new(rb))
    }
}

/// Python's stage implementations (a `tamis.refine.stages.PythonStages`): `check(stage_json)`
/// returns `None`, new options as JSON text, or `("skip", note)`; `process(stage_json, batch)`
/// returns a `Decisions`. A Python exception stops the run and is raised again, unchanged, to
/// the caller.
pub struct PyStages {
    obj: Py<PyAny>,
    /// The first Python exception a stage raised.
    pub error: Option<PyErr>,
}

impl PyStages {
    /// Wrap a `PythonStages` object.
    pub fn new(obj: Py<PyAny>) -> Self {
        PyStages { obj, error: None }
    }

    /// The run's result, with a stored Python exception raised in place of the error it caused.
    pub fn result<T>(&mut self, r: tamis_core::Result<T>) -> PyResult<T> {
        match (r, self.error.take()) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(py_err)) => Err(py_err),
            (Err(e), None) => Err(to_py(e)),
        }
    }
}

fn stage_json(stage: &StageConfig) -> String {
    stage.to_value().to_string()
}

fn field_value(v: &Bound<'_, PyAny>) -> PyResult<Option<FieldValue>> {
    if v.is_none() {
        return Ok(None);
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(Some(FieldValue::Bool(v.extract()?)));
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(Some(FieldValue::Int(v.extract()?)));
    }
    if v.is_instance_of::<PyFloat>() {
        let f: f64 = v.extract()?;
        if !f.is_finite() {
            return Err(PyTypeError::new_err(format!(
                "field values must be finite numbers, got {f}"
            )));
        }
        return Ok(Some(FieldValue::Float(f)));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(Some(FieldValue::Str(v.extract()?)));
    }
    Err(PyTypeError::new_err(format!(
        "field values must be str, int, float, bool or None, got {}",
        v.get_type().name()?
    )))
}

/// An attribute that is `None` or a list.
fn optional<'py>(d: &Bound<'py, PyAny>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    let v = d.getattr(name)?;
    Ok((!v.is_none()).then_some(v))
}

/// Read a `tamis.refine.Decisions`.
fn outcome(d: &Bound<'_, PyAny>) -> PyResult<Outcome> {
    let keep: Vec<bool> = d.getattr("keep")?.extract()?;
    let reasons: Vec<String> = match optional(d, "reasons")? {
        Some(v) => v.extract()?,
        None => Vec::new(),
    };
    let texts: Option<Vec<Option<String>>> = match optional(d, "texts")? {
        Some(v) => Some(v.extract()?),
        None => None,
    };
    let details: Option<Vec<String>> = match optional(d, "details")? {
        Some(v) => Some(v.extract()?),
        None => None,
    };
    let counters: BTreeMap<String, u64> = d.getattr("counters")?.extract()?;
    let mut fields = Vec::new();
    for (if_absent, attr) in [(false, "fields"), (true, "defaults")] {
        let map = d.getattr(attr)?;
        let map = map.cast::<PyDict>()?;
        for (k, vals) in map.iter() {
            let path: String = k.extract()?;
            let values = vals
                .try_iter()?
                .map(|v| field_value(&v?))
                .collect::<PyResult<Vec<_>>>()?;
            fields.push(FieldColumn {
                path,
                values,
                if_absent,
            });
        }
    }
    Ok(Outcome {
        keep,
        reasons,
        texts,
        fields,
        details,
        counters,
    })
}

impl ExternalStages for PyStages {
    fn fields(&mut self, stage: &StageConfig) -> tamis_core::Result<Vec<String>> {
        let r = Python::attach(|py| -> PyResult<Vec<String>> {
            self.obj
                .bind(py)
                .call_method1("fields", (stage_json(stage),))?
                .extract()
        });
        r.map_err(|e| {
            let message = Python::attach(|py| e.value(py).to_string());
            self.error.get_or_insert(e);
            tamis_core::Error::Config(format!("stage {:?}: {message}", stage.name))
        })
    }

    fn check(&mut self, stage: &StageConfig) -> Result<Checked, String> {
        Python::attach(|py| {
            let r = self
                .obj
                .bind(py)
                .call_method1("check", (stage_json(stage),))
                .map_err(|e| e.value(py).to_string())?;
            if r.is_none() {
                return Ok(Checked::Run(None));
            }
            if let Ok(text) = r.extract::<String>() {
                let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                return Ok(Checked::Run(Some(v)));
            }
            let (what, note): (String, String) = r.extract().map_err(|e: PyErr| e.to_string())?;
            if what == "skip" {
                Ok(Checked::Skip(note))
            } else {
                Err(format!("check returned {what:?}"))
            }
        })
    }

    fn process(
        &mut self,
        stage: &StageConfig,
        batch: &StageBatch<'_>,
    ) -> tamis_core::Result<Outcome> {
        let result = Python::attach(|py| -> PyResult<Outcome> {
            let b = Batch {
                ids: batch.ids.iter().map(|s| s.to_string()).collect(),
                texts: batch.texts.iter().map(|s| s.to_string()).collect(),
                fields: batch.fields.clone(),
            };
            let d = self
                .obj
                .bind(py)
                .call_method1("process", (stage_json(stage), Py::new(py, b)?))?;
            outcome(&d)
        });
        result.map_err(|e| {
            let message = Python::attach(|py| e.value(py).to_string());
            self.error.get_or_insert(e);
            tamis_core::Error::Config(format!("stage {:?} failed: {message}", stage.name))
        })
    }
}

/// The stage registry as JSON: per type, scope, runtime, reasons, language field, defaults.
#[pyfunction]
pub fn stage_types() -> String {
    registry_json().to_string()
}

/// The defaults of every options type, as JSON (Python's dataclasses are built from them).
#[pyfunction]
pub fn option_defaults() -> String {
    use tamis_core::dedup::near::NearOptions;
    use tamis_core::dedup::{ExactOptions, LinesOptions};
    use tamis_core::refine::{LanguageOptions, ProxModelOptions, QualityOptions, ReportOptions};
    serde_json::json!({
        "io": tamis_core::io::IoOptions::defaults(),
        "exact": ExactOptions::defaults(),
        "lines": LinesOptions::defaults(),
        "near": NearOptions::defaults(),
        "substring": tamis_core::dedup::substring::SubstringOptions::defaults(),
        "language": LanguageOptions::defaults(),
        "quality": QualityOptions::defaults(),
        "prox_model": ProxModelOptions::defaults(),
        "acceptance": tamis_core::prox::Acceptance::defaults(),
        "chunk": tamis_core::prox::chunk::ChunkOptions::defaults(),
        "template": tamis_core::prox::prompt::PromptTemplate::defaults(),
        "extend": tamis_core::vocab::ExtendOptions::defaults(),
        "stats": tamis_core::vocab::StatsOptions::defaults(),
        "init": tamis_core::embed::InitConfig::defaults(),
        "tokenize": tamis_core::tokenize::TokenizeOptions::defaults(),
        "mix": tamis_core::mix::MixOptions::defaults(),
        "index": tamis_core::index::IndexOptions::defaults(),
        "decontaminate": tamis_core::index::decont::DecontOptions::defaults(),
        "report": serde_json::to_value(ReportOptions::default()).unwrap_or(Value::Null),
    })
    .to_string()
}

/// Check options of `capability` (a key of [`option_defaults`]) given as JSON; returns them
/// with every default filled in, as JSON. Errors are `ConfigError`s naming the option.
#[pyfunction]
pub fn check_options(capability: &str, options_json: &str) -> PyResult<String> {
    use crate::errors::options as parse;
    use tamis_core::dedup::near::NearOptions;
    use tamis_core::dedup::{ExactOptions, LinesOptions};
    use tamis_core::refine::{LanguageOptions, ProxModelOptions, QualityOptions};
    fn again<T: Options>(o: T) -> PyResult<String> {
        json(&o.to_value())
    }
    match capability {
        "io" => again(parse::<tamis_core::io::IoOptions>(options_json)?),
        "exact" => again(parse::<ExactOptions>(options_json)?),
        "lines" => again(parse::<LinesOptions>(options_json)?),
        "near" => {
            let o: NearOptions = parse(options_json)?;
            o.params().map_err(|e| to_py(e.into()))?;
            again(o)
        }
        "substring" => again(parse::<tamis_core::dedup::substring::SubstringOptions>(
            options_json,
        )?),
        "language" => again(parse::<LanguageOptions>(options_json)?),
        "quality" => again(parse::<QualityOptions>(options_json)?),
        "prox_model" => again(parse::<ProxModelOptions>(options_json)?),
        "acceptance" => again(parse::<tamis_core::prox::Acceptance>(options_json)?),
        "chunk" => again(parse::<tamis_core::prox::chunk::ChunkOptions>(
            options_json,
        )?),
        "template" => again(parse::<tamis_core::prox::prompt::PromptTemplate>(
            options_json,
        )?),
        "extend" => again(parse::<tamis_core::vocab::ExtendOptions>(options_json)?),
        "index" => again(parse::<tamis_core::index::IndexOptions>(options_json)?),
        "decontaminate" => again(parse::<tamis_core::index::decont::DecontOptions>(
            options_json,
        )?),
        "stats" => again(parse::<tamis_core::vocab::StatsOptions>(options_json)?),
        "init" => again(parse::<tamis_core::embed::InitConfig>(options_json)?),
        "tokenize" => again(parse::<tamis_core::tokenize::TokenizeOptions>(
            options_json,
        )?),
        "mix" => again(parse::<tamis_core::mix::MixOptions>(options_json)?),
        other => Err(tamis_error(format!("no options type {other:?}"))),
    }
}

fn config_of(config: &str, base_dir: &std::path::Path) -> tamis_core::Result<RefineConfig> {
    let raw: Value = serde_json::from_str(config)
        .map_err(|e| tamis_core::Error::Config(format!("configuration JSON: {e}")))?;
    RefineConfig::from_value(raw, base_dir)
}

/// Check a configuration (a JSON object; relative paths against `base_dir`) without its
/// stages' resources; returns it as `report.json` records it.
#[pyfunction]
pub fn refine_config(py: Python<'_>, config: &str, base_dir: PathBuf) -> PyResult<String> {
    py.detach(|| config_of(config, &base_dir))
        .map(|c| c.to_value().to_string())
        .map_err(to_py)
}

/// A configuration file read and checked (relative paths against its directory).
#[pyfunction]
#[pyo3(signature = (path, output=None))]
pub fn refine_config_file(
    py: Python<'_>,
    path: PathBuf,
    output: Option<PathBuf>,
) -> PyResult<String> {
    py.detach(|| RefineConfig::from_toml_file(&path, output.as_deref()))
        .map(|c| c.to_value().to_string())
        .map_err(to_py)
}

/// The configuration `tamis refine INPUT... -o OUTDIR` stands for, with `options` (JSON of
/// `QuickOptions`), as a JSON table.
#[pyfunction]
pub fn refine_quick_config(inputs: Vec<String>, output: &str, options: &str) -> PyResult<String> {
    let q: QuickOptions =
        serde_json::from_str(options).map_err(|e| tamis_error(format!("refine: {e}")))?;
    Ok(q.to_config(&inputs, output).to_string())
}

/// Check a configuration with its stages' resources (Python's `stages.check`) and, with
/// `inputs`, its inputs and output place (what a run checks before any work); returns it with
/// skipped stages noted, as JSON (`stages[i].skipped`).
#[pyfunction]
#[pyo3(signature = (config, base_dir, stages, *, inputs=true))]
pub fn refine_check(
    py: Python<'_>,
    config: &str,
    base_dir: PathBuf,
    stages: Py<PyAny>,
    inputs: bool,
) -> PyResult<String> {
    let mut ext = PyStages::new(stages);
    let r = py.detach(|| -> tamis_core::Result<Value> {
        let mut c = config_of(config, &base_dir)?;
        if !inputs {
            c.check_stages(&mut ext)?;
            return Ok(checked_json(&c));
        }
        let run = Refine::new(c, &mut ext)?;
        Ok(checked_json(run.config()))
    });
    ext.result(r).map(|v| v.to_string())
}

/// A TOML file as JSON (the configuration before it is checked).
#[pyfunction]
pub fn read_toml(path: PathBuf) -> PyResult<String> {
    let text = std::fs::read_to_string(&path).map_err(|e| {
        to_py(tamis_core::Error::Config(format!(
            "{}: cannot read: {e}",
            path.display()
        )))
    })?;
    let v: Value = toml::from_str(&text).map_err(|e| {
        to_py(tamis_core::Error::Options(
            tamis_core::options::OptionError {
                fields: Vec::new(),
                message: format!("{}: invalid TOML: {}", path.display(), e.message()),
            },
        ))
    })?;
    json(&v)
}

fn checked_json(c: &RefineConfig) -> Value {
    let mut v = c.to_value();
    if let Some(stages) = v.get_mut("stages").and_then(Value::as_array_mut) {
        for (s, cfg) in stages.iter_mut().zip(&c.stages) {
            if let Value::Object(m) = s {
                m.insert("skipped".into(), cfg.skipped.clone().into());
            }
        }
    }
    v
}

/// Run (or resume) a refinement; returns the report as JSON.
#[pyfunction]
#[pyo3(signature = (config, base_dir, stages, *, restart=false))]
pub fn refine_run(
    py: Python<'_>,
    config: &str,
    base_dir: PathBuf,
    stages: Py<PyAny>,
    restart: bool,
) -> PyResult<String> {
    let mut ext = PyStages::new(stages);
    let guard = tamis_core::interrupt::Guard::python_call();
    let r = py.detach(|| -> tamis_core::Result<Value> {
        let c = config_of(config, &base_dir)?;
        let mut run = Refine::new(c, &mut ext)?;
        run.run(restart, &Quiet)
    });
    let signal = tamis_core::interrupt::received();
    drop(guard);
    if signal.is_some() && r.is_err() {
        return Err(keyboard_interrupt(py));
    }
    ext.result(r).and_then(|v| json(&v))
}

/// Run shard stages (a JSON list of `{"type", "name", ...options}`) over files into one output,
/// as `tamis filter` does; returns `{"stats": ..., "stages": {name: counts}}` as JSON.
#[pyfunction]
pub fn run_stages(
    py: Python<'_>,
    inputs: Vec<String>,
    output: String,
    stages_json: &str,
    io_json: &str,
    stages: Py<PyAny>,
) -> PyResult<String> {
    let io: tamis_core::io::IoOptions = crate::errors::options(io_json)?;
    let tables: Vec<serde_json::Map<String, Value>> =
        serde_json::from_str(stages_json).map_err(|e| tamis_error(e.to_string()))?;
    let mut configs = Vec::new();
    for (i, mut t) in tables.into_iter().enumerate() {
        let kind = t
            .remove("type")
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let name = t
            .remove("name")
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| kind.clone());
        let st = tamis_core::refine::stage_type(&kind)
            .ok_or_else(|| tamis_error(format!("unknown stage type {kind:?}")))?;
        let options = st.parse(&t).map_err(|e| to_py(e.into()))?;
        configs.push(StageConfig {
            name,
            position: i + 1,
            options,
            skipped: None,
        });
    }
    let mut ext = PyStages::new(stages);
    let guard = tamis_core::interrupt::Guard::python_call();
    let r = py.detach(|| {
        let output = tamis_core::io::Output::parse(&output)?;
        tamis_core::refine::run_stages(
            "refine stages",
            &inputs,
            &output,
            &io,
            configs,
            &mut ext,
            &tamis_core::pipeline::NoProgress,
        )
    });
    let signal = tamis_core::interrupt::received();
    drop(guard);
    if signal.is_some() && r.is_err() {
        return Err(keyboard_interrupt(py));
    }
    let (stats, per_stage) = ext.result(r)?;
    json(&serde_json::json!({"stats": stats, "stages": per_stage}))
}

/// A plain-text summary of a report (JSON).
#[pyfunction]
pub fn refine_summary(report: &str) -> PyResult<String> {
    let v: Value = serde_json::from_str(report).map_err(|e| tamis_error(e.to_string()))?;
    Ok(summary(&v))
}

/// Run the `tamis` command line with `argv` (program name first); `stages` runs the stages
/// that live in Python. Returns the exit code.
#[pyfunction]
#[pyo3(signature = (argv, stages=None))]
pub fn main(py: Python<'_>, argv: Vec<String>, stages: Option<Py<PyAny>>) -> i32 {
    match stages {
        None => py.detach(|| tamis_cli::run(argv)),
        Some(obj) => {
            let mut ext = PyStages::new(obj);
            let code = py.detach(|| tamis_cli::run_with(argv, &mut ext));
            if let Some(e) = ext.error.take() {
                // The message was printed by the command line; a traceback helps a stage's author.
                if std::env::var_os("TAMIS_TRACEBACK").is_some() {
                    e.print(py);
                }
            }
            code
        }
    }
}
