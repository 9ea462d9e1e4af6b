//! Input signals from files: CSV/whitespace text (one row per step, one column per grid point
//! or a single column) and NumPy `.npy` (float64, 1-D or 2-D; read by the engine's reader).

use std::path::Path;
use std::sync::Arc;

use rustrates::solve::Signal;

/// A signal file's rows, columns and values (row-major).
type Table = (usize, usize, Vec<f64>);

/// Read a signal file; the error says what is wrong with it.
pub(crate) fn read_signal_file(path: &Path) -> Result<Signal, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (rows, cols, data) = if path.extension().is_some_and(|e| e == "npy") {
        parse_npy(&bytes)?
    } else {
        parse_text(&String::from_utf8_lossy(&bytes))?
    };
    if rows == 0 {
        return Err("the file holds no values".into());
    }
    Ok(if cols == 1 {
        Signal::Shared(Arc::from(data))
    } else {
        Signal::PerPoint {
            points: cols,
            data: Arc::from(data),
        }
    })
}

fn parse_text(text: &str) -> Result<Table, String> {
    let mut data = Vec::new();
    let mut cols = None;
    let mut rows = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        let values: Result<Vec<f64>, _> = fields.iter().map(|f| f.parse::<f64>()).collect();
        let Ok(values) = values else {
            // A header row is allowed as the first line only.
            if rows == 0 && data.is_empty() && cols.is_none() {
                continue;
            }
            return Err(format!("line {}: not a number in `{line}`", i + 1));
        };
        match cols {
            None => cols = Some(values.len()),
            Some(c) if c != values.len() => {
                return Err(format!(
                    "line {}: {} values, but the first row has {c}",
                    i + 1,
                    values.len()
                ))
            }
            Some(_) => {}
        }
        data.extend(values);
        rows += 1;
    }
    Ok((rows, cols.unwrap_or(1), data))
}

/// A 1-D (one column) or 2-D (one column per grid point) array read by the engine's `.npy`
/// reader, as rows, columns and values in row-major order.
fn parse_npy(bytes: &[u8]) -> Result<Table, String> {
    let (dims, data) = rustrates::template::connectivity::parse_npy(bytes)?;
    match dims.as_slice() {
        [n] => Ok((*n, 1, data)),
        [n, m] => Ok((*n, *m, data)),
        _ => Err(format!("expected a 1-D or 2-D array, found shape {dims:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_signal_with_header_and_two_columns_is_per_point() {
        let (rows, cols, data) = parse_text("a,b\n1,2\n3,4\n").expect("valid");
        assert_eq!((rows, cols), (2, 2));
        assert_eq!(data, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn text_signal_ragged_rows_are_an_error_naming_the_line() {
        let err = parse_text("1 2\n3\n").expect_err("ragged");
        assert!(err.starts_with("line 2:"), "{err}");
    }

    /// What `np.save` writes: the magic, version 1.0, the header padded to 64 bytes, the values.
    fn npy(header: &str, values: &[f64]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        for x in values {
            bytes.extend(x.to_le_bytes());
        }
        bytes
    }

    /// C and Fortran order give the same rows; a 1-D array is one column; 3-D is an error.
    #[test]
    fn npy_float64_reads_as_rows_of_one_or_more_columns() {
        let rows = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let cases: [(&str, &[f64], Result<Table, String>); 4] = [
            // np.array([[1., 2.], [3., 4.], [5., 6.]]) and its np.asfortranarray.
            (
                "'fortran_order': False, 'shape': (3, 2)",
                &rows,
                Ok((3, 2, rows.clone())),
            ),
            (
                "'fortran_order': True, 'shape': (3, 2)",
                &[1.0, 3.0, 5.0, 2.0, 4.0, 6.0],
                Ok((3, 2, rows.clone())),
            ),
            (
                "'fortran_order': False, 'shape': (3,)",
                &[1.0, 2.0, 3.0],
                Ok((3, 1, vec![1.0, 2.0, 3.0])),
            ),
            (
                "'fortran_order': False, 'shape': (1, 1, 2)",
                &[1.0, 2.0],
                Err("expected a 1-D or 2-D array, found shape [1, 1, 2]".into()),
            ),
        ];
        for (fields, values, want) in cases {
            let header = format!("{{'descr': '<f8', {fields}, }}");
            assert_eq!(parse_npy(&npy(&header, values)), want, "{header}");
        }
    }
}
