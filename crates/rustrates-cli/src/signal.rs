//! Input signals from files: CSV/whitespace text (one row per step, one column per grid point
//! or a single column) and NumPy `.npy` (float64, 1-D or 2-D, C order).

use std::path::Path;
use std::sync::Arc;

use rustrates::solve::Signal;

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

fn parse_text(text: &str) -> Result<(usize, usize, Vec<f64>), String> {
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

fn parse_npy(bytes: &[u8]) -> Result<(usize, usize, Vec<f64>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes.get(start..start + header_len).ok_or("truncated .npy header")?;
    let header = String::from_utf8_lossy(header);
    if !header.contains("'descr': '<f8'") {
        return Err(format!(
            "only little-endian float64 arrays are supported; header: {}",
            header.trim()
        ));
    }
    if header.contains("'fortran_order': True") {
        return Err("Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into());
    }
    let shape_start = header.find("'shape': (").ok_or("no shape in .npy header")? + "'shape': (".len();
    let shape_end = header[shape_start..].find(')').ok_or("bad shape in .npy header")? + shape_start;
    let dims: Vec<usize> = header[shape_start..shape_end]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad dimension `{s}`")))
        .collect::<Result<_, _>>()?;
    let (rows, cols) = match dims.as_slice() {
        [n] => (*n, 1),
        [n, m] => (*n, *m),
        _ => return Err(format!("expected a 1-D or 2-D array, found shape {dims:?}")),
    };
    let body = &bytes[start + header_len..];
    if body.len() != rows * cols * 8 {
        return Err(format!(
            "expected {} bytes of data for shape {dims:?}, found {}",
            rows * cols * 8,
            body.len()
        ));
    }
    let data = body
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")))
        .collect();
    Ok((rows, cols, data))
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

    #[test]
    fn npy_float64_2d_reads_in_c_order() {
        // What np.save writes for np.array([[1., 2.], [3., 4.], [5., 6.]]).
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        for x in [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0] {
            bytes.extend(x.to_le_bytes());
        }
        assert_eq!(
            parse_npy(&bytes).expect("valid"),
            (3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        );
    }
}
