//! HDF5 result files (feature `hdf5`).
//!
//! # Layout
//!
//! ```text
//! /                         attributes:
//!                             template_source    YAML text of the template file
//!                             template_path      the template path the sweep was given
//!                             settings           JSON: solver, steps, param_map, inputs, outputs, summaries, ...
//!                             circuit_name       label prefix (e.g. Net3)
//!                             fingerprint        SHA-256 of template source + grid + settings
//!                             rustrates_version
//!                             complete = 1       only on a finished, merged file
//!                             failed_points      points whose chunk failed (0 unless a
//!                                                cluster chunk failed on every try)
//! /time                     f64 [n_time]                    sample times after the cutoff
//! /grid/<key>               f64 [n_points]                  one per grid key, point order
//! /grid/labels              str [n_points]                  "{circuit_name}_{i}"
//!                           (/grid attribute `keys`: JSON list of the keys in order; a `/`
//!                           in a key is stored as `%2F` in its dataset name)
//! /status/code              u8  [n_points]                  0 ok, 1 non-finite, 2 step too small,
//!                                                           3 failed (not computed)
//! /status/t                 f64 [n_points]                  time of the failure (NaN when ok)
//! /status/error             str [n_points]                  only when failed_points > 0: why
//!                                                           the point's chunk failed ("" else)
//! /columns/node             str [n_columns]                 node of each output column
//! /columns/key              str [n_columns]                 output key of each column
//! /summaries/<stat>         f64 [n_points, n_columns]       when summaries were asked for
//!                           (/summaries attribute `stats`: JSON list in order; stats are
//!                           mean, std, min, max, last, ptp, dom_freq, dom_power)
//! /traces                   f64 [n_points, n_time, n_columns]  when traces are kept;
//!                           chunked (min(block_size, n_points), min(n_time, 1024), n_columns),
//!                           shuffle + deflate level 1 when there are at least 64 MiB of
//!                           them, unless compression is off (part files are never compressed)
//! /inputs/<var>             f64 [steps] or [steps, n_points]  time-series inputs (constants
//!                           are in `settings`); `/` in a name stored as `%2F`
//! ```
//!
//! h5py reads it lazily: `f["traces"][i, :, c]` is the trace of point i, column c.
//! Failed points (see [`merge_marking_failed`]) have NaN summaries and traces.
//!
//! Part files (`DIR/parts/chunk_*.h5`, see [`super::parts`]) have the same layout restricted
//! to their chunk's points, plus root attributes `chunk_index`, `chunk_start`, `chunk_end`,
//! and no `complete`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use hdf5::{Dataset, File, Group};
use ndarray::ArrayView3;

use super::guard;
use super::parts::{self, fingerprint, part_file, tmp_path, Manifest, ManifestEntry, SweepRecord};
use super::IoError;
use crate::model::Circuit;
use crate::solve::PointStatus;
use crate::sweep::{
    run_with, BlockOutput, Grid, RunControl, Statistic, Summaries, SweepError, SweepMeta, SweepResult, SweepSink,
    SweepSpec, SweepSummary,
};

/// What a results file records beyond the sweep itself.
#[derive(Clone, Debug, Default)]
pub struct FileOptions {
    pub template_source: String,
    pub template_path: String,
    /// Deflate the traces when they are large enough to be worth it
    /// ([`MIN_COMPRESSED_TRACE_BYTES`]; default on).
    pub compression: bool,
    /// Where part files go (default: `<out>.parts` next to the output file).
    pub parts_dir: Option<PathBuf>,
    /// Keep the part directory after a successful merge.
    pub keep_parts: bool,
    /// fsync files before they are renamed into place and manifest lines once written
    /// (default on). Off only for scratch output whose bytes are shipped and recorded
    /// elsewhere, e.g. a cluster worker's chunk: there the syncs only delay the result.
    pub durable: bool,
    /// Replace an existing results file (default off: an existing file is an error).
    pub overwrite: bool,
    /// Files the results must never replace, even with `overwrite` (the spec, the template).
    pub protect: Vec<PathBuf>,
}

impl FileOptions {
    pub fn new(template_source: &str, template_path: &str) -> FileOptions {
        FileOptions {
            template_source: template_source.to_string(),
            template_path: template_path.to_string(),
            compression: true,
            parts_dir: None,
            keep_parts: false,
            durable: true,
            overwrite: false,
            protect: Vec::new(),
        }
    }
}

/// HDF5's own file locks add nothing here (files are written under temporary names and
/// renamed; the manifest orders the writers), and they leak into child processes such as the
/// C back end's compiler, which inherit the descriptor and keep the lock: another open of
/// the same file then fails with EAGAIN. So every file is opened without them.
fn create_file(path: &Path) -> hdf5::Result<File> {
    File::with_options().with_fapl(|p| p.file_locking(false)).create(path)
}

fn open_file(path: &Path) -> hdf5::Result<File> {
    File::with_options().with_fapl(|p| p.file_locking(false)).open(path)
}

/// Level 1 with the shuffle filter: on sampled traces it compresses about as well as level 4
/// at a fraction of the time (the write of a 10,000-point sweep was 15× slower at level 4).
const DEFLATE_LEVEL: u8 = 1;
/// Traces smaller than this are stored uncompressed even when compression is on. Sampled
/// float traces shrink only about 1.5× and deflate runs at about 50 MB/s, so for a small file
/// it would cost more time than the whole simulation (0.3 s for the 16 MB of a 20×20 sweep,
/// which otherwise takes 0.1 s) to save a few megabytes.
pub const MIN_COMPRESSED_TRACE_BYTES: usize = 64 << 20;

#[cfg(test)]
thread_local! {
    /// Tests lower the threshold to see compressed files without writing 64 MiB. Layouts are
    /// created on the thread that runs the sweep or the merge, so a test's setting holds for it.
    static MIN_COMPRESSED: std::cell::Cell<usize> = const { std::cell::Cell::new(MIN_COMPRESSED_TRACE_BYTES) };
}

/// Whether traces of `bytes` bytes are deflated.
fn deflate_traces(compression: bool, bytes: usize) -> bool {
    #[cfg(test)]
    let min = MIN_COMPRESSED.with(|m| m.get());
    #[cfg(not(test))]
    let min = MIN_COMPRESSED_TRACE_BYTES;
    compression && bytes >= min
}
/// Points copied at a time when merging traces (bounds merge memory).
const MERGE_POINTS: usize = 256;

fn h5(path: &Path) -> impl Fn(hdf5::Error) -> IoError + '_ {
    move |source| IoError::Hdf5 {
        path: path.to_path_buf(),
        source,
    }
}

fn text(s: &str) -> Result<VarLenUnicode, IoError> {
    s.parse::<VarLenUnicode>()
        .map_err(|_| IoError::BadText { text: s.to_string() })
}

fn write_str_attr(loc: &hdf5::Location, name: &str, value: &str, path: &Path) -> Result<(), IoError> {
    let v = text(value)?;
    loc.new_attr::<VarLenUnicode>()
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .map_err(h5(path))
}

fn read_str_attr(loc: &hdf5::Location, name: &str, path: &Path) -> Result<String, IoError> {
    let v: VarLenUnicode = loc.attr(name).and_then(|a| a.read_scalar()).map_err(h5(path))?;
    Ok(v.as_str().to_string())
}

fn write_u64_attr(loc: &hdf5::Location, name: &str, value: u64, path: &Path) -> Result<(), IoError> {
    loc.new_attr::<u64>()
        .create(name)
        .and_then(|a| a.write_scalar(&value))
        .map_err(h5(path))
}

fn write_strings(g: &Group, name: &str, values: &[String], path: &Path) -> Result<(), IoError> {
    let data = values.iter().map(|s| text(s)).collect::<Result<Vec<_>, _>>()?;
    g.new_dataset_builder()
        .with_data(&data[..])
        .create(name)
        .map(|_| ())
        .map_err(h5(path))
}

fn read_strings(g: &Group, name: &str, path: &Path) -> Result<Vec<String>, IoError> {
    let v: Vec<VarLenUnicode> = g.dataset(name).and_then(|d| d.read_raw()).map_err(h5(path))?;
    Ok(v.iter().map(|s| s.as_str().to_string()).collect())
}

fn write_f64s(g: &Group, name: &str, values: &[f64], path: &Path) -> Result<(), IoError> {
    g.new_dataset_builder()
        .with_data(values)
        .create(name)
        .map(|_| ())
        .map_err(h5(path))
}

fn key_name(key: &str) -> String {
    key.replace('%', "%25").replace('/', "%2F")
}

/// `/status/code` of a point that was never computed (its chunk failed).
const FAILED_CODE: u8 = 3;

fn status_code(s: &PointStatus) -> (u8, f64) {
    match *s {
        PointStatus::Ok => (0, f64::NAN),
        PointStatus::NonFinite { t } => (1, t),
        PointStatus::StepTooSmall { t } => (2, t),
        PointStatus::Failed => (FAILED_CODE, f64::NAN),
    }
}

fn status_from(code: u8, t: f64) -> PointStatus {
    match code {
        0 => PointStatus::Ok,
        1 => PointStatus::NonFinite { t },
        FAILED_CODE => PointStatus::Failed,
        _ => PointStatus::StepTooSmall { t },
    }
}

/// The shape information every file of a sweep shares.
#[derive(Clone, Debug)]
struct Shape {
    circuit_name: String,
    time: Vec<f64>,
    columns: Vec<(String, String)>,
    stats: Vec<Statistic>,
    keep_traces: bool,
    block_size: usize,
}

impl Shape {
    fn of(meta: &SweepMeta<'_>) -> Shape {
        Shape {
            circuit_name: meta.circuit_name.to_string(),
            time: meta.time.to_vec(),
            columns: meta.columns.to_vec(),
            stats: meta.summaries.to_vec(),
            keep_traces: meta.keep_traces,
            block_size: meta.block_size,
        }
    }
}

