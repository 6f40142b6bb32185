//! Error mapping: every core error becomes a `TamisError` (a `ValueError`) with a stable
//! `.kind` slug; invalid options become its subclass `ConfigError`, worded in Python's terms.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tamis_core::options::{OptionError, Options, Surface};

create_exception!(
    _core,
    TamisError,
    PyValueError,
    "A tamis error. `.kind` is a stable snake_case slug (e.g. `invalid_json`, `io`); bad records \
     also have `.path` and `.location`."
);
create_exception!(
    _core,
    ConfigError,
    TamisError,
    "An invalid option or configuration, found before any work (`tamis` exits with 2). \
     `.fields` names the options concerned."
);

/// The Python exception for a core error.
pub fn to_py(e: tamis_core::Error) -> PyErr {
    let (err, fields) = match &e {
        tamis_core::Error::Options(o) => (
            ConfigError::new_err(o.render(&Surface::Python)),
            o.fields.clone(),
        ),
        _ => (TamisError::new_err(e.to_string()), Vec::new()),
    };
    Python::attach(|py| {
        let v = err.value(py);
        let _ = v.setattr("kind", e.slug());
        let _ = v.setattr("fields", fields);
        if let tamis_core::Error::Record { path, location, .. } = &e {
            let _ = v.setattr("path", path.as_str());
            let _ = v.setattr("location", location.to_string());
        }
    });
    err
}

/// A `TamisError` with a message.
pub fn tamis_error(message: impl Into<String>) -> PyErr {
    to_py(tamis_core::Error::Config(message.into()))
}

/// The options `T` from their JSON (what a Python dataclass sends).
pub fn options<T: Options>(json: &str) -> PyResult<T> {
    T::from_json(json).map_err(|e: OptionError| to_py(e.into()))
}

/// A `serde_json` value as JSON text.
pub fn json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| tamis_error(e.to_string()))
}

/// A `threads` argument: any Python int, checked here so that a negative or huge value is a
/// `ConfigError` naming `threads` rather than an `OverflowError` (core bounds it again).
#[derive(Debug, Clone, Copy)]
pub struct Threads(pub usize);

impl<'a, 'py> FromPyObject<'a, 'py> for Threads {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let max = tamis_core::io::MAX_THREADS;
        let bad = |got: String| {
            to_py(tamis_core::Error::Options(OptionError::new(
                "threads",
                format!("must be an integer from 0 to {max}, got {got}"),
            )))
        };
        if obj.is_instance_of::<pyo3::types::PyBool>() {
            return Err(bad(obj.repr()?.to_string()));
        }
        match obj.extract::<i64>() {
            Ok(v) if (0..=max as i64).contains(&v) => Ok(Threads(v as usize)),
            _ => Err(bad(obj.repr()?.to_string())),
        }
    }
}

/// Run long core work without the GIL, stoppable with Ctrl-C: while it runs, SIGINT is noted
/// for the core (which stops at its next batch, committing nothing) and passed on to Python's
/// handler; the call then raises that `KeyboardInterrupt`.
pub fn interruptible<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> tamis_core::Result<T> + Send,
) -> PyResult<T> {
    let guard = tamis_core::interrupt::Guard::python_call();
    let result = py.detach(work);
    let signal = tamis_core::interrupt::received();
    drop(guard);
    match result {
        Ok(v) => Ok(v),
        Err(_) if signal.is_some() => Err(keyboard_interrupt(py)),
        Err(e) => Err(to_py(e)),
    }
}

/// The `KeyboardInterrupt` of a SIGINT that stopped core work: Python's own, raised by its
/// handler now, or a new one.
pub fn keyboard_interrupt(py: Python<'_>) -> PyErr {
    py.check_signals()
        .err()
        .unwrap_or_else(|| pyo3::exceptions::PyKeyboardInterrupt::new_err(()))
}
