//! Bindings for `ClusterGridSearch`: one sweep split into chunks that run on Dask workers.
//!
//! The client and the workers build the same [`ClusterSweep`]; a worker runs one chunk into a
//! private directory with the engine's shard mechanism (`Shard { index: i, count: n_chunks }`
//! is exactly chunk i), and ships the part file's bytes back; the client records them in its
//! `compute_dir` with the engine's `record_part_bytes` (as its `PartSink` records a chunk),
//! and merges at the end. The sweep record, part paths, labels and the part reader are the
//! engine's too: nothing of the chunk protocol is re-derived here. No shared filesystem is needed:
//! the template files travel with the task (`template_files`) and a worker loads them from a
//! private copy laid out as on the client.

// Errors are built once per failed call; their typed fields are worth more than a smaller
// `Result` (as in `rustrates::io`).
#![allow(clippy::result_large_err)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use rustrates::io::{self, parts, FailedChunk, FileOptions, IoError, Manifest, SweepRecord};
use rustrates::model::{self, Circuit, Loaded};
use rustrates::sweep::refine::PassRunner;
use rustrates::sweep::{self, RunControl, Shard, SweepError, SweepResult, SweepSpec};
use rustrates::template::LoadOptions;

use crate::args::{trace_type, SweepArgs};
use crate::errors::{self, arg_err, engine_error, to_pyerr, Kind, Located};

fn io_err(py: Python<'_>, e: &IoError) -> PyErr {
    errors::io_error(py, e, "compute_dir")
}

/// One sweep as both the client and the workers see it.
#[pyclass(name = "ClusterSweep", module = "rustrates._rustrates", frozen)]
pub struct ClusterSweep {
    spec: SweepSpec,
    loaded: Arc<Loaded>,
    /// What the parts and `sweep.json` record: the template's source and its path as the
    /// user gave it on the client, the trace type.
    opts: FileOptions,
}

/// `path` re-rooted under `root` (`/a/b.yaml` → `root/a/b.yaml`); relative paths and dotted
/// names are left as they are (they resolve against the loader's working directory).
fn mirrored(root: &Path, path: &Path) -> PathBuf {
    use std::path::Component;
    if !path.has_root() {
        return path.to_path_buf();
    }
    let mut out = root.to_path_buf();
    for c in path.components() {
        if !matches!(c, Component::Prefix(_) | Component::RootDir) {
            out.push(c.as_os_str());
        }
    }
    out
}

/// Loads `template` from copies of the client's template files, written under a private
/// directory at their client paths (`(path, canonical path, text)`: the text at the canonical
/// path, a symlink at the other, as the client's symlinked directories were), with the
/// client's working directory mirrored too: the loader then finds every file (relative paths,
/// files next to the template, `model_templates/` trees) where it found them on the client.
fn load_shipped(py: Python<'_>, template: &str, files: &[(String, String, String)], cwd: &str) -> PyResult<Loaded> {
    let os_err = |e: std::io::Error| {
        to_pyerr(
            py,
            Kind::Template,
            &[Located::plain(
                "io",
                format!("cannot lay out the shipped template files in a temporary directory: {e}"),
                "template",
            )],
        )
    };
    let root = tempfile::Builder::new()
        .prefix("rustrates-template-")
        .tempdir()
        .map_err(os_err)?;
    for (_, canonical, text) in files {
        let dest = mirrored(root.path(), Path::new(canonical));
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(os_err)?;
        }
        fs::write(&dest, text).map_err(os_err)?;
    }
    for (path, canonical, _) in files {
        let (link, dest) = (
            mirrored(root.path(), Path::new(path)),
            mirrored(root.path(), Path::new(canonical)),
        );
        if link.exists() {
            continue;
        }
        if let Some(dir) = link.parent() {
            fs::create_dir_all(dir).map_err(os_err)?;
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(&dest, &link).map_err(os_err)?;
        #[cfg(not(unix))]
        fs::copy(&dest, &link).map_err(os_err)?;
    }
    let path = mirrored(root.path(), Path::new(template))
        .to_string_lossy()
        .into_owned();
    let opts = LoadOptions {
        cwd: Some(mirrored(root.path(), Path::new(cwd))),
        ..LoadOptions::default()
    };
    let result = py.detach(move || model::load_circuit(&path, &opts));
    result.map_err(|f| errors::load_failure(py, &f.diagnostics, &f.sources))
}

