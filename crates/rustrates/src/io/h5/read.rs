//! Reading a complete results file back: all of it, or what a [`ReadSelection`] asks for (a
//! range of points, some output columns, with or without traces and summaries). Only the
//! asked values are read (hyperslabs: for traces, only the chunks holding the asked points;
//! an unfiltered chunk is read for the asked columns only).

use std::ops::Range;
use std::path::Path;

use hdf5::types::VarLenUnicode;
use hdf5::Dataset;

use super::super::IoError;
use super::layout::*;
use crate::sweep::{Summaries, SweepResult};

/// What [`read_results_selected`] reads of a results file. The default reads everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadSelection {
    /// Only these points (a range past the end is cut to the file's points).
    pub points: Option<Range<usize>>,
    /// Only the output columns these names select, in the file's column order: an output key
    /// selects every column of that key (each node of an `all/...` output, both parts of a
    /// complex output, stored as `key.real` and `key.imag`), `node/key` one column, and a
    /// column's own key (`key.real`) that column. A name that selects nothing is an error.
    pub outputs: Option<Vec<String>>,
    /// Read `/traces` (when the file has them).
    pub traces: bool,
    /// Read `/summaries` (when the file has them).
    pub summaries: bool,
}

impl Default for ReadSelection {
    fn default() -> ReadSelection {
        ReadSelection {
            points: None,
            outputs: None,
            traces: true,
            summaries: true,
        }
    }
}

/// The indices of the columns `names` select (see [`ReadSelection::outputs`]), in column
/// order; an error naming the first name that selects nothing and the names there are.
pub fn select_columns(columns: &[(String, String)], names: &[String], path: &Path) -> Result<Vec<usize>, IoError> {
    let selects = |name: &str, (node, key): &(String, String)| {
        name == key
            || name.strip_prefix(node.as_str()).and_then(|r| r.strip_prefix('/')) == Some(key.as_str())
            || [".real", ".imag"]
                .iter()
                .any(|part| key.strip_suffix(part) == Some(name))
    };
    for name in names {
        if !columns.iter().any(|c| selects(name, c)) {
            let mut available: Vec<String> = Vec::new();
            for (node, key) in columns {
                for n in [key.clone(), format!("{node}/{key}")] {
                    if !available.contains(&n) {
                        available.push(n);
                    }
                }
            }
            return Err(IoError::UnknownOutput {
                path: path.to_path_buf(),
                name: name.clone(),
                available,
            });
        }
    }
    Ok((0..columns.len())
        .filter(|&i| names.iter().any(|n| selects(n, &columns[i])))
        .collect())
}

/// Loads a complete results file into memory (traces included when the file has them).
pub fn read_results(path: &Path) -> Result<SweepResult, IoError> {
    read_results_selected(path, &ReadSelection::default())
}

/// The points `points` of a complete results file, as [`read_results`] gives them for the
/// whole file (labels keep their sweep-wide numbers). Reads only those points' values: for
/// traces, the chunks holding them. A range past the end is cut to the file's points.
pub fn read_results_points(path: &Path, points: Range<usize>) -> Result<SweepResult, IoError> {
    read_results_selected(
        path,
        &ReadSelection {
            points: Some(points),
            ..ReadSelection::default()
        },
    )
}

/// What `selection` asks for of a complete results file, as [`read_results`] gives the whole
/// file: labels keep their sweep-wide numbers, `columns` are the selected ones, `traces` /
/// `summaries` are `None` when not asked for. Reads only those values.
pub fn read_results_selected(path: &Path, selection: &ReadSelection) -> Result<SweepResult, IoError> {
    let e = h5(path);
    let file = open_file(path).map_err(&e)?;
    let complete: u8 = file.attr("complete").and_then(|a| a.read_scalar()).unwrap_or(0);
    if complete != 1 {
        return Err(IoError::Incomplete {
            path: path.to_path_buf(),
            what: "attribute complete = 1",
        });
    }
    let circuit_name = read_str_attr(&file, "circuit_name", path)?;
    read_open(&file, path, circuit_name, selection)
}

/// A finished part file (`DIR/parts/chunk_*.h5`, see [`super::super::parts`]) as
/// [`read_results`] gives a complete file: its chunk's points, labels with their sweep-wide
/// numbers. Parts do not record the circuit's name; it is the sweep record's
/// (`circuit_name`).
pub fn read_part(path: &Path, circuit_name: &str) -> Result<SweepResult, IoError> {
    let file = open_file(path).map_err(h5(path))?;
    // A part's chunk attributes are written before its first point; `.tmp` parts are not
    // finished, and a results file has none.
    let is_part = file.attr("chunk_start").is_ok() && path.extension().is_some_and(|x| x == "h5");
    if !is_part {
        return Err(IoError::NotAPart {
            path: path.to_path_buf(),
        });
    }
    read_open(&file, path, circuit_name.to_string(), &ReadSelection::default())
}

