//! Columns in and out through the Arrow C data interface, and a u64 matrix numpy views in place.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, FixedSizeListArray, UInt64Array};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_arrow::input::AnyArray;
use pyo3_arrow::{PyArray, PyChunkedArray};

use crate::errors::tamis_error;

/// The chunks of an Arrow array or stream.
pub fn chunks_of(array: AnyArray) -> PyResult<Vec<ArrayRef>> {
    let chunked: PyChunkedArray = array.into_chunked_array()?;
    Ok(chunked.chunks().to_vec())
}

/// One array as a chunked array of `dtype`.
pub fn single_chunk(array: ArrayRef, dtype: DataType) -> PyResult<PyChunkedArray> {
    PyChunkedArray::try_new(vec![array], Arc::new(Field::new("", dtype, true)))
}

/// The values of an unsigned integer column (no nulls), without a copy when it is one chunk.
pub fn u64_values(array: AnyArray, what: &str) -> PyResult<ScalarBuffer<u64>> {
    let mut parts = Vec::new();
    for chunk in chunks_of(array)? {
        let cast = arrow_cast::cast(&chunk, &DataType::UInt64)
            .map_err(|e| tamis_error(format!("{what}: {e}")))?;
        let a = cast
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| tamis_error(format!("{what}: not unsigned integers")))?;
        if a.null_count() > 0 {
            return Err(tamis_error(format!("{what}: nulls are not allowed")));
        }
        parts.push(a.values().clone());
    }
    // One chunk (a numpy array or a contiguous Series) is used in place, without a copy.
    Ok(match parts.len() {
        1 => parts.swap_remove(0),
        _ => parts.iter().flat_map(|p| p.iter().copied()).collect(),
    })
}

/// A row-major `rows × cols` matrix of u64 that numpy views without copying
/// (`numpy.asarray(m)`) and Arrow takes as a FixedSizeList array (`m.to_arrow()`).
#[pyclass(module = "tamis._core", frozen)]
pub struct U64Matrix {
    pub values: ScalarBuffer<u64>,
    pub rows: usize,
    pub cols: usize,
}

#[pymethods]
impl U64Matrix {
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("shape", (self.rows, self.cols))?;
        d.set_item("typestr", "<u8")?;
        d.set_item("data", (self.values.as_ptr() as usize, true))?;
        d.set_item("version", 3)?;
        Ok(d)
    }

    fn __len__(&self) -> usize {
        self.rows
    }

    /// The rows as an Arrow `FixedSizeList<UInt64>[cols]` array (sharing the memory).
    fn to_arrow(&self) -> PyResult<PyArray> {
        let item = Arc::new(Field::new("item", DataType::UInt64, false));
        let values = UInt64Array::new(self.values.clone(), None);
        let list =
            FixedSizeListArray::try_new(item.clone(), self.cols as i32, Arc::new(values), None)
                .map_err(|e| tamis_error(e.to_string()))?;
        let dtype = DataType::FixedSizeList(item, self.cols as i32);
        PyArray::try_new(
            Arc::new(list),
            Arc::new(Field::new("minhash", dtype, false)),
        )
        .map_err(|e| tamis_error(e.to_string()))
    }
}