impl ClusterSweep {
    /// The point range of chunk `index`, or an error naming the chunk.
    fn chunk(&self, py: Python<'_>, index: usize) -> PyResult<std::ops::Range<usize>> {
        let chunks = self.spec.chunks();
        chunks.get(index).cloned().ok_or_else(|| {
            arg_err(
                py,
                Kind::Sweep,
                "chunk",
                format!("chunk {index} does not exist (the sweep has {})", chunks.len()),
            )
        })
    }

    fn record(&self) -> SweepRecord {
        io::sweep_record_of(&self.spec, &self.loaded.circuit.name, &self.opts)
    }
}

#[pymethods]
impl ClusterSweep {
    /// A sweep's [`SweepArgs`] cut into chunks of `chunk_size` points; the engine's checks
    /// that need no compile (time settings, grid, param_map, outputs, inputs) run here, so a
    /// bad argument stops the client before any task is sent.
    #[new]
    // Python keyword arguments, one per parameter (the sweep's own are in `args`).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (template, args, *, chunk_size, template_files=None, template_cwd=None, trace_precision="float64", compress=false))]
    fn new(
        py: Python<'_>,
        template: &str,
        args: &SweepArgs,
        chunk_size: usize,
        template_files: Option<Vec<(String, String, String)>>,
        template_cwd: Option<String>,
        trace_precision: &str,
        compress: bool,
    ) -> PyResult<ClusterSweep> {
        let trace_type = trace_type(py, trace_precision)?;
        if chunk_size == 0 {
            return Err(arg_err(
                py,
                Kind::Sweep,
                "chunk_size",
                "chunk_size must be a positive number of points".into(),
            ));
        }
        let mut spec = args.spec.clone();
        // A refining sweep runs pass by pass (`run_refined`), each pass a sweep of its own
        // cut into chunks; the refined file itself is written in one chunk.
        spec.chunk_size = if spec.refine.is_some() { 0 } else { chunk_size };
        let loaded = match (&template_files, &template_cwd) {
            (Some(files), Some(cwd)) => load_shipped(py, template, files, cwd)?,
            (None, None) => crate::circuit::load(py, template)?,
            _ => {
                return Err(arg_err(
                    py,
                    Kind::Sweep,
                    "template_files",
                    "template_files and template_cwd go together".into(),
                ))
            }
        };
        sweep::check(&spec, &loaded.circuit).map_err(|e| engine_error(py, &e))?;
        if let Some(refine) = &spec.refine {
            sweep::refine::check(&spec, refine).map_err(|e| engine_error(py, &e.into()))?;
        }
        let loaded = Arc::new(loaded);
        let opts = FileOptions {
            trace_type,
            compression: compress,
            ..FileOptions::new(&loaded.source_text, template)
        };
        Ok(ClusterSweep { spec, loaded, opts })
    }

    /// SHA-256 of template source, grid and settings: what names and guards a compute_dir.
    #[getter]
    fn fingerprint(&self) -> String {
        self.record().fingerprint
    }

    /// Whether the sweep refines (`refine=`): then it runs with `run_refined`, not by chunks.
    #[getter]
    fn refines(&self) -> bool {
        self.spec.refine.is_some()
    }

    /// The back end of the sweep's spec (`auto` unless one was named); a refine pass's is
    /// the one the engine chose for the whole refined sweep.
    #[getter]
    fn backend(&self) -> String {
        format!("{:?}", self.spec.backend).to_ascii_lowercase()
    }

