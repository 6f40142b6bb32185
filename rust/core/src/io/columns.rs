//! In-memory Arrow string columns (from Python, polars, pyarrow) as borrowed `&str` values,
//! without copying: `Utf8`, `LargeUtf8` and `Utf8View` (polars' native string type).

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, BooleanArray};
use arrow_schema::DataType;

use crate::text::Hash128;
use crate::{Error, Result};

/// The values of string arrays, in order; nulls are `None`.
pub fn string_values(chunks: &[ArrayRef]) -> Result<Vec<Option<&str>>> {
    let total = chunks.iter().map(|c| c.len()).sum();
    let mut out = Vec::with_capacity(total);
    for chunk in chunks {
        match chunk.data_type() {
            DataType::Utf8 => out.extend(chunk.as_string::<i32>().iter()),
            DataType::LargeUtf8 => out.extend(chunk.as_string::<i64>().iter()),
            DataType::Utf8View => out.extend(chunk.as_string_view().iter()),
            DataType::Null => out.extend(std::iter::repeat_n(None, chunk.len())),
            other => {
                return Err(Error::Config(format!(
                    "expected a string column, got Arrow type {other}"
                )));
            }
        }
    }
    Ok(out)
}

/// The values of numeric arrays as `f64`, in order; nulls (and NaN) are `None`. Booleans and
/// other types are refused, as a JSON field that is not a number is.
pub fn number_values(chunks: &[ArrayRef]) -> Result<Vec<Option<f64>>> {
    let mut out = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
    for chunk in chunks {
        let t = chunk.data_type();
        if *t == DataType::Null {
            out.extend(std::iter::repeat_n(None, chunk.len()));
            continue;
        }
        if !t.is_numeric() {
            return Err(Error::Config(format!(
                "expected a numeric column, got Arrow type {t}"
            )));
        }
        let cast = arrow_cast::cast(chunk, &DataType::Float64)
            .map_err(|e| Error::Config(format!("numeric column: {e}")))?;
        let f = cast.as_primitive::<arrow_array::types::Float64Type>();
        out.extend(f.iter().map(|v| v.filter(|x| !x.is_nan())));
    }
    Ok(out)
}

/// 128-bit hashes as a binary array of 16-byte big-endian values (nulls stay null).
pub fn hashes_to_arrow(hashes: &[Option<Hash128>]) -> BinaryArray {
    hashes
        .iter()
        .map(|h| h.map(u128::to_be_bytes))
        .collect::<Vec<_>>()
        .iter()
        .map(|h| h.as_ref().map(|b| &b[..]))
        .collect()
}

/// A keep mask as an Arrow boolean array (no nulls).
pub fn mask_to_arrow(mask: &[bool]) -> BooleanArray {
    BooleanArray::from(mask.to_vec())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{LargeStringArray, StringArray, StringViewArray};

    use super::*;

    #[test]
    fn reads_every_string_layout() {
        let chunks: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("a"), None])),
            Arc::new(LargeStringArray::from(vec!["b"])),
            Arc::new(StringViewArray::from(vec![
                "a long enough string to live in a buffer",
            ])),
        ];
        let v = string_values(&chunks).expect("strings");
        assert_eq!(
            v,
            [
                Some("a"),
                None,
                Some("b"),
                Some("a long enough string to live in a buffer")
            ]
        );
        let bad: Vec<ArrayRef> = vec![Arc::new(arrow_array::Int32Array::from(vec![1]))];
        assert!(string_values(&bad).is_err());
    }

    #[test]
    fn hashes_are_sixteen_big_endian_bytes() {
        let a = hashes_to_arrow(&[Some(1), None]);
        assert_eq!(
            a.value(0),
            &[0u8; 15].iter().copied().chain([1u8]).collect::<Vec<_>>()[..]
        );
        assert!(a.is_null(1));
    }
}