/// The datasets written point by point.
struct PointSets {
    traces: Option<Dataset>,
    summaries: Vec<Dataset>,
    code: Dataset,
    t: Dataset,
}

/// Creates the layout for `n` points (grid, labels and status datasets empty) in `file`.
fn create_layout(
    file: &File,
    shape: &Shape,
    grid_keys: &[String],
    n: usize,
    compression: bool,
    path: &Path,
) -> Result<(Group, PointSets), IoError> {
    let e = h5(path);
    write_f64s(file, "time", &shape.time, path)?;
    let grid = file.create_group("grid").map_err(&e)?;
    write_str_attr(&grid, "keys", &serde_json::json!(grid_keys).to_string(), path)?;
    let cols = file.create_group("columns").map_err(&e)?;
    let nodes: Vec<String> = shape.columns.iter().map(|(n, _)| n.clone()).collect();
    let keys: Vec<String> = shape.columns.iter().map(|(_, k)| k.clone()).collect();
    write_strings(&cols, "node", &nodes, path)?;
    write_strings(&cols, "key", &keys, path)?;
    let status = file.create_group("status").map_err(&e)?;
    let code = status.new_dataset::<u8>().shape(n).create("code").map_err(&e)?;
    let t = status.new_dataset::<f64>().shape(n).create("t").map_err(&e)?;
    let nc = shape.columns.len();
    let mut summaries = Vec::new();
    if !shape.stats.is_empty() {
        let g = file.create_group("summaries").map_err(&e)?;
        let names: Vec<&str> = shape.stats.iter().map(|s| s.name()).collect();
        write_str_attr(&g, "stats", &serde_json::json!(names).to_string(), path)?;
        for s in &shape.stats {
            summaries.push(g.new_dataset::<f64>().shape((n, nc)).create(s.name()).map_err(&e)?);
        }
    }
    let nt = shape.time.len();
    let traces = if shape.keep_traces {
        let dims = (n, nt, nc);
        let chunk = (shape.block_size.min(n), nt.min(1024), nc);
        // NaN where nothing is written: the points of failed chunks.
        let mut b = file.new_dataset::<f64>().fill_value(f64::NAN);
        if chunk.0 > 0 && chunk.1 > 0 && chunk.2 > 0 {
            b = b.chunk(chunk);
            if deflate_traces(compression, n * nt * nc * size_of::<f64>()) {
                b = b.shuffle().deflate(DEFLATE_LEVEL);
            }
        }
        Some(b.shape(dims).create("traces").map_err(&e)?)
    } else {
        None
    };
    Ok((
        grid,
        PointSets {
            traces,
            summaries,
            code,
            t,
        },
    ))
}

/// Time-series inputs of a sweep directory, written once so the merged file can carry them.
use super::guard::INPUTS_FILE;

fn has_series(inputs: &[(String, crate::solve::Signal)]) -> bool {
    inputs
        .iter()
        .any(|(_, s)| !matches!(s, crate::solve::Signal::Constant(_)))
}

/// One dataset per time-series input in `g`: `[steps]` shared, `[steps, points]` per point.
fn write_input_sets(g: &Group, inputs: &[(String, crate::solve::Signal)], path: &Path) -> Result<(), IoError> {
    use crate::solve::Signal;
    for (name, signal) in inputs {
        match signal {
            Signal::Constant(_) => {}
            Signal::Shared(data) => write_f64s(g, &key_name(name), data, path)?,
            Signal::PerPoint { points, data } => {
                let view =
                    ndarray::ArrayView2::from_shape((data.len() / (*points).max(1), *points), data).map_err(|_| {
                        IoError::InputShape {
                            name: name.clone(),
                            len: data.len(),
                            points: *points,
                        }
                    })?;
                g.new_dataset_builder()
                    .with_data(view)
                    .create(key_name(name).as_str())
                    .map_err(h5(path))?;
            }
        }
    }
    Ok(())
}