    /// Runs a refining sweep into the results file `out` (replaced if it exists): the engine
    /// decides each pass's points and writes the final point set as `grid_search(refine=...)`
    /// does; `run_pass(points, backend)` computes a pass — `points` the pass's grid rows
    /// (points × keys, the keys of this sweep), `backend` the back end every pass runs on —
    /// and returns `(sweep, dir)`: the pass's `ClusterSweep` and the directory where all its
    /// chunks are recorded. An exception raised by `run_pass` stops the run and is raised here.
    fn run_refined(&self, py: Python<'_>, out: PathBuf, run_pass: Py<PyAny>) -> PyResult<()> {
        if self.spec.refine.is_none() {
            return Err(arg_err(
                py,
                Kind::Sweep,
                "refine",
                "run_refined needs a sweep with refine=; run the chunks of this one".into(),
            ));
        }
        let runner = ClusterPasses {
            run_pass,
            raised: Mutex::new(None),
        };
        let opts = FileOptions {
            overwrite: true,
            ..self.opts.clone()
        };
        let (spec, circuit) = (&self.spec, &self.loaded.circuit);
        let result = py.detach(|| {
            let ctrl = RunControl {
                refine_passes: Some(&runner),
                ..RunControl::default()
            };
            io::sweep_to_file(spec, circuit, &out, &opts, ctrl).map_err(Box::new)
        });
        if let Some(err) = runner.raised.lock().ok().and_then(|mut e| e.take()) {
            return Err(err);
        }
        result.map(drop).map_err(|e| io_err(py, &e))
    }

    #[getter]
    fn circuit_name(&self) -> String {
        self.loaded.circuit.name.clone()
    }

    /// The template files the circuit was read from, as `(path, canonical path, text)`:
    /// what a worker needs to load the same template without the client's filesystem (see
    /// `template_files=`). Paths are absolute; the canonical one differs under a symlinked
    /// directory, and the loader looks for a file's neighbours next to its canonical path.
    #[getter]
    fn template_files(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<(String, String, String)> = Vec::new();
        for (_, f) in self.loaded.sources.files() {
            let path = Path::new(&f.name);
            // The sources also hold the built-in library and rewritten equations; the files
            // read from disk are the absolute paths whose text is what was loaded.
            if !path.is_absolute() || fs::read_to_string(path).ok().as_deref() != Some(f.text.as_str()) {
                continue;
            }
            let Ok(canonical) = fs::canonicalize(path) else {
                continue;
            };
            if !out.iter().any(|(p, _, _)| *p == f.name) {
                out.push((f.name.clone(), canonical.to_string_lossy().into_owned(), f.text.clone()));
            }
        }
        out
    }

