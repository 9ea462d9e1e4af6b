//! Reading a complete results file back: all of it, or the points of a range (hyperslabs:
//! only the trace chunks holding those points are read and inflated).

use std::ops::Range;
use std::path::Path;

use hdf5::Dataset;

use super::super::IoError;
use super::layout::*;
use crate::sweep::{Summaries, SweepResult};

/// Loads a complete results file into memory (traces included when the file has them).
pub fn read_results(path: &Path) -> Result<SweepResult, IoError> {
    read(path, None)
}

/// The points `points` of a complete results file, as [`read_results`] gives them for the
/// whole file (labels keep their sweep-wide numbers). Reads only those points' values: for
/// traces, the chunks holding them. A range past the end is cut to the file's points.
pub fn read_results_points(path: &Path, points: Range<usize>) -> Result<SweepResult, IoError> {
    read(path, Some(points))
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
    read_open(&file, path, circuit_name.to_string(), None)
}

fn read(path: &Path, points: Option<Range<usize>>) -> Result<SweepResult, IoError> {
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
    read_open(&file, path, circuit_name, points)
}

fn read_open(
    file: &hdf5::File,
    path: &Path,
    circuit_name: String,
    points: Option<Range<usize>>,
) -> Result<SweepResult, IoError> {
    let e = h5(path);
    let shape = read_shape(file, path, &circuit_name, 1, 0)?;
    let grid = file.group("grid").map_err(&e)?;
    let grid_keys: Vec<String> =
        serde_json::from_str(&read_str_attr(&grid, "keys", path)?).map_err(|source| IoError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    let status_g = file.group("status").map_err(&e)?;
    let code_set = status_g.dataset("code").map_err(&e)?;
    let n = code_set.shape().first().copied().unwrap_or(0);
    let r = points.map_or(0..n, |p| p.start.min(n)..p.end.min(n));
    // The points `r` along the first axis, whatever the rank.
    let rows = |d: &Dataset| -> hdf5::Result<Vec<f64>> {
        match d.ndim() {
            1 => d.read_slice_1d::<f64, _>(r.clone()).map(|a| a.to_vec()),
            2 => d
                .read_slice_2d::<f64, _>((r.clone(), ..))
                .map(|a| a.iter().copied().collect()),
            _ => d
                .read_slice::<f64, _, ndarray::Ix3>((r.clone(), .., ..))
                .map(|a| a.iter().copied().collect()),
        }
    };
    let grid_values = grid_keys
        .iter()
        .map(|k| grid.dataset(&key_name(k)).and_then(|d| rows(&d)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(&e)?;
    let labels = read_strings(&grid, "labels", path)?[r.clone()].to_vec();
    let codes: Vec<u8> = code_set.read_slice_1d(r.clone()).map(|a| a.to_vec()).map_err(&e)?;
    let times: Vec<f64> = status_g.dataset("t").and_then(|d| rows(&d)).map_err(&e)?;
    let status = codes.iter().zip(&times).map(|(&c, &t)| status_from(c, t)).collect();
    let summaries = if shape.stats.is_empty() {
        None
    } else {
        let values = shape
            .stats
            .iter()
            .map(|s| file.dataset(&format!("summaries/{}", s.name())).and_then(|d| rows(&d)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(&e)?;
        Some(Summaries {
            stats: shape.stats.clone(),
            values,
        })
    };
    let traces = if shape.keep_traces {
        Some(file.dataset("traces").and_then(|d| rows(&d)).map_err(&e)?)
    } else {
        None
    };
    Ok(SweepResult {
        circuit_name,
        labels,
        grid_keys,
        grid_values,
        time: shape.time,
        columns: shape.columns,
        traces,
        summaries,
        status,
    })
}