/// The values of `a` in row-major order: its own buffer when it is laid out so (as HDF5
/// reads it), else a copy; the traces are the largest thing read, and a copy of them costs
/// as much as reading them from the page cache.
pub(super) fn into_vec<D: ndarray::Dimension>(a: ndarray::Array<f64, D>) -> Vec<f64> {
    if !a.is_standard_layout() {
        return a.iter().copied().collect();
    }
    // Standard layout: the elements are contiguous, in order, from the offset on.
    let n = a.len();
    let (mut values, offset) = a.into_raw_vec_and_offset();
    match offset.unwrap_or(0) {
        0 => {
            values.truncate(n);
            values
        }
        first => values[first..first + n].to_vec(),
    }
}

/// Runs of consecutive indices: `[0, 1, 2, 5, 6]` → `[0..3, 5..7]`.
fn runs(indices: &[usize]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for &i in indices {
        match out.last_mut() {
            Some(r) if r.end == i => r.end += 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

fn read_open(
    file: &hdf5::File,
    path: &Path,
    circuit_name: String,
    selection: &ReadSelection,
) -> Result<SweepResult, IoError> {
    let e = h5(path);
    let shape = read_shape(file, path, &circuit_name, 1, 0)?;
    let n_cols = shape.columns.len();
    let cols: Vec<usize> = match &selection.outputs {
        Some(names) => select_columns(&shape.columns, names, path)?,
        None => (0..n_cols).collect(),
    };
    let col_runs = runs(&cols);
    let all_cols = cols.len() == n_cols;
    let grid = file.group("grid").map_err(&e)?;
    let grid_keys: Vec<String> =
        serde_json::from_str(&read_str_attr(&grid, "keys", path)?).map_err(|source| IoError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    let status_g = file.group("status").map_err(&e)?;
    let code_set = status_g.dataset("code").map_err(&e)?;
    let n = code_set.shape().first().copied().unwrap_or(0);
    let r = selection
        .points
        .as_ref()
        .map_or(0..n, |p| p.start.min(n)..p.end.min(n).max(p.start.min(n)));
    let n_sel = r.len();
    let point_rows =
        |d: &Dataset| -> hdf5::Result<Vec<f64>> { d.read_slice_1d::<f64, _>(r.clone()).map(|a| a.to_vec()) };
    // `[point][column]` (or `[point][time][column]` with `n_time`) of the selected points and
    // columns: one hyperslab when every column is asked for, else one per run of columns.
    let point_columns = |d: &Dataset, n_time: Option<usize>| -> hdf5::Result<Vec<f64>> {
        let inner = n_time.unwrap_or(1);
        if all_cols || n_sel == 0 {
            return match n_time {
                None => d.read_slice_2d::<f64, _>((r.clone(), ..)).map(into_vec),
                Some(_) => d.read_slice::<f64, _, ndarray::Ix3>((r.clone(), .., ..)).map(into_vec),
            };
        }
        let width = cols.len();
        let mut out = vec![0.0; n_sel * inner * width];
        let mut at = 0;
        for run in &col_runs {
            let block: Vec<f64> = match n_time {
                None => into_vec(d.read_slice_2d::<f64, _>((r.clone(), run.clone()))?),
                Some(_) => into_vec(d.read_slice::<f64, _, ndarray::Ix3>((r.clone(), .., run.clone()))?),
            };
            let w = run.len();
            for (row, values) in block.chunks_exact(w).enumerate() {
                out[row * width + at..row * width + at + w].copy_from_slice(values);
            }
            at += w;
        }
        Ok(out)
    };
    let grid_values = grid_keys
        .iter()
        .map(|k| grid.dataset(&key_name(k)).and_then(|d| point_rows(&d)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(&e)?;
    let labels: Vec<String> = grid
        .dataset("labels")
        .and_then(|d| d.read_slice_1d::<VarLenUnicode, _>(r.clone()))
        .map(|a| a.iter().map(|s| s.as_str().to_string()).collect())
        .map_err(&e)?;
    let codes: Vec<u8> = code_set.read_slice_1d(r.clone()).map(|a| a.to_vec()).map_err(&e)?;
    let times: Vec<f64> = status_g.dataset("t").and_then(|d| point_rows(&d)).map_err(&e)?;
    let status = codes.iter().zip(&times).map(|(&c, &t)| status_from(c, t)).collect();
    let summaries = if shape.stats.is_empty() || !selection.summaries {
        None
    } else {
        let values = shape
            .stats
            .iter()
            .map(|s| {
                file.dataset(&format!("summaries/{}", s.name()))
                    .and_then(|d| point_columns(&d, None))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(&e)?;
        Some(Summaries {
            stats: shape.stats.clone(),
            values,
        })
    };
    let traces = if shape.keep_traces && selection.traces {
        Some(
            file.dataset("traces")
                .and_then(|d| point_columns(&d, Some(shape.time.len())))
                .map_err(&e)?,
        )
    } else {
        None
    };
    Ok(SweepResult {
        circuit_name,
        labels,
        grid_keys,
        grid_values,
        time: shape.time,
        columns: cols.iter().map(|&c| shape.columns[c].clone()).collect(),
        traces,
        summaries,
        status,
    })
}