    /// The grid values, points × keys in point order: the rows of the result map, known
    /// before any chunk has run.
    fn grid<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let g = &self.spec.param_grid;
        let (n, k) = (g.len(), g.keys().len());
        let mut rows = vec![0.0; n * k];
        for (j, col) in g.columns().iter().enumerate() {
            for (p, v) in col.iter().enumerate() {
                rows[p * k + j] = *v;
            }
        }
        PyArray1::from_vec(py, rows).reshape([n, k])
    }

    /// The labels of points `start..end` (all by default), as the engine writes them.
    #[pyo3(signature = (start=0, end=None))]
    fn labels(&self, start: usize, end: Option<usize>) -> Vec<String> {
        let all = self.spec.param_grid.labels(&self.loaded.circuit.name);
        let end = end.unwrap_or(all.len()).min(all.len());
        all.get(start.min(end)..end).map(<[String]>::to_vec).unwrap_or_default()
    }

    /// The part file of chunk `index`, relative to the sweep's directory.
    fn part_path(&self, py: Python<'_>, index: usize) -> PyResult<String> {
        let range = self.chunk(py, index)?;
        Ok(parts::part_file(range.start, range.end))
    }

    /// `(start, end)` point ranges, one per chunk.
    fn chunks(&self) -> Vec<(usize, usize)> {
        self.spec.chunks().iter().map(|r| (r.start, r.end)).collect()
    }

    /// Creates `dir` with this sweep's `sweep.json`, or checks that the one there is the same
    /// sweep; returns the indices of the chunks the manifest already lists.
    fn prepare_dir(&self, py: Python<'_>, dir: PathBuf) -> PyResult<Vec<usize>> {
        let record = self.record();
        record
            .create_or_check(&dir)
            // A corrupt part is set aside and its chunk computed again, as in `sweep_to_file`.
            .and_then(|()| Manifest::load_verified(&dir))
            .map(|(m, _)| m.entries.iter().map(|e| e.chunk).collect())
            .map_err(|e| io_err(py, &e))
    }

    /// Runs chunk `index` into `dir` (a fresh directory of the worker) and returns the part
    /// file's path relative to `dir`. The GIL is released while the engine runs.
    fn run_chunk(&self, py: Python<'_>, index: usize, dir: PathBuf) -> PyResult<String> {
        let range = self.chunk(py, index)?;
        // The worker's directory is scratch: the client records (and syncs) the bytes.
        let opts = FileOptions {
            durable: false,
            ..self.opts.clone()
        };
        let shard = Shard {
            index,
            count: self.spec.chunks().len(),
        };
        let (spec, circuit) = (&self.spec, &self.loaded.circuit);
        let d = dir.clone();
        py.detach(move || {
            let ctrl = RunControl {
                shard: Some(shard),
                ..RunControl::default()
            };
            io::run_parts(spec, circuit, &d, &opts, ctrl).map_err(Box::new)
        })
        .map_err(|e| io_err(py, &e))?;
        Ok(parts::part_file(range.start, range.end))
    }

    /// Records chunk `index`, whose part file's bytes are `data`, in `dir` (the engine's
    /// `record_part_bytes`: the part durably in place, then its manifest line).
    fn record_part(&self, py: Python<'_>, dir: PathBuf, index: usize, data: &[u8]) -> PyResult<()> {
        let range = self.chunk(py, index)?;
        py.detach(|| io::record_part_bytes(&dir, index, range, data))
            .map(drop)
            .map_err(|e| io_err(py, &e))
    }

    /// A merge of the parts recorded in `dir` into the existing HDF5 file `out` (a staging
    /// file the caller renames; its pandas keys stay), chunk by chunk as they are recorded
    /// (the engine's `IncrementalMerge`).
    fn merger(&self, py: Python<'_>, dir: PathBuf, out: PathBuf) -> PyResult<ChunkMerger> {
        let grid = &self.spec.param_grid;
        let merge = io::IncrementalMerge::new(&dir, &out, grid).map_err(|e| io_err(py, &e))?;
        Ok(ChunkMerger {
            merge: Some(merge),
            grid: grid.clone(),
        })
    }

    /// Reads a finished part file of this sweep as the `run_sweep` dict of its points, with
    /// the engine's part reader (labels keep their sweep-wide numbers).
    fn read_part<'py>(&self, py: Python<'py>, part: PathBuf) -> PyResult<Bound<'py, PyDict>> {
        let name = &self.loaded.circuit.name;
        let result = py.detach(|| io::read_part(&part, name)).map_err(|e| io_err(py, &e))?;
        crate::results::result_dict(py, result, None)
    }
}

/// A refine pass computed by the Python client's `run_pass` (chunks on the workers, recorded
/// in a directory), read back with the engine's part reader.
struct ClusterPasses {
    run_pass: Py<PyAny>,
    /// What `run_pass` raised: handed back to Python as it was.
    raised: Mutex<Option<PyErr>>,
}

