//! Reading a complete results file back.

use std::path::Path;

use super::super::IoError;
use super::layout::*;
use crate::sweep::{Summaries, SweepResult};

/// Loads a complete results file into memory (traces included when the file has them).
pub fn read_results(path: &Path) -> Result<SweepResult, IoError> {
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
    let shape = read_shape(&file, path, &circuit_name, 1, 0)?;
    let grid = file.group("grid").map_err(&e)?;
    let grid_keys: Vec<String> =
        serde_json::from_str(&read_str_attr(&grid, "keys", path)?).map_err(|source| IoError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    let grid_values = grid_keys
        .iter()
        .map(|k| grid.dataset(&key_name(k)).and_then(|d| d.read_raw::<f64>()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(&e)?;
    let labels = read_strings(&grid, "labels", path)?;
    let status_g = file.group("status").map_err(&e)?;
    let codes: Vec<u8> = status_g.dataset("code").and_then(|d| d.read_raw()).map_err(&e)?;
    let times: Vec<f64> = status_g.dataset("t").and_then(|d| d.read_raw()).map_err(&e)?;
    let status = codes.iter().zip(&times).map(|(&c, &t)| status_from(c, t)).collect();
    let summaries = if shape.stats.is_empty() {
        None
    } else {
        let values = shape
            .stats
            .iter()
            .map(|s| {
                file.dataset(&format!("summaries/{}", s.name()))
                    .and_then(|d| d.read_raw::<f64>())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(&e)?;
        Some(Summaries {
            stats: shape.stats.clone(),
            values,
        })
    };
    let traces = if shape.keep_traces {
        Some(file.dataset("traces").and_then(|d| d.read_raw::<f64>()).map_err(&e)?)
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