fn write_inputs(dir: &Path, inputs: &[(String, crate::solve::Signal)]) -> Result<(), IoError> {
    let path = dir.join(INPUTS_FILE);
    if path.is_file() || !has_series(inputs) {
        return Ok(());
    }
    let tmp = tmp_path(&path);
    let file = create_file(&tmp).map_err(h5(&tmp))?;
    write_input_sets(&file, inputs, &tmp)?;
    file.close().map_err(h5(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(IoError::fs(&path))
}

fn copy_inputs(src: &Path, out: &File, out_path: &Path) -> Result<(), IoError> {
    let e = h5(src);
    let input = open_file(src).map_err(&e)?;
    let group = out.create_group("inputs").map_err(h5(out_path))?;
    for name in input.member_names().map_err(&e)? {
        let ds = input.dataset(&name).map_err(&e)?;
        let data: ndarray::ArrayD<f64> = ds.read_dyn().map_err(&e)?;
        group
            .new_dataset_builder()
            .with_data(&data)
            .create(name.as_str())
            .map_err(h5(out_path))?;
    }
    Ok(())
}

/// A results file (a part file or a final file) being written under its temporary name,
/// holding the points `range`: layout, grid values and labels at creation, traces block by
/// block, status and summaries at [`OpenFile::finish`].
struct OpenFile {
    range: Range<usize>,
    file: File,
    tmp: PathBuf,
    sets: PointSets,
    codes: Vec<u8>,
    times: Vec<f64>,
    /// Per statistic, `[point][column]` within the range.
    summaries: Vec<Vec<f64>>,
}

impl OpenFile {
    fn create(
        tmp: PathBuf,
        shape: &Shape,
        grid: &Grid,
        range: Range<usize>,
        compression: bool,
    ) -> Result<OpenFile, IoError> {
        let file = create_file(&tmp).map_err(h5(&tmp))?;
        let n = range.len();
        let (g, sets) = create_layout(&file, shape, grid.keys(), n, compression, &tmp)?;
        for (key, col) in grid.keys().iter().zip(grid.columns()) {
            write_f64s(&g, &key_name(key), &col[range.clone()], &tmp)?;
        }
        let labels: Vec<String> = range.clone().map(|i| format!("{}_{i}", shape.circuit_name)).collect();
        write_strings(&g, "labels", &labels, &tmp)?;
        let nc = shape.columns.len();
        Ok(OpenFile {
            range,
            file,
            tmp,
            sets,
            codes: vec![0; n],
            times: vec![f64::NAN; n],
            summaries: vec![vec![f64::NAN; n * nc]; shape.stats.len()],
        })
    }

    fn block(&mut self, shape: &Shape, out: &BlockOutput<'_>) -> Result<(), IoError> {
        let (nt, nc) = (shape.time.len(), shape.columns.len());
        let p0 = out.first_point - self.range.start;
        for (i, s) in out.status.iter().enumerate() {
            (self.codes[p0 + i], self.times[p0 + i]) = status_code(s);
        }
        let block = out.lanes * nc;
        for (si, vals) in self.summaries.iter_mut().enumerate() {
            vals[p0 * nc..(p0 + out.lanes) * nc].copy_from_slice(&out.summaries[si * block..(si + 1) * block]);
        }
        if let (Some(ds), Some(tr)) = (&self.sets.traces, out.traces) {
            let view =
                ArrayView3::from_shape((out.lanes, nt, nc), tr).expect("block traces are lanes × time × columns");
            ds.write_slice(view, (p0..p0 + out.lanes, .., ..))
                .map_err(h5(&self.tmp))?;
        }
        Ok(())
    }

    /// Writes status and summaries, closes the file, fsyncs it (when `durable`) and renames
    /// it to `path`.
    fn finish(self, n_columns: usize, path: &Path, durable: bool) -> Result<(), IoError> {
        let e = h5(&self.tmp);
        self.sets.code.write_raw(&self.codes[..]).map_err(&e)?;
        self.sets.t.write_raw(&self.times[..]).map_err(&e)?;
        for (ds, vals) in self.sets.summaries.iter().zip(&self.summaries) {
            let view = ndarray::ArrayView2::from_shape((self.range.len(), n_columns), vals).expect("points × columns");
            ds.write(view).map_err(&e)?;
        }
        self.file.flush().map_err(&e)?;
        drop(self.sets);
        self.file.close().map_err(&e)?;
        if durable {
            std::fs::File::open(&self.tmp)
                .and_then(|f| f.sync_all())
                .map_err(IoError::fs(&self.tmp))?;
        }
        std::fs::rename(&self.tmp, path).map_err(IoError::fs(path))
    }
}

/// Removes the temporary file of a file left unfinished (cancel, error): an interrupted sweep
/// leaves nothing behind that a later run or a reader could take for finished.
fn abandon(open: Option<OpenFile>) {
    if let Some(open) = open {
        let tmp = open.tmp.clone();
        drop(open);
        let _ = std::fs::remove_file(tmp);
    }
}

/// What `sweep.json` records, and what the root attributes of a final file hold.
fn sweep_record(meta: &SweepMeta<'_>, opts: &FileOptions) -> SweepRecord {
    let settings = meta.spec.settings_json();
    SweepRecord {
        fingerprint: fingerprint(&opts.template_source, meta.grid, &settings),
        circuit_name: meta.circuit_name.to_string(),
        n_points: meta.grid.len(),
        chunks: meta.chunks.iter().map(|r| (r.start, r.end)).collect(),
        template_source: opts.template_source.clone(),
        template_path: opts.template_path.clone(),
        settings,
        rustrates_version: env!("CARGO_PKG_VERSION").to_string(),
        compression: opts.compression,
    }
}

/// The root attributes of a final file (all but `complete`).
fn write_sweep_attrs(file: &File, record: &SweepRecord, path: &Path) -> Result<(), IoError> {
    for (name, value) in [
        ("template_source", record.template_source.as_str()),
        ("template_path", record.template_path.as_str()),
        ("circuit_name", record.circuit_name.as_str()),
        ("fingerprint", record.fingerprint.as_str()),
        ("rustrates_version", record.rustrates_version.as_str()),
    ] {
        write_str_attr(file, name, value, path)?;
    }
    write_str_attr(file, "settings", &record.settings.to_string(), path)
}

/// Marks a final file finished: readers refuse files without it. `failed_points`: the points
/// of chunks that failed for good (merged as such), 0 for a file of a whole sweep.
fn write_complete(file: &File, failed_points: usize, path: &Path) -> Result<(), IoError> {
    write_u64_attr(file, "failed_points", failed_points as u64, path)?;
    file.new_attr::<u8>()
        .create("complete")
        .and_then(|a| a.write_scalar(&1u8))
        .map_err(h5(path))
}

/// Writes each chunk of a sweep into `DIR/parts/` and records it in the manifest.
pub struct PartSink {
    dir: PathBuf,
    opts: FileOptions,
    manifest: Manifest,
    shape: Option<Shape>,
    grid: Option<Grid>,
    current: Option<(usize, OpenFile)>,
    /// Chunks written by this sink (the rest were skipped as already done).
    pub chunks_written: usize,
    /// Part files that failed their checksum, set aside and computed again.
    pub set_aside: Vec<PathBuf>,
}

impl PartSink {
    pub fn new(dir: &Path, opts: FileOptions) -> PartSink {
        PartSink {
            dir: dir.to_path_buf(),
            opts,
            manifest: Manifest::default(),
            shape: None,
            grid: None,
            current: None,
            chunks_written: 0,
            set_aside: Vec::new(),
        }
    }

    fn begin_io(&mut self, meta: &SweepMeta<'_>) -> Result<(), IoError> {
        sweep_record(meta, &self.opts).create_or_check_with(&self.dir, self.opts.durable)?;
        (self.manifest, self.set_aside) = Manifest::load_verified(&self.dir)?;
        self.shape = Some(Shape::of(meta));
        self.grid = Some(meta.grid.clone());
        write_inputs(&self.dir, &meta.spec.inputs)?;
        Ok(())
    }

    fn begin_chunk_io(&mut self, index: usize, range: Range<usize>) -> Result<bool, IoError> {
        if self.manifest.contains(index) {
            return Ok(false);
        }
        let shape = self.shape.as_ref().expect("begin runs before chunks");
        let grid = self.grid.as_ref().expect("begin runs before chunks");
        let tmp = tmp_path(&self.dir.join(part_file(range.start, range.end)));
        // Parts are temporary and read back once by the merge, which compresses the final
        // file: compressing them too would deflate every trace twice.
        let part = OpenFile::create(tmp, shape, grid, range.clone(), false)?;
        write_u64_attr(&part.file, "chunk_index", index as u64, &part.tmp)?;
        write_u64_attr(&part.file, "chunk_start", range.start as u64, &part.tmp)?;
        write_u64_attr(&part.file, "chunk_end", range.end as u64, &part.tmp)?;
        self.current = Some((index, part));
        Ok(true)
    }

    fn block_io(&mut self, out: &BlockOutput<'_>) -> Result<(), IoError> {
        let shape = self.shape.as_ref().expect("begin runs before blocks");
        let (_, part) = self.current.as_mut().expect("blocks arrive inside a chunk");
        part.block(shape, out)
    }

    fn end_chunk_io(&mut self) -> Result<(), IoError> {
        let shape = self.shape.as_ref().expect("begin runs before chunks");
        let (index, part) = self.current.take().expect("end_chunk follows begin_chunk");
        let rel = part_file(part.range.start, part.range.end);
        let (start, end) = (part.range.start, part.range.end);
        let path = self.dir.join(&rel);
        part.finish(shape.columns.len(), &path, self.opts.durable)?;
        let entry = ManifestEntry {
            chunk: index,
            start,
            end,
            file: rel,
            sha256: parts::sha256_file(&path)?,
        };
        Manifest::append_with(&self.dir, &entry, self.opts.durable)?;
        self.manifest.entries.push(entry);
        self.chunks_written += 1;
        Ok(())
    }
}

/// Writes a sweep of one chunk straight into its results file, as `out.tmp` renamed when
/// complete: the same content a merge of its one part file gives, without writing, hashing,
/// reading back and deleting that part (which is most of the time of a small sweep).
struct FileSink {
    out: PathBuf,
    opts: FileOptions,
    shape: Option<Shape>,
    current: Option<OpenFile>,
}

impl FileSink {
    fn begin_io(&mut self, meta: &SweepMeta<'_>) -> Result<(), IoError> {
        let shape = Shape::of(meta);
        let tmp = tmp_path(&self.out);
        let open = OpenFile::create(tmp, &shape, meta.grid, 0..meta.grid.len(), self.opts.compression)?;
        write_sweep_attrs(&open.file, &sweep_record(meta, &self.opts), &open.tmp)?;
        if has_series(&meta.spec.inputs) {
            let g = open.file.create_group("inputs").map_err(h5(&open.tmp))?;
            write_input_sets(&g, &meta.spec.inputs, &open.tmp)?;
        }
        self.shape = Some(shape);
        self.current = Some(open);
        Ok(())
    }

    fn end_io(&mut self) -> Result<(), IoError> {
        let shape = self.shape.as_ref().expect("begin runs before chunks");
        let open = self.current.take().expect("one chunk, opened by begin");
        write_complete(&open.file, 0, &open.tmp)?;
        open.finish(shape.columns.len(), &self.out, self.opts.durable)
    }
}

impl SweepSink for FileSink {
    fn begin(&mut self, meta: &SweepMeta<'_>) -> Result<(), SweepError> {
        debug_assert!(
            meta.chunks.len() == 1 && meta.chunks[0] == (0..meta.grid.len()),
            "the direct route takes one chunk"
        );
        self.begin_io(meta).map_err(out_err)
    }
    fn block(&mut self, out: BlockOutput<'_>) -> Result<(), SweepError> {
        let shape = self.shape.as_ref().expect("begin runs before blocks");
        let open = self.current.as_mut().expect("blocks follow begin");
        open.block(shape, &out).map_err(out_err)
    }
    fn end_chunk(&mut self, _index: usize, _range: Range<usize>) -> Result<(), SweepError> {
        self.end_io().map_err(out_err)
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        abandon(self.current.take());
    }
}

fn out_err(e: IoError) -> SweepError {
    SweepError::Output { source: Box::new(e) }
}

/// Undoes [`out_err`], so callers see the typed I/O error.
fn unwrap_out(e: SweepError) -> IoError {
    match e {
        SweepError::Output { source } => match source.downcast::<IoError>() {
            Ok(io) => *io,
            Err(source) => IoError::Sweep(SweepError::Output { source }),
        },
        other => IoError::Sweep(other),
    }
}

impl SweepSink for PartSink {
    fn begin(&mut self, meta: &SweepMeta<'_>) -> Result<(), SweepError> {
        self.begin_io(meta).map_err(out_err)
    }
    fn begin_chunk(&mut self, index: usize, range: Range<usize>) -> Result<bool, SweepError> {
        self.begin_chunk_io(index, range).map_err(out_err)
    }
    fn block(&mut self, out: BlockOutput<'_>) -> Result<(), SweepError> {
        self.block_io(&out).map_err(out_err)
    }
    fn end_chunk(&mut self, _index: usize, _range: Range<usize>) -> Result<(), SweepError> {
        self.end_chunk_io().map_err(out_err)
    }
}

impl Drop for PartSink {
    fn drop(&mut self) {
        abandon(self.current.take().map(|(_, part)| part));
    }
}

/// Runs the sweep (or the shard `ctrl.shard` of it) into part files under `dir`; chunks the
/// manifest already lists are skipped. Returns the run summary and the chunks written.
pub fn run_parts(
    spec: &SweepSpec,
    circuit: &Circuit,
    dir: &Path,
    opts: &FileOptions,
    ctrl: RunControl<'_>,
) -> Result<(SweepSummary, usize), IoError> {
    let mut sink = PartSink::new(dir, opts.clone());
    let mut summary = run_with(spec, circuit, &mut sink, ctrl).map_err(unwrap_out)?;
    summary.notes.extend(guard::set_aside_notes(&sink.set_aside));
    Ok((summary, sink.chunks_written))
}

/// Runs a whole sweep into the results file `out`, written under a temporary name and
/// renamed when complete.
///
/// A sweep of one chunk writes the file directly, unless its part directory already holds
/// this sweep's parts (they are reused) or the parts are to be kept. Larger sweeps go through
/// part files, so that an interrupted run resumes when called again; the parts are merged and
/// removed. Both routes give the same file content.
pub fn sweep_to_file(
    spec: &SweepSpec,
    circuit: &Circuit,
    out: &Path,
    opts: &FileOptions,
    ctrl: RunControl<'_>,
) -> Result<SweepSummary, IoError> {
    let dir = opts.parts_dir.clone().unwrap_or_else(|| guard::default_parts_dir(out));
    let ctrl = RunControl { shard: None, ..ctrl };
    let direct = spec.chunks().len() == 1 && !opts.keep_parts && !SweepRecord::path(&dir).exists();
    // Every output is checked, and the output locked, before anything is computed.
    let lock = guard::prepare_sweep(out, (!direct).then_some(dir.as_path()), opts)?;
    let result = if direct {
        let mut sink = FileSink {
            out: out.to_path_buf(),
            opts: opts.clone(),
            shape: None,
            current: None,
        };
        run_with(spec, circuit, &mut sink, ctrl).map_err(unwrap_out)
    } else {
        run_parts(spec, circuit, &dir, opts, ctrl).and_then(|(summary, _)| {
            merge(&[dir.as_path()], out)?;
            Ok(summary)
        })
    };
    guard::finish_sweep(result, out, (!direct).then_some(dir.as_path()), opts.keep_parts, lock)
}

/// Joins the parts found in `dirs` (one sweep, possibly run as shards in several
/// directories) into `out`, written as `out.tmp` and renamed into place. Every chunk must
/// have its part.
pub fn merge(dirs: &[&Path], out: &Path) -> Result<(), IoError> {
    parts::check_merge_dirs(dirs)?;
    parts::after_merge(merge_sources(dirs, MergeTarget::New(out), None).map(|_| ()), dirs, out)
}

/// A chunk that could not be computed (a cluster task that raised on every try).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedChunk {
    pub chunk: usize,
    /// Why, as the user should read it (stored per point in `/status/error`).
    pub error: String,
}

/// [`merge`] for a sweep some chunks of which failed for good: the chunks in `failed` that no
/// directory holds a part for are written as failed points (status code 3, NaN summaries and
/// traces, their error in `/status/error`), so the file still has every point. `grid` is the
/// sweep's grid: it gives those points' grid values and must match the fingerprint. A chunk
/// with a part is taken from its part even when listed as failed. Returns the number of
/// failed points written. The file's shape (time, columns) comes from a part, so at least one
/// chunk must have been computed.
pub fn merge_marking_failed(dirs: &[&Path], out: &Path, grid: &Grid, failed: &[FailedChunk]) -> Result<usize, IoError> {
    merge_sources(dirs, MergeTarget::New(out), Some((grid, failed)))
}

/// [`merge_marking_failed`] into the existing HDF5 file `file`, whose own contents stay
/// (e.g. pandas keys written while the chunks ran; none may have the engine's names). The
/// file is written in place, neither synced nor renamed: it must be a staging file the
/// caller completes, syncs and renames.
pub fn merge_marking_failed_into(
    dirs: &[&Path],
    file: &Path,
    grid: &Grid,
    failed: &[FailedChunk],
) -> Result<usize, IoError> {
    merge_sources(dirs, MergeTarget::Existing(file), Some((grid, failed)))
}

/// Where a merge writes.
#[derive(Clone, Copy)]
enum MergeTarget<'a> {
    /// A new file, written as `out.tmp` and renamed.
    New(&'a Path),
    /// An existing file, added to in place.
    Existing(&'a Path),
}

/// Where the points of one chunk come from when merging.
#[derive(Clone)]
enum ChunkSource {
    Part(PathBuf, ManifestEntry),
    Failed(Range<usize>, String),
}

fn merge_sources(
    dirs: &[&Path],
    target: MergeTarget<'_>,
    fill: Option<(&Grid, &[FailedChunk])>,
) -> Result<usize, IoError> {
    let mut record: Option<(SweepRecord, PathBuf)> = None;
    let mut entries: Vec<(PathBuf, ManifestEntry)> = Vec::new();
    for dir in dirs {
        let Some(r) = SweepRecord::load(dir)? else {
            continue;
        };
        if let Some((first, _)) = &record {
            if first.fingerprint != r.fingerprint {
                return Err(IoError::FingerprintMismatch {
                    dir: dir.to_path_buf(),
                    expected: first.fingerprint.clone(),
                    found: r.fingerprint,
                });
            }
        } else {
            record = Some((r, dir.to_path_buf()));
        }
        for e in Manifest::load(dir)?.entries {
            if !entries.iter().any(|(_, x)| x.chunk == e.chunk) {
                entries.push((dir.join(&e.file), e));
            }
        }
    }
    let (record, record_dir) = record.ok_or(IoError::NothingToMerge)?;
    if let Some((grid, _)) = fill {
        let found = fingerprint(&record.template_source, grid, &record.settings);
        if found != record.fingerprint {
            return Err(IoError::FingerprintMismatch {
                dir: record_dir,
                expected: found,
                found: record.fingerprint,
            });
        }
    }
    let mut ordered = Vec::with_capacity(record.chunks.len());
    let mut missing = Vec::new();
    for (ci, &(s, e)) in record.chunks.iter().enumerate() {
        let part = entries
            .iter()
            .find(|(_, x)| x.chunk == ci && x.start == s && x.end == e);
        let failure = fill.and_then(|(_, failed)| failed.iter().find(|f| f.chunk == ci));
        match (part, failure) {
            (Some((path, entry)), _) => ordered.push(ChunkSource::Part(path.clone(), entry.clone())),
            // HDF5 strings cannot hold NUL.
            (None, Some(f)) => ordered.push(ChunkSource::Failed(s..e, f.error.replace('\0', "\\0"))),
            (None, None) => missing.push((s, e)),
        }
    }
    if !missing.is_empty() {
        return Err(IoError::MissingChunks { missing });
    }
    let first_part = ordered.iter().find_map(|c| match c {
        ChunkSource::Part(p, _) => Some(p.clone()),
        ChunkSource::Failed(..) => None,
    });
    if first_part.is_none() && record.n_points > 0 {
        return Err(IoError::NoChunkComputed {
            chunks: record.chunks.len(),
        });
    }
    for c in &ordered {
        if let ChunkSource::Part(path, e) = c {
            let found = parts::sha256_file(path)?;
            if found != e.sha256 {
                return Err(IoError::CorruptPart {
                    path: path.clone(),
                    expected: e.sha256.clone(),
                    found,
                });
            }
        }
    }

    let mut writer = MergeWriter::open(target, &record, dirs, first_part.as_deref(), false)?;
    for source in &ordered {
        match source {
            ChunkSource::Part(path, e) => writer.add_part(path, e)?,
            ChunkSource::Failed(r, error) => {
                let grid = fill.expect("failed chunks come with the grid").0;
                writer.add_failed(r.clone(), error, grid)?;
            }
        }
    }
    writer.finish(target).map(|m| m.failed_points)
}

/// The merged file while chunks are copied into it: its layout for all points is created
/// from the first part, then each chunk's points are written where they belong.
struct MergeWriter {
    file: File,
    tmp: PathBuf,
    grid: Group,
    sets: PointSets,
    grid_sets: Vec<Dataset>,
    grid_keys: Vec<String>,
    stat_names: Vec<&'static str>,
    columns: Vec<(String, String)>,
    n_columns: usize,
    n_points: usize,
    errors: Vec<String>,
    failed_points: usize,
    /// Kept for [`MergedPoints`] when asked for: every point's status code and, for a
    /// sweep without traces, its summaries.
    kept: Option<(Vec<u8>, Option<Vec<f64>>)>,
}

/// What an [`IncrementalMerge`] wrote, for callers that present it without reading the file
/// back (the Python package's pandas keys).
#[derive(Debug, Clone, PartialEq)]
pub struct MergedPoints {
    pub failed_points: usize,
    /// Per point: 0 ok, 1 non-finite, 2 step too small, 3 failed.
    pub status_codes: Vec<u8>,
    /// The output columns, (node, key).
    pub columns: Vec<(String, String)>,
    pub statistics: Vec<&'static str>,
    /// `[point][column][statistic]`, for sweeps with summaries and without traces.
    pub summaries: Option<Vec<f64>>,
}

impl MergeWriter {
    /// Opens the target (a new `out.tmp`, or the existing staging file) and creates the
    /// layout; `first_part` gives its shape (None: a sweep of no points, or no part).
    fn open(
        target: MergeTarget<'_>,
        record: &SweepRecord,
        dirs: &[&Path],
        first_part: Option<&Path>,
        keep_points: bool,
    ) -> Result<MergeWriter, IoError> {
        let (tmp, file) = match target {
            MergeTarget::New(out) => {
                let tmp = tmp_path(out);
                let file = create_file(&tmp).map_err(h5(&tmp))?;
                (tmp, file)
            }
            MergeTarget::Existing(path) => {
                let file = File::with_options()
                    .with_fapl(|p| p.file_locking(false))
                    .open_rw(path)
                    .map_err(h5(path))?;
                (path.to_path_buf(), file)
            }
        };
        write_sweep_attrs(&file, record, &tmp)?;
        if let Some(src) = dirs.iter().map(|d| d.join(INPUTS_FILE)).find(|p| p.is_file()) {
            copy_inputs(&src, &file, &tmp)?;
        }
        let n = record.n_points;
        let block_size = record
            .settings
            .get("block_size")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(64) as usize;
        let grid_keys: Vec<String> = match record.settings.get("grid_keys") {
            Some(v) => serde_json::from_value(v.clone()).map_err(|source| IoError::Json {
                path: tmp.clone(),
                source,
            })?,
            None => Vec::new(),
        };
        // Shape from a part (every part shares it); a sweep of 0 points has no parts.
        let shape = match first_part {
            Some(p) => read_shape(&open_file(p).map_err(h5(p))?, p, &record.circuit_name, block_size)?,
            None => Shape {
                circuit_name: record.circuit_name.clone(),
                time: Vec::new(),
                columns: Vec::new(),
                stats: Vec::new(),
                keep_traces: false,
                block_size,
            },
        };
        let (grid, sets) = create_layout(&file, &shape, &grid_keys, n, record.compression, &tmp)?;
        let grid_sets: Vec<Dataset> = grid_keys
            .iter()
            .map(|k| grid.new_dataset::<f64>().shape(n).create(key_name(k).as_str()))
            .collect::<Result<_, _>>()
            .map_err(h5(&tmp))?;
        let labels: Vec<String> = (0..n).map(|i| format!("{}_{i}", record.circuit_name)).collect();
        write_strings(&grid, "labels", &labels, &tmp)?;
        Ok(MergeWriter {
            file,
            tmp,
            grid,
            sets,
            grid_sets,
            grid_keys,
            stat_names: shape.stats.iter().map(|s| s.name()).collect(),
            n_columns: shape.columns.len(),
            n_points: n,
            errors: Vec::new(),
            failed_points: 0,
            kept: keep_points.then(|| {
                let summaries = (!shape.keep_traces && !shape.stats.is_empty())
                    .then(|| vec![f64::NAN; n * shape.columns.len() * shape.stats.len()]);
                (vec![0; n], summaries)
            }),
            columns: shape.columns,
        })
    }

    /// Copies the points of one part (already checked against its manifest entry).
    fn add_part(&mut self, path: &Path, e: &ManifestEntry) -> Result<(), IoError> {
        let (eo, ep) = (h5(&self.tmp), h5(path));
        let part = open_file(path).map_err(&ep)?;
        let r = e.start..e.end;
        let pg = part.group("grid").map_err(&ep)?;
        for (k, ds) in self.grid_keys.iter().zip(&self.grid_sets) {
            let v: Vec<f64> = pg.dataset(&key_name(k)).and_then(|d| d.read_raw()).map_err(&ep)?;
            ds.write_slice(&v[..], r.clone()).map_err(&eo)?;
        }
        let ps = part.group("status").map_err(&ep)?;
        let codes: Vec<u8> = ps.dataset("code").and_then(|d| d.read_raw()).map_err(&ep)?;
        let times: Vec<f64> = ps.dataset("t").and_then(|d| d.read_raw()).map_err(&ep)?;
        self.sets.code.write_slice(&codes[..], r.clone()).map_err(&eo)?;
        self.sets.t.write_slice(&times[..], r.clone()).map_err(&eo)?;
        let (nc, ns) = (self.n_columns, self.stat_names.len());
        if let Some((kept_codes, _)) = &mut self.kept {
            kept_codes[r.clone()].copy_from_slice(&codes);
        }
        for (si, (name, ds)) in self.stat_names.iter().zip(&self.sets.summaries).enumerate() {
            let v: ndarray::Array2<f64> = part
                .dataset(&format!("summaries/{name}"))
                .and_then(|d| d.read_2d())
                .map_err(&ep)?;
            ds.write_slice(&v, (r.clone(), 0..nc)).map_err(&eo)?;
            if let Some((_, Some(kept))) = &mut self.kept {
                for ((p, c), x) in v.indexed_iter() {
                    kept[((r.start + p) * nc + c) * ns + si] = *x;
                }
            }
        }
        if let Some(ds) = &self.sets.traces {
            let src = part.dataset("traces").map_err(&ep)?;
            let mut p = 0;
            while p < r.len() {
                let q = (p + MERGE_POINTS).min(r.len());
                let v: ndarray::Array3<f64> = src.read_slice((p..q, .., ..)).map_err(&ep)?;
                ds.write_slice(&v, (r.start + p..r.start + q, .., ..)).map_err(&eo)?;
                p = q;
            }
        }
        Ok(())
    }

    /// Marks the points `r` of a chunk that failed: grid values, status "failed" with the
    /// error, NaN summaries (traces stay at their fill value, NaN).
    fn add_failed(&mut self, r: Range<usize>, error: &str, grid: &Grid) -> Result<(), IoError> {
        let eo = h5(&self.tmp);
        for (col, ds) in grid.columns().iter().zip(&self.grid_sets) {
            ds.write_slice(&col[r.clone()], r.clone()).map_err(&eo)?;
        }
        self.sets
            .code
            .write_slice(&vec![FAILED_CODE; r.len()][..], r.clone())
            .map_err(&eo)?;
        self.sets
            .t
            .write_slice(&vec![f64::NAN; r.len()][..], r.clone())
            .map_err(&eo)?;
        let nan = ndarray::Array2::from_elem((r.len(), self.n_columns), f64::NAN);
        for ds in &self.sets.summaries {
            ds.write_slice(&nan, (r.clone(), 0..self.n_columns)).map_err(&eo)?;
        }
        if let Some((kept_codes, _)) = &mut self.kept {
            kept_codes[r.clone()].fill(FAILED_CODE);
        }
        self.errors.resize(self.n_points, String::new());
        self.errors[r.clone()].fill(error.to_string());
        self.failed_points += r.len();
        Ok(())
    }

    /// Writes the error texts and the completion mark, closes the file and, for a new
    /// file, syncs and renames it into place.
    fn finish(self, target: MergeTarget<'_>) -> Result<MergedPoints, IoError> {
        let eo = h5(&self.tmp);
        if self.failed_points > 0 {
            let status = self.file.group("status").map_err(&eo)?;
            write_strings(&status, "error", &self.errors, &self.tmp)?;
        }
        write_complete(&self.file, self.failed_points, &self.tmp)?;
        self.file.flush().map_err(&eo)?;
        drop((self.grid, self.sets, self.grid_sets));
        self.file.close().map_err(&eo)?;
        // An existing file is the caller's staging file: it syncs it before its rename.
        if let MergeTarget::New(out) = target {
            std::fs::File::open(&self.tmp)
                .and_then(|f| f.sync_all())
                .map_err(IoError::fs(&self.tmp))?;
            std::fs::rename(&self.tmp, out).map_err(IoError::fs(out))?;
        }
        let (status_codes, summaries) = self.kept.unwrap_or_default();
        Ok(MergedPoints {
            failed_points: self.failed_points,
            status_codes,
            columns: self.columns,
            statistics: self.stat_names,
            summaries,
        })
    }
}

/// A merge into an existing staging file done chunk by chunk, as a cluster client receives
/// them: each recorded part is copied in when it arrives, while other chunks still run, so
/// only the last one is left to copy at the end. The same file as
/// [`merge_marking_failed_into`] gives.
pub struct IncrementalMerge {
    dir: PathBuf,
    file: PathBuf,
    record: SweepRecord,
    writer: Option<MergeWriter>,
    merged: Vec<bool>,
}

impl IncrementalMerge {
    /// Checks `dir`'s sweep against `grid`; nothing is written before the first chunk.
    pub fn new(dir: &Path, file: &Path, grid: &Grid) -> Result<IncrementalMerge, IoError> {
        let record = SweepRecord::load(dir)?.ok_or(IoError::NothingToMerge)?;
        let found = fingerprint(&record.template_source, grid, &record.settings);
        if found != record.fingerprint {
            return Err(IoError::FingerprintMismatch {
                dir: dir.to_path_buf(),
                expected: found,
                found: record.fingerprint,
            });
        }
        let merged = vec![false; record.chunks.len()];
        Ok(IncrementalMerge {
            dir: dir.to_path_buf(),
            file: file.to_path_buf(),
            record,
            writer: None,
            merged,
        })
    }

    /// Copies chunk `chunk`, which the manifest must list, after checking its part's SHA-256.
    pub fn add(&mut self, chunk: usize) -> Result<(), IoError> {
        let Some(&(s, e)) = self.record.chunks.get(chunk) else {
            return Err(IoError::MissingChunks { missing: vec![] });
        };
        let entry = Manifest::load(&self.dir)?
            .entries
            .into_iter()
            .find(|x| x.chunk == chunk && x.start == s && x.end == e)
            .ok_or(IoError::MissingChunks { missing: vec![(s, e)] })?;
        let path = self.dir.join(&entry.file);
        let found = parts::sha256_file(&path)?;
        if found != entry.sha256 {
            return Err(IoError::CorruptPart {
                path,
                expected: entry.sha256,
                found,
            });
        }
        if self.writer.is_none() {
            let dirs = [self.dir.as_path()];
            let target = MergeTarget::Existing(&self.file);
            self.writer = Some(MergeWriter::open(target, &self.record, &dirs, Some(&path), true)?);
        }
        self.writer.as_mut().expect("opened above").add_part(&path, &entry)?;
        self.merged[chunk] = true;
        Ok(())
    }

    /// Marks the chunks in `failed`, checks that every other chunk was added, and completes
    /// the file (not synced or renamed: the caller's staging file).
    pub fn finish(mut self, grid: &Grid, failed: &[FailedChunk]) -> Result<MergedPoints, IoError> {
        let mut missing = Vec::new();
        let mut marked = Vec::new();
        for (ci, &(s, e)) in self.record.chunks.iter().enumerate() {
            if self.merged[ci] {
                continue;
            }
            match failed.iter().find(|f| f.chunk == ci) {
                // HDF5 strings cannot hold NUL.
                Some(f) => marked.push((s..e, f.error.replace('\0', "\\0"))),
                None => missing.push((s, e)),
            }
        }
        if !missing.is_empty() {
            return Err(IoError::MissingChunks { missing });
        }
        let Some(mut writer) = self.writer.take() else {
            if self.record.n_points == 0 {
                let dirs = [self.dir.as_path()];
                let writer = MergeWriter::open(MergeTarget::Existing(&self.file), &self.record, &dirs, None, true)?;
                return writer.finish(MergeTarget::Existing(&self.file));
            }
            return Err(IoError::NoChunkComputed {
                chunks: self.record.chunks.len(),
            });
        };
        for (r, error) in marked {
            writer.add_failed(r, &error, grid)?;
        }
        writer.finish(MergeTarget::Existing(&self.file))
    }
}

fn read_shape(file: &File, path: &Path, circuit_name: &str, block_size: usize) -> Result<Shape, IoError> {
    let e = h5(path);
    let time: Vec<f64> = file.dataset("time").and_then(|d| d.read_raw()).map_err(&e)?;
    let cols = file.group("columns").map_err(&e)?;
    let nodes = read_strings(&cols, "node", path)?;
    let keys = read_strings(&cols, "key", path)?;
    let stats = match file.group("summaries") {
        Ok(g) => {
            let names: Vec<String> =
                serde_json::from_str(&read_str_attr(&g, "stats", path)?).map_err(|source| IoError::Json {
                    path: path.to_path_buf(),
                    source,
                })?;
            names.iter().filter_map(|n| Statistic::parse(n)).collect()
        }
        Err(_) => Vec::new(),
    };
    Ok(Shape {
        circuit_name: circuit_name.to_string(),
        time,
        columns: nodes.into_iter().zip(keys).collect(),
        stats,
        keep_traces: file.link_exists("traces"),
        block_size,
    })
}

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
    let shape = read_shape(&file, path, &circuit_name, 1)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::run::tests::{fake_circuit, fake_solver, fake_spec, same_result};
    use crate::sweep::MemorySink;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    fn spec() -> SweepSpec {
        // 4 × 5 = 20 points, one diverging row (eta = 500), chunks of 6: 4 chunks (last 2).
        let mut s = fake_spec(&[1.0, -2.0, 500.0, 3.0], &[0.0, 1.0, 2.0, 3.0, 4.0]);
        s.summaries = Statistic::ALL.to_vec();
        (s.chunk_size, s.block_size, s.threads) = (6, 2, Some(2));
        s
    }

    fn opts() -> FileOptions {
        FileOptions::new("toy: {base: CircuitTemplate}\n", "toy.yaml/Toy")
    }

    fn in_memory(spec: &SweepSpec) -> SweepResult {
        let c = fake_circuit();
        let solver = fake_solver(c.clone());
        let mut sink = MemorySink::new();
        run_with(
            spec,
            &c,
            &mut sink,
            RunControl {
                solver: Some(&solver),
                ..RunControl::default()
            },
        )
        .unwrap();
        sink.into_result().unwrap()
    }

    /// Runs the fake sweep into part files, counting the points the solver computes.
    fn parts(spec: &SweepSpec, dir: &Path, ctrl: RunControl<'_>, counter: &AtomicUsize) -> Result<usize, IoError> {
        let c = fake_circuit();
        let inner = fake_solver(c.clone());
        let counting = |k: &crate::kernel::Kernel,
                        cfg: &crate::solve::SimConfig,
                        i: &[crate::solve::InputBinding],
                        o: &[crate::solve::OutputBinding],
                        b: crate::solve::Block<'_>,
                        s: &mut dyn crate::solve::SampleSink| {
            counter.fetch_add(b.lanes, Ordering::Relaxed);
            inner(k, cfg, i, o, b, s)
        };
        let (_, written) = run_parts(
            spec,
            &c,
            dir,
            &opts(),
            RunControl {
                solver: Some(&counting),
                ..ctrl
            },
        )?;
        Ok(written)
    }

    #[test]
    fn h5_file_round_trips_to_the_in_memory_result() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("results.h5");
        let mut spec = spec();
        let drive: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.25).collect();
        spec.inputs = vec![("A/op/inp".into(), crate::solve::Signal::Shared(drive.clone().into()))];
        let c = fake_circuit();
        let solver = fake_solver(c.clone());
        let ctrl = RunControl {
            solver: Some(&solver),
            ..RunControl::default()
        };
        sweep_to_file(&spec, &c, &out, &opts(), ctrl).unwrap();
        let back = read_results(&out).unwrap();
        let mem = in_memory(&spec);
        assert!(same_result(&back, &mem), "file:\n{back:?}\nmemory:\n{mem:?}");
        assert_eq!(back.status.iter().filter(|s| **s != PointStatus::Ok).count(), 5);
        assert!(
            !dir.path().join("results.h5.parts").exists(),
            "parts are removed after the merge"
        );
        let f = File::open(&out).unwrap();
        assert_eq!(read_str_attr(&f, "template_path", &out).unwrap(), "toy.yaml/Toy");
        let settings: serde_json::Value = serde_json::from_str(&read_str_attr(&f, "settings", &out).unwrap()).unwrap();
        assert_eq!(settings["sampling_step_size"], 0.1);
        assert_eq!(f.dataset("traces").unwrap().shape(), vec![20, 15, 2]);
        let stored: Vec<f64> = f.dataset("inputs/A%2Fop%2Finp").unwrap().read_raw().unwrap();
        assert_eq!(stored, drive, "time-series inputs travel with the file");
    }

    /// Everything a reader of `path` can see, as text in name order: every attribute, and every
    /// dataset's type, shape, chunking, filters and values (floats by bit pattern, so NaN
    /// compares equal to itself).
    fn contents(path: &Path) -> Vec<String> {
        use hdf5::types::{IntSize, TypeDescriptor};
        use hdf5::LocationType;
        fn values(c: &hdf5::Container) -> String {
            match c.dtype().unwrap().to_descriptor().unwrap() {
                TypeDescriptor::Float(_) => {
                    let v: Vec<f64> = c.read_raw().unwrap();
                    format!("{:?}", v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                }
                TypeDescriptor::Unsigned(IntSize::U1) => format!("{:?}", c.read_raw::<u8>().unwrap()),
                TypeDescriptor::Unsigned(IntSize::U8) => format!("{:?}", c.read_raw::<u64>().unwrap()),
                TypeDescriptor::VarLenUnicode => format!("{:?}", c.read_raw::<VarLenUnicode>().unwrap()),
                other => panic!("no reader for {other:?} in this test"),
            }
        }
        fn attrs(loc: &hdf5::Location, at: &str, out: &mut Vec<String>) {
            let mut names = loc.attr_names().unwrap();
            names.sort();
            for n in names {
                let a = loc.attr(&n).unwrap();
                out.push(format!("{at}@{n} {:?} = {}", a.shape(), values(&a)));
            }
        }
        fn walk(g: &Group, at: &str, out: &mut Vec<String>) {
            attrs(g, at, out);
            let mut names = g.member_names().unwrap();
            names.sort();
            for n in names {
                let here = format!("{at}/{n}");
                match g.loc_type_by_name(&n).unwrap() {
                    LocationType::Group => walk(&g.group(&n).unwrap(), &here, out),
                    _ => {
                        let ds = g.dataset(&n).unwrap();
                        attrs(&ds, &here, out);
                        out.push(format!(
                            "{here} {:?} chunk {:?} filters {:?} = {}",
                            ds.shape(),
                            ds.chunk(),
                            ds.filters(),
                            values(&ds)
                        ));
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&open_file(path).unwrap(), "", &mut out);
        out
    }

    #[test]
    fn h5_one_chunk_direct_write_equals_parts_route() {
        // One chunk (chunk_size 0) with a time-series input, every summary, traces and a
        // diverging row. The direct route must give the very file the parts route gives
        // (`keep_parts` forces that route), compressed or not.
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec();
        spec.chunk_size = 0;
        let drive: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.5).collect();
        spec.inputs = vec![("A/op/inp".into(), crate::solve::Signal::Shared(drive.into()))];
        let c = fake_circuit();
        let solver = fake_solver(c.clone());
        // These traces (20 × 15 × 2 doubles) are far below the size that is deflated: lower
        // the threshold so that both routes really compress.
        MIN_COMPRESSED.with(|m| m.set(0));
        for compression in [true, false] {
            let ctrl = RunControl {
                solver: Some(&solver),
                ..RunControl::default()
            };
            let o = FileOptions { compression, ..opts() };
            let direct = dir.path().join(format!("direct_{compression}.h5"));
            sweep_to_file(&spec, &c, &direct, &o, ctrl).unwrap();
            assert!(
                !dir.path().join(format!("direct_{compression}.h5.parts")).exists(),
                "no part directory on the direct route"
            );
            let via_parts = dir.path().join(format!("parts_{compression}.h5"));
            let kept = FileOptions { keep_parts: true, ..o };
            sweep_to_file(&spec, &c, &via_parts, &kept, ctrl).unwrap();
            assert!(dir
                .path()
                .join(format!("parts_{compression}.h5.parts/manifest.jsonl"))
                .is_file());
            let (a, b) = (contents(&direct), contents(&via_parts));
            assert_eq!(a, b);
            // The walk saw what matters: traces with their filters, summaries, inputs, status.
            let traces = a.iter().find(|l| l.starts_with("/traces ")).unwrap();
            assert_eq!(traces.contains("Deflate"), compression, "{traces}");
            assert!(a.iter().any(|l| l.starts_with("/inputs/A%2Fop%2Finp ")));
            assert!(a.iter().any(|l| l.starts_with("/summaries/dom_power ")));
            assert!(a.iter().any(|l| l.starts_with("@complete ")));
            assert!(same_result(&read_results(&direct).unwrap(), &in_memory(&spec)));
        }
    }

    #[test]
    fn h5_small_traces_are_stored_uncompressed() {
        // 4,800 bytes of traces: compression on, yet no filter; the threshold itself is
        // inclusive.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("small.h5");
        let c = fake_circuit();
        let solver = fake_solver(c.clone());
        let ctrl = RunControl {
            solver: Some(&solver),
            ..RunControl::default()
        };
        sweep_to_file(&spec(), &c, &out, &opts(), ctrl).unwrap();
        let f = open_file(&out).unwrap();
        let traces = f.dataset("traces").unwrap();
        assert_eq!(traces.shape(), vec![20, 15, 2]);
        assert_eq!(traces.filters(), vec![]);
        assert!(traces.chunk().is_some(), "still chunked, so h5py reads points lazily");
        assert!(deflate_traces(true, MIN_COMPRESSED_TRACE_BYTES));
        assert!(!deflate_traces(true, MIN_COMPRESSED_TRACE_BYTES - 1));
        assert!(!deflate_traces(false, usize::MAX));
    }

    #[test]
    fn h5_interrupted_direct_write_leaves_no_file_and_rerun_completes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.h5");
        let mut spec = spec();
        (spec.chunk_size, spec.threads) = (0, Some(1));
        let c = fake_circuit();
        let solver = fake_solver(c.clone());
        let cancel = AtomicBool::new(false);
        let progress = |p: crate::sweep::Progress| {
            if p.points_done >= 6 {
                cancel.store(true, Ordering::Relaxed);
            }
        };
        let ctrl = RunControl {
            solver: Some(&solver),
            cancel: Some(&cancel),
            progress: Some(&progress),
            ..RunControl::default()
        };
        let err = sweep_to_file(&spec, &c, &out, &opts(), ctrl).unwrap_err();
        assert!(matches!(err, IoError::Sweep(SweepError::Cancelled { .. })), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "neither the file, its .tmp nor parts: {left:?}");
        // A killed run leaves its `.tmp` (no destructor runs): the next run overwrites it.
        std::fs::write(tmp_path(&out), b"torn").unwrap();
        let ctrl = RunControl {
            solver: Some(&solver),
            ..RunControl::default()
        };
        sweep_to_file(&spec, &c, &out, &opts(), ctrl).unwrap();
        assert!(!tmp_path(&out).exists());
        assert!(same_result(&read_results(&out).unwrap(), &in_memory(&spec)));
    }

    #[test]
    fn h5_one_chunk_sweep_reuses_parts_already_in_its_directory() {
        // A previous run finished the chunk but not the merge: the rerun takes the parts route
        // and computes nothing.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.h5");
        let mut spec = spec();
        spec.chunk_size = 0;
        let first = AtomicUsize::new(0);
        parts(&spec, &dir.path().join("r.h5.parts"), RunControl::default(), &first).unwrap();
        assert_eq!(first.load(Ordering::Relaxed), 20);
        let c = fake_circuit();
        let solver = fake_solver(c.clone());
        let counted = AtomicUsize::new(0);
        let counting = |k: &crate::kernel::Kernel,
                        cfg: &crate::solve::SimConfig,
                        i: &[crate::solve::InputBinding],
                        o: &[crate::solve::OutputBinding],
                        b: crate::solve::Block<'_>,
                        s: &mut dyn crate::solve::SampleSink| {
            counted.fetch_add(b.lanes, Ordering::Relaxed);
            solver(k, cfg, i, o, b, s)
        };
        let ctrl = RunControl {
            solver: Some(&counting),
            ..RunControl::default()
        };
        let summary = sweep_to_file(&spec, &c, &out, &opts(), ctrl).unwrap();
        assert_eq!((counted.load(Ordering::Relaxed), summary.points_skipped), (0, 20));
        assert!(!dir.path().join("r.h5.parts").exists());
        assert!(same_result(&read_results(&out).unwrap(), &in_memory(&spec)));
    }

    #[test]
    fn h5_shards_then_merge_equal_single_run() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = spec();
        let n = AtomicUsize::new(0);
        let (d0, d1) = (tmp.path().join("s0"), tmp.path().join("s1"));
        let shard = |i| RunControl {
            shard: Some(crate::sweep::Shard { index: i, count: 2 }),
            ..RunControl::default()
        };
        assert_eq!(parts(&spec, &d0, shard(0), &n).unwrap(), 2);
        // Merging one shard alone must refuse: half the chunks are missing.
        let err = merge(&[d0.as_path()], &tmp.path().join("half.h5")).unwrap_err();
        assert!(
            matches!(&err, IoError::MissingChunksIn { missing, total: 4, .. } if missing == &vec![(6, 12), (18, 20)]),
            "{err}"
        );
        assert!(!tmp.path().join("half.h5").exists());
        assert_eq!(parts(&spec, &d1, shard(1), &n).unwrap(), 2);
        assert_eq!(n.load(Ordering::Relaxed), 20, "each point computed once");
        let out = tmp.path().join("merged.h5");
        merge(&[d0.as_path(), d1.as_path()], &out).unwrap();
        assert!(same_result(&read_results(&out).unwrap(), &in_memory(&spec)));
    }

    /// Shard 0 of 2 of `spec` run into `dir` (chunks 0 and 2); chunks 1 and 3 reported as
    /// failed on every try, one error with a NUL byte.
    fn shard_0_with_chunks_1_and_3_failed(spec: &SweepSpec, dir: &Path, n: &AtomicUsize) -> Vec<FailedChunk> {
        let shard0 = RunControl {
            shard: Some(crate::sweep::Shard { index: 0, count: 2 }),
            ..RunControl::default()
        };
        parts(spec, dir, shard0, n).unwrap();
        vec![
            FailedChunk {
                chunk: 1,
                error: "RuntimeError: worker lost".into(),
            },
            FailedChunk {
                chunk: 3,
                error: "nul\0byte".into(),
            },
        ]
    }

    #[test]
    fn h5_failed_chunks_are_marked_and_a_rerun_completes() {
        // Shard 0 of 2 computes chunks 0 and 2 (points 0..6, 12..18); chunks 1 and 3 count
        // as failed (as a cluster task raising on every try) and are merged as such.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sweep");
        let spec = spec();
        let n = AtomicUsize::new(0);
        let failed = shard_0_with_chunks_1_and_3_failed(&spec, &dir, &n);
        let out = tmp.path().join("marked.h5");
        // Every missing chunk must be accounted for.
        let err = merge_marking_failed(&[dir.as_path()], &out, &spec.param_grid, &failed[..1]).unwrap_err();
        assert!(
            matches!(&err, IoError::MissingChunks { missing } if missing == &vec![(18, 20)]),
            "{err}"
        );
        // The grid must be this sweep's.
        let other = fake_spec(&[1.0, -2.0, 500.0, 3.5], &[0.0, 1.0, 2.0, 3.0, 4.0]).param_grid;
        let err = merge_marking_failed(&[dir.as_path()], &out, &other, &failed).unwrap_err();
        assert!(matches!(err, IoError::FingerprintMismatch { .. }), "{err}");
        assert!(!out.exists());

        assert_eq!(
            merge_marking_failed(&[dir.as_path()], &out, &spec.param_grid, &failed).unwrap(),
            8
        );
        let back = read_results(&out).unwrap();
        let mem = in_memory(&spec);
        let failed_points: Vec<usize> = (6..12).chain(18..20).collect();
        let (nt, nc) = (mem.time.len(), mem.columns.len());
        assert_eq!(back.labels, mem.labels);
        assert_eq!(
            back.grid_values, mem.grid_values,
            "failed points keep their grid values"
        );
        let (bt, mt) = (back.traces.as_ref().unwrap(), mem.traces.as_ref().unwrap());
        let (bs, ms) = (back.summaries.as_ref().unwrap(), mem.summaries.as_ref().unwrap());
        for p in 0..20 {
            let tr = p * nt * nc..(p + 1) * nt * nc;
            let sm = p * nc..(p + 1) * nc;
            if failed_points.contains(&p) {
                assert_eq!(back.status[p], PointStatus::Failed, "point {p}");
                assert!(bt[tr].iter().all(|x| x.is_nan()), "point {p}: traces NaN");
                assert!(bs.values.iter().all(|v| v[sm.clone()].iter().all(|x| x.is_nan())));
            } else {
                // Bit for bit what the in-memory run gives (NaN where it diverged).
                assert_eq!(back.status[p], mem.status[p], "point {p}");
                let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same(&bt[tr.clone()], &mt[tr]), "point {p}: traces");
                assert!(bs
                    .values
                    .iter()
                    .zip(&ms.values)
                    .all(|(x, y)| same(&x[sm.clone()], &y[sm.clone()])));
            }
        }
        let f = File::open(&out).unwrap();
        let failed_attr: u64 = f.attr("failed_points").unwrap().read_scalar().unwrap();
        assert_eq!(failed_attr, 8);
        let errors = read_strings(&f.group("status").unwrap(), "error", &out).unwrap();
        assert_eq!(errors[5], "");
        assert_eq!(errors[6], "RuntimeError: worker lost");
        assert_eq!(
            errors[19], "nul\\0byte",
            "NUL, which HDF5 strings cannot hold, is escaped"
        );
        drop(f);

        // The marked file does not make the chunks done: the rest of the sweep resumes, and
        // the plain merge gives the complete file.
        assert!(!Manifest::load(&dir).unwrap().contains(1));
        let before = n.load(Ordering::Relaxed);
        parts(&spec, &dir, RunControl::default(), &n).unwrap();
        assert_eq!(n.load(Ordering::Relaxed) - before, 8, "only the failed chunks' points");
        merge(&[dir.as_path()], &out).unwrap();
        assert!(same_result(&read_results(&out).unwrap(), &mem));
        let f = File::open(&out).unwrap();
        assert_eq!(f.attr("failed_points").unwrap().read_scalar::<u64>().unwrap(), 0);
        assert!(!f.group("status").unwrap().link_exists("error"));
    }

    #[test]
    fn h5_merge_into_existing_file_keeps_its_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sweep");
        let spec = spec();
        let n = AtomicUsize::new(0);
        parts(&spec, &dir, RunControl::default(), &n).unwrap();
        let staging = tmp.path().join("staging.h5");
        {
            let f = create_file(&staging).unwrap();
            let g = f.create_group("Config").unwrap();
            write_f64s(&g, "dt", &[1e-3], &staging).unwrap();
        }
        assert_eq!(
            merge_marking_failed_into(&[dir.as_path()], &staging, &spec.param_grid, &[]).unwrap(),
            0
        );
        assert!(same_result(&read_results(&staging).unwrap(), &in_memory(&spec)));
        let f = File::open(&staging).unwrap();
        assert_eq!(f.dataset("Config/dt").unwrap().read_raw::<f64>().unwrap(), vec![1e-3]);
        assert!(!tmp_path(&staging).exists(), "written in place");
    }

    #[test]
    fn h5_incremental_merge_equals_the_merge_at_once() {
        // Shard 0 of 2 computes chunks 0 and 2; chunk 1 failed, chunk 3 never came. Added in
        // arrival order (2 before 0), the incremental merge must give the very file the
        // merge of everything at once gives; it refuses to finish with a chunk unaccounted
        // for, and a part whose bytes changed.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sweep");
        let spec = spec();
        let n = AtomicUsize::new(0);
        let failed = shard_0_with_chunks_1_and_3_failed(&spec, &dir, &n);
        let staging = |name: &str| {
            let p = tmp.path().join(name);
            create_file(&p).unwrap().close().unwrap();
            p
        };
        let at_once = staging("at_once.h5");
        merge_marking_failed_into(&[dir.as_path()], &at_once, &spec.param_grid, &failed).unwrap();

        let inc = staging("incremental.h5");
        let mut m = IncrementalMerge::new(&dir, &inc, &spec.param_grid).unwrap();
        m.add(2).unwrap();
        assert!(m.add(1).is_err(), "chunk 1 has no part");
        m.add(0).unwrap();
        let err = m.finish(&spec.param_grid, &failed[..1]).unwrap_err();
        assert!(
            matches!(&err, IoError::MissingChunks { missing } if missing == &vec![(18, 20)]),
            "{err}"
        );

        let inc = staging("incremental.h5");
        let mut m = IncrementalMerge::new(&dir, &inc, &spec.param_grid).unwrap();
        m.add(2).unwrap();
        m.add(0).unwrap();
        let merged = m.finish(&spec.param_grid, &failed).unwrap();
        assert_eq!(merged.failed_points, 8);
        assert_eq!(contents(&inc), contents(&at_once));
        // What it kept is what the file holds: status codes and (traces being kept) no
        // summaries copy.
        let back = read_results(&inc).unwrap();
        let codes: Vec<u8> = back.status.iter().map(|s| status_code(s).0).collect();
        assert_eq!(merged.status_codes, codes);
        assert_eq!(merged.columns, back.columns);
        assert!(merged.summaries.is_none(), "the traces hold the results");

        // Without failures, after the rest of the sweep ran: the complete file.
        parts(&spec, &dir, RunControl::default(), &n).unwrap();
        let full = staging("full.h5");
        let mut m = IncrementalMerge::new(&dir, &full, &spec.param_grid).unwrap();
        for chunk in [3, 1, 0, 2] {
            m.add(chunk).unwrap();
        }
        assert_eq!(m.finish(&spec.param_grid, &[]).unwrap().failed_points, 0);
        assert!(same_result(&read_results(&full).unwrap(), &in_memory(&spec)));

        // Summaries only: the copy it keeps is the file's summaries, [point][column][stat].
        let sdir = tmp.path().join("summaries_only");
        let mut sspec = spec.clone();
        sspec.keep_traces = false;
        parts(&sspec, &sdir, RunControl::default(), &n).unwrap();
        let sfile = staging("summaries.h5");
        let mut m = IncrementalMerge::new(&sdir, &sfile, &sspec.param_grid).unwrap();
        for chunk in 0..4 {
            m.add(chunk).unwrap();
        }
        let merged = m.finish(&sspec.param_grid, &[]).unwrap();
        let back = read_results(&sfile).unwrap();
        let summ = back.summaries.as_ref().unwrap();
        let (nc, ns) = (back.columns.len(), summ.stats.len());
        let kept = merged.summaries.as_ref().unwrap();
        assert_eq!(kept.len(), 20 * nc * ns);
        for p in 0..20 {
            for c in 0..nc {
                for (si, vals) in summ.values.iter().enumerate() {
                    let (x, y) = (kept[(p * nc + c) * ns + si], vals[p * nc + c]);
                    assert_eq!(x.to_bits(), y.to_bits(), "point {p} column {c} statistic {si}");
                }
            }
        }
        assert_eq!(
            merged.statistics,
            summ.stats.iter().map(|s| s.name()).collect::<Vec<_>>()
        );

        // A part changed after it was recorded is refused.
        let entry = Manifest::load(&dir).unwrap().entries[0].clone();
        std::fs::write(dir.join(&entry.file), b"not the part").unwrap();
        let mut m = IncrementalMerge::new(&dir, &staging("bad.h5"), &spec.param_grid).unwrap();
        assert!(matches!(m.add(entry.chunk), Err(IoError::CorruptPart { .. })));
        // Another sweep's grid is refused.
        let other = fake_spec(&[1.0, -2.0, 500.0, 3.5], &[0.0, 1.0, 2.0, 3.0, 4.0]).param_grid;
        assert!(matches!(
            IncrementalMerge::new(&dir, &staging("other.h5"), &other),
            Err(IoError::FingerprintMismatch { .. })
        ));
    }

    #[test]
    fn h5_every_chunk_failed_is_an_error_not_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = spec();
        // The sweep directory exists (sweep.json) but no chunk was computed.
        let rec_dir = tmp.path().join("sweep");
        let cancel = AtomicBool::new(true);
        let n = AtomicUsize::new(0);
        let ctrl = RunControl {
            cancel: Some(&cancel),
            ..RunControl::default()
        };
        assert!(parts(&spec, &rec_dir, ctrl, &n).is_err());
        assert_eq!(n.load(Ordering::Relaxed), 0);
        let failed: Vec<FailedChunk> = (0..4)
            .map(|chunk| FailedChunk {
                chunk,
                error: "x".into(),
            })
            .collect();
        let out = tmp.path().join("none.h5");
        let err = merge_marking_failed(&[rec_dir.as_path()], &out, &spec.param_grid, &failed).unwrap_err();
        assert!(matches!(err, IoError::NoChunkComputed { chunks: 4 }), "{err}");
        assert!(!out.exists());
    }

    #[test]
    fn h5_interrupted_rerun_computes_only_missing_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sweep");
        let mut spec = spec();
        spec.threads = Some(1);
        let cancel = AtomicBool::new(false);
        // Stop once two chunks (12 points) are done: the flag is read before the next block.
        let progress = |p: crate::sweep::Progress| {
            if p.points_done >= 12 {
                cancel.store(true, Ordering::Relaxed);
            }
        };
        let first = AtomicUsize::new(0);
        let ctrl = RunControl {
            cancel: Some(&cancel),
            progress: Some(&progress),
            ..RunControl::default()
        };
        let err = parts(&spec, &dir, ctrl, &first).unwrap_err();
        assert!(
            matches!(err, IoError::Sweep(SweepError::Cancelled { points_done: 12 })),
            "{err}"
        );
        assert_eq!(first.load(Ordering::Relaxed), 12);
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("parts"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "two finished parts, no .tmp: {leftovers:?}");
        let err = merge(&[dir.as_path()], &tmp.path().join("x.h5")).unwrap_err();
        assert!(matches!(err, IoError::MissingChunksIn { .. }));

        let second = AtomicUsize::new(0);
        assert_eq!(parts(&spec, &dir, RunControl::default(), &second).unwrap(), 2);
        assert_eq!(
            second.load(Ordering::Relaxed),
            8,
            "only the 8 points of the unfinished chunks"
        );
        let out = tmp.path().join("resumed.h5");
        merge(&[dir.as_path()], &out).unwrap();
        assert!(same_result(&read_results(&out).unwrap(), &in_memory(&spec)));
    }

    #[test]
    fn h5_reused_dir_with_other_sweep_is_error() {
        let tmp = tempfile::tempdir().unwrap();
        let n = AtomicUsize::new(0);
        parts(&spec(), tmp.path(), RunControl::default(), &n).unwrap();
        let mut other = spec();
        other.sim.cutoff = 0.0;
        let err = parts(&other, tmp.path(), RunControl::default(), &n).unwrap_err();
        assert!(matches!(err, IoError::FingerprintMismatch { .. }), "{err}");
    }

    #[test]
    fn h5_part_file_is_not_a_complete_result() {
        let tmp = tempfile::tempdir().unwrap();
        let n = AtomicUsize::new(0);
        parts(&spec(), tmp.path(), RunControl::default(), &n).unwrap();
        let part = tmp.path().join(part_file(0, 6));
        let err = read_results(&part).unwrap_err();
        assert!(matches!(err, IoError::Incomplete { .. }), "{err}");
    }

    #[test]
    fn h5_corrupted_part_is_detected_at_merge() {
        let tmp = tempfile::tempdir().unwrap();
        let n = AtomicUsize::new(0);
        parts(&spec(), tmp.path(), RunControl::default(), &n).unwrap();
        let part = tmp.path().join(part_file(6, 12));
        let mut bytes = std::fs::read(&part).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&part, bytes).unwrap();
        let err = merge(&[tmp.path()], &tmp.path().join("out.h5")).unwrap_err();
        assert!(matches!(err, IoError::CorruptPart { .. }), "{err}");
    }

    #[test]
    fn h5_summaries_only_without_compression_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s.h5");
        let mut spec = spec();
        spec.keep_traces = false;
        let c = fake_circuit();
        let solver = fake_solver(c.clone());
        let o = FileOptions {
            compression: false,
            ..opts()
        };
        sweep_to_file(
            &spec,
            &c,
            &out,
            &o,
            RunControl {
                solver: Some(&solver),
                ..RunControl::default()
            },
        )
        .unwrap();
        let back = read_results(&out).unwrap();
        assert!(back.traces.is_none());
        assert!(same_result(&back, &in_memory(&spec)));
    }

    #[test]
    fn h5_qif_sweep_file_equals_memory_run() {
        // The real solver on the reference circuit, 4 × 4 grid, summaries and traces, three
        // chunks written as parts and merged.
        use crate::sweep::run::tests::{qif_spec, reference_qif};
        let c = reference_qif();
        let mut spec = qif_spec(4);
        spec.summaries = Statistic::ALL.to_vec();
        spec.chunk_size = 6;
        let mut sink = MemorySink::new();
        crate::sweep::run(&spec, &c, &mut sink).unwrap();
        let mem = sink.into_result().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("qif.h5");
        sweep_to_file(&spec, &c, &out, &opts(), RunControl::default()).unwrap();
        assert!(same_result(&read_results(&out).unwrap(), &mem));
        assert!(mem.traces.as_ref().unwrap().iter().all(|x| x.is_finite()));
    }
}