impl ClusterPasses {
    fn pass(&self, py: Python<'_>, spec: &SweepSpec, circuit: &Circuit) -> PyResult<Result<SweepResult, SweepError>> {
        let grid = &spec.param_grid;
        let (n, k) = (grid.len(), grid.keys().len());
        let mut rows = vec![0.0; n * k];
        for (j, col) in grid.columns().iter().enumerate() {
            for (p, v) in col.iter().enumerate() {
                rows[p * k + j] = *v;
            }
        }
        let rows = PyArray1::from_vec(py, rows).reshape([n, k])?;
        let backend = format!("{:?}", spec.backend).to_ascii_lowercase();
        let (sweep, dir): (Py<ClusterSweep>, PathBuf) = self.run_pass.call1(py, (rows, backend))?.extract(py)?;
        let sweep = sweep.get();
        // The pass the workers computed must be the one the engine asked for.
        let same_points = sweep.spec.param_grid.keys() == grid.keys()
            && sweep
                .spec
                .param_grid
                .columns()
                .iter()
                .zip(grid.columns())
                .all(|(a, b)| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
        if !same_points || sweep.spec.backend != spec.backend {
            return Ok(Err(SweepError::Output {
                source: "run_pass returned a sweep of other points or another back end than the refine pass".into(),
            }));
        }
        let mut result: Option<SweepResult> = None;
        for range in sweep.spec.chunks() {
            let path = dir.join(parts::part_file(range.start, range.end));
            let part = match py.detach(|| io::read_part(&path, &circuit.name)) {
                Ok(part) => part,
                Err(e) => return Err(io_err(py, &e)),
            };
            match result.as_mut() {
                None => result = Some(part),
                Some(all) => append(all, part),
            }
        }
        Ok(result.ok_or_else(|| SweepError::Output {
            source: "a refine pass without points".into(),
        }))
    }
}

/// `part`'s points after `all`'s.
fn append(all: &mut SweepResult, part: SweepResult) {
    all.labels.extend(part.labels);
    for (a, b) in all.grid_values.iter_mut().zip(part.grid_values) {
        a.extend(b);
    }
    if let (Some(a), Some(b)) = (all.traces.as_mut(), part.traces) {
        a.extend(b);
    }
    if let (Some(a), Some(b)) = (all.summaries.as_mut(), part.summaries) {
        for (x, y) in a.values.iter_mut().zip(b.values) {
            x.extend(y);
        }
    }
    all.status.extend(part.status);
}

impl PassRunner for ClusterPasses {
    fn run_pass(&self, spec: &SweepSpec, circuit: &Circuit) -> Result<SweepResult, SweepError> {
        Python::attach(|py| match self.pass(py, spec, circuit) {
            Ok(result) => result,
            Err(err) => {
                if let Ok(mut raised) = self.raised.lock() {
                    *raised = Some(err);
                }
                Err(SweepError::Cancelled { points_done: 0 })
            }
        })
    }
}

/// The bytes of a file, read without the GIL (part files shipped from workers).
#[pyfunction]
pub fn read_bytes<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyBytes>> {
    let data = py
        .detach(|| fs::read(&path))
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &data))
}

/// `ClusterSweep.merger(dir, out)`: `add(chunk)` copies a recorded chunk into the staging
/// file while others still run; `finish(failed)` marks the chunks that failed on every try
/// (`[(chunk, error)]`: status `failed`, NaN outputs) and completes the file, returning the
/// number of failed points.
#[pyclass(name = "ChunkMerger", module = "rustrates._rustrates")]
pub struct ChunkMerger {
    merge: Option<io::IncrementalMerge>,
    grid: rustrates::sweep::Grid,
}

#[pymethods]
impl ChunkMerger {
    fn add(&mut self, py: Python<'_>, chunk: usize) -> PyResult<()> {
        let merge = self.merge.as_mut().ok_or_else(finished)?;
        py.detach(|| merge.add(chunk)).map_err(|e| io_err(py, &e))
    }

    /// Returns `{failed_points, status_codes, columns, summary_names, summaries}`:
    /// `summaries` is `[point, column × statistic]` (statistics inner) for sweeps without
    /// traces, else None.
    fn finish<'py>(&mut self, py: Python<'py>, failed: Vec<(usize, String)>) -> PyResult<Bound<'py, PyDict>> {
        let merge = self.merge.take().ok_or_else(finished)?;
        let failed: Vec<FailedChunk> = failed
            .into_iter()
            .map(|(chunk, error)| FailedChunk { chunk, error })
            .collect();
        let grid = &self.grid;
        let merged = py.detach(|| merge.finish(grid, &failed)).map_err(|e| io_err(py, &e))?;
        let d = PyDict::new(py);
        d.set_item("failed_points", merged.failed_points)?;
        d.set_item("status_codes", PyArray1::from_vec(py, merged.status_codes))?;
        let width = merged.columns.len() * merged.statistics.len();
        d.set_item("columns", merged.columns)?;
        d.set_item("summary_names", merged.statistics)?;
        match merged.summaries {
            Some(values) if width > 0 => {
                let rows = values.len() / width;
                let array = PyArray1::from_vec(py, values).reshape([rows, width])?;
                d.set_item("summaries", array)?;
            }
            _ => d.set_item("summaries", py.None())?,
        }
        Ok(d)
    }
}

fn finished() -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err("this merge is finished")
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ClusterSweep>()?;
    m.add_class::<ChunkMerger>()?;
    m.add_function(wrap_pyfunction!(read_bytes, m)?)?;
    Ok(())
}
