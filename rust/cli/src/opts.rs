//! From flags to core options: what the user gave is serialized and read by the core options
//! type, which fills in its defaults, checks the values and names the flags in its errors.

use anyhow::Result;
use serde::Serialize;
use serde_json::{Map, Value};
use tamis_core::io::IoOptions;
use tamis_core::options::Options;

use crate::args::{GlobalArgs, IoArgs};

/// The JSON object of a flags struct (the flags that were given).
pub fn given<T: Serialize>(args: &T) -> Value {
    serde_json::to_value(args).unwrap_or(Value::Null)
}

/// Options of type `T` from several flag groups (later ones win).
pub fn options<T: Options>(parts: &[Value]) -> Result<T> {
    let mut m = Map::new();
    for p in parts {
        if let Value::Object(o) = p {
            m.extend(o.clone());
        }
    }
    T::from_value(Value::Object(m)).map_err(|e| anyhow::Error::new(tamis_core::Error::Options(e)))
}

/// The I/O options of a data command.
pub fn io_options(g: &GlobalArgs, io: &IoArgs) -> Result<IoOptions> {
    options(&[given(io), serde_json::json!({ "threads": g.threads })])
}
