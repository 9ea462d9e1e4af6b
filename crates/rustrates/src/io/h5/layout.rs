//! The file layout (see the module documentation of [`super`]): creating it, the shared
//! helpers for attributes and string datasets, and a file being written ([`OpenFile`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::plist::dataset_create::{AllocTime, FillTime};
use hdf5::types::VarLenUnicode;
use hdf5::{Dataset, File, Group};
use ndarray::ArrayView3;

use super::super::parts::{fingerprint, tmp_path, SweepRecord};
use super::super::IoError;
use super::codec::{ChunkBytes, ChunkCodec, TraceType, PAGE};
use super::direct::DirectChunks;
use super::writer::{BlockMsg, TracePiece};
use crate::solve::PointStatus;
use crate::sweep::{Grid, Statistic, SweepMeta, SweepSpec};

/// What a results file records beyond the sweep itself.
#[derive(Clone, Debug, Default)]
pub struct FileOptions {
    pub template_source: String,
    pub template_path: String,
    /// Deflate the traces when they are large enough to be worth it
    /// ([`MIN_COMPRESSED_TRACE_BYTES`]). Default off: deflate on shuffled float traces runs
    /// at ≈ 90 MB/s per core for a 1.4× smaller file (1.8× as float32), several times the
    /// time of the sweep that computes them (README, "Traces to disk").
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
    /// The type `/traces` is stored as: `Float32` halves the bytes (values rounded to the
    /// nearest single; default `Float64`, the values as computed).
    pub trace_type: TraceType,
}

impl FileOptions {
    pub fn new(template_source: &str, template_path: &str) -> FileOptions {
        FileOptions {
            template_source: template_source.to_string(),
            template_path: template_path.to_string(),
            compression: false,
            parts_dir: None,
            keep_parts: false,
            durable: true,
            overwrite: false,
            protect: Vec::new(),
            trace_type: TraceType::Float64,
        }
    }
}

/// HDF5's own file locks add nothing here (files are written under temporary names and
/// renamed; the manifest orders the writers), and they leak into child processes such as the
/// C back end's compiler, which inherit the descriptor and keep the lock: another open of
/// the same file then fails with EAGAIN. So every file is opened without them.
pub(super) fn create_file(path: &Path) -> hdf5::Result<File> {
    File::with_options().with_fapl(|p| p.file_locking(false)).create(path)
}

/// [`create_file`] with every allocation of `threshold` bytes or more (the trace chunks)
/// starting at a page boundary, as `O_DIRECT` writes need ([`super::direct`]).
fn create_file_page_aligned(path: &Path, threshold: usize) -> hdf5::Result<File> {
    File::with_options()
        .with_fapl(|p| p.file_locking(false).alignment(threshold as u64, PAGE as u64))
        .create(path)
}

pub(super) fn open_file(path: &Path) -> hdf5::Result<File> {
    File::with_options().with_fapl(|p| p.file_locking(false)).open(path)
}

/// Level 1 with the shuffle filter: on sampled traces it compresses about as well as level 4
/// at a fraction of the time (the write of a 10,000-point sweep was 15× slower at level 4).
pub(super) const DEFLATE_LEVEL: u8 = 1;
/// Traces smaller than this are stored uncompressed even when compression is on. Sampled
/// float traces shrink only about 1.5× and deflate runs at about 50 MB/s, so for a small file
/// it would cost more time than the whole simulation (0.3 s for the 16 MB of a 20×20 sweep,
/// which otherwise takes 0.1 s) to save a few megabytes.
pub const MIN_COMPRESSED_TRACE_BYTES: usize = 64 << 20;

#[cfg(test)]
thread_local! {
    /// Tests lower the threshold to see compressed files without writing 64 MiB. Layouts are
    /// created on the thread that runs the sweep or the merge, so a test's setting holds for it.
    pub(super) static MIN_COMPRESSED: std::cell::Cell<usize> = const { std::cell::Cell::new(MIN_COMPRESSED_TRACE_BYTES) };
}

/// Whether traces of `bytes` bytes are deflated.
pub(super) fn deflate_traces(compression: bool, bytes: usize) -> bool {
    #[cfg(test)]
    let min = MIN_COMPRESSED.with(|m| m.get());
    #[cfg(not(test))]
    let min = MIN_COMPRESSED_TRACE_BYTES;
    compression && bytes >= min
}

pub(super) fn h5(path: &Path) -> impl Fn(hdf5::Error) -> IoError + '_ {
    move |source| IoError::Hdf5 {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn text(s: &str) -> Result<VarLenUnicode, IoError> {
    s.parse::<VarLenUnicode>()
        .map_err(|_| IoError::BadText { text: s.to_string() })
}

pub(super) fn write_str_attr(loc: &hdf5::Location, name: &str, value: &str, path: &Path) -> Result<(), IoError> {
    let v = text(value)?;
    loc.new_attr::<VarLenUnicode>()
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .map_err(h5(path))
}

pub(super) fn read_str_attr(loc: &hdf5::Location, name: &str, path: &Path) -> Result<String, IoError> {
    let v: VarLenUnicode = loc.attr(name).and_then(|a| a.read_scalar()).map_err(h5(path))?;
    Ok(v.as_str().to_string())
}

pub(super) fn write_u64_attr(loc: &hdf5::Location, name: &str, value: u64, path: &Path) -> Result<(), IoError> {
    loc.new_attr::<u64>()
        .create(name)
        .and_then(|a| a.write_scalar(&value))
        .map_err(h5(path))
}

pub(super) fn write_strings(g: &Group, name: &str, values: &[String], path: &Path) -> Result<(), IoError> {
    let data = values.iter().map(|s| text(s)).collect::<Result<Vec<_>, _>>()?;
    g.new_dataset_builder()
        .with_data(&data[..])
        .create(name)
        .map(|_| ())
        .map_err(h5(path))
}

pub(super) fn read_strings(g: &Group, name: &str, path: &Path) -> Result<Vec<String>, IoError> {
    let v: Vec<VarLenUnicode> = g.dataset(name).and_then(|d| d.read_raw()).map_err(h5(path))?;
    Ok(v.iter().map(|s| s.as_str().to_string()).collect())
}

pub(super) fn write_f64s(g: &Group, name: &str, values: &[f64], path: &Path) -> Result<(), IoError> {
    g.new_dataset_builder()
        .with_data(values)
        .create(name)
        .map(|_| ())
        .map_err(h5(path))
}

pub(super) fn key_name(key: &str) -> String {
    key.replace('%', "%25").replace('/', "%2F")
}

/// `/status/code` of a point that was never computed (its chunk failed).
pub(super) const FAILED_CODE: u8 = PointStatus::Failed.code();

pub(super) fn status_code(s: &PointStatus) -> (u8, f64) {
    (s.code(), s.time())
}

pub(super) fn status_from(code: u8, t: f64) -> PointStatus {
    PointStatus::from_code(code, t)
}

/// The shape information every file of a sweep shares.
#[derive(Clone, Debug)]
pub(super) struct Shape {
    pub(super) circuit_name: String,
    pub(super) time: Vec<f64>,
    pub(super) columns: Vec<(String, String)>,
    pub(super) stats: Vec<Statistic>,
    pub(super) keep_traces: bool,
    pub(super) block_size: usize,
    /// Points of the whole sweep (a part file holds some of them): whether traces are
    /// compressed, and their chunk size, depend on the sweep, so parts and the merged file
    /// agree and the merge copies chunks as they are.
    pub(super) total_points: usize,
    pub(super) trace_type: TraceType,
}

impl Shape {
    pub(super) fn of(meta: &SweepMeta<'_>, trace_type: TraceType) -> Shape {
        Shape {
            circuit_name: meta.circuit_name.to_string(),
            time: meta.time.to_vec(),
            columns: meta.columns.to_vec(),
            stats: meta.summaries.to_vec(),
            keep_traces: meta.keep_traces,
            block_size: meta.block_size,
            total_points: meta.grid.len(),
            trace_type,
        }
    }

    /// Values per point in `/traces` (samples × columns).
    pub(super) fn per_point(&self) -> usize {
        self.time.len() * self.columns.len()
    }

    /// The chunk layout of `/traces` in a file of `n` of the sweep's points.
    pub(super) fn trace_layout(&self, n: usize, compression: bool) -> TraceLayout {
        let (nt, nc) = (self.time.len(), self.columns.len());
        let point_bytes = self.per_point() * self.trace_type.size();
        let deflate = deflate_traces(compression, self.total_points * self.per_point() * size_of::<f64>())
            .then_some(DEFLATE_LEVEL);
        if n == 0 || nt == 0 || nc == 0 {
            return TraceLayout {
                chunk: None,
                deflate: None,
                codec: None,
            };
        }
        if point_bytes > MAX_CHUNK_BYTES {
            // A point larger than a chunk may be: its samples are cut in time, as before
            // whole-point chunks, and written as hyperslabs.
            return TraceLayout {
                chunk: Some((1, nt.min(MAX_CHUNK_BYTES / (nc * self.trace_type.size())).max(1), nc)),
                deflate,
                codec: None,
            };
        }
        let points_per_chunk = self
            .block_size
            .min(self.total_points)
            .min(MAX_CHUNK_BYTES / point_bytes)
            .min(n)
            .max(1);
        TraceLayout {
            chunk: Some((points_per_chunk, nt, nc)),
            deflate,
            codec: Some(ChunkCodec {
                points_per_chunk,
                per_point: self.per_point(),
                dtype: self.trace_type,
                deflate,
            }),
        }
    }
}

/// Largest chunk of `/traces`, in bytes (well under HDF5's limit of 4 GiB). A reader decodes a
/// whole chunk to get one point's trace from it.
pub(super) const MAX_CHUNK_BYTES: usize = 8 << 20;

/// How `/traces` is chunked and filtered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TraceLayout {
    /// `None`: no chunks (an empty dataset).
    pub(super) chunk: Option<(usize, usize, usize)>,
    pub(super) deflate: Option<u8>,
    /// Set when chunks hold whole points, so blocks are written chunk by chunk, encoded.
    pub(super) codec: Option<ChunkCodec>,
}

impl TraceLayout {
    /// Whether the chunks can go to the disk directly: whole-point chunks stored raw (all of
    /// one size; deflated ones vary).
    pub(super) fn direct_writable(&self) -> bool {
        self.codec.is_some_and(|c| c.deflate.is_none())
    }
}

/// The datasets written point by point.
pub(super) struct PointSets {
    pub(super) traces: Option<Dataset>,
    pub(super) codec: Option<ChunkCodec>,
    /// `/traces` was created for direct writes: its chunks are allocated at creation and
    /// never filled, so every one of them must be written (NaN where no point came).
    pub(super) unfilled: bool,
    pub(super) summaries: Vec<Dataset>,
    pub(super) code: Dataset,
    pub(super) t: Dataset,
}

/// Creates the layout for `n` points (grid, labels and status datasets empty) in `file`;
/// `direct`: raw whole-point trace chunks are to be written directly ([`super::direct`]).
pub(super) fn create_layout(
    file: &File,
    shape: &Shape,
    grid_keys: &[String],
    n: usize,
    compression: bool,
    direct: bool,
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
    let layout = shape.trace_layout(n, compression);
    let unfilled = direct && shape.keep_traces && layout.direct_writable();
    let traces = if shape.keep_traces {
        let dims = (n, nt, nc);
        // NaN where nothing is written: the points of failed chunks.
        let mut b = match shape.trace_type {
            TraceType::Float64 => file.new_dataset::<f64>().fill_value(f64::NAN),
            TraceType::Float32 => file.new_dataset::<f32>().fill_value(f32::NAN),
        };
        if let Some(chunk) = layout.chunk {
            b = b.chunk(chunk);
            if let Some(level) = layout.deflate {
                // The order the chunk encoder applies them in.
                b = b.shuffle().deflate(level);
            }
        }
        if unfilled {
            // Every chunk gets its address now, which the direct writes need, and HDF5 never
            // writes them (the fill value NaN stays the dataset's declared fill value).
            b = b.alloc_time(Some(AllocTime::Early)).fill_time(FillTime::Never);
        }
        Some(b.shape(dims).create("traces").map_err(&e)?)
    } else {
        None
    };
    Ok((
        grid,
        PointSets {
            traces,
            codec: layout.codec.filter(|_| shape.keep_traces),
            unfilled,
            summaries,
            code,
            t,
        },
    ))
}

/// Time-series inputs of a sweep directory, written once so the merged file can carry them.
pub(super) use super::super::guard::INPUTS_FILE;

pub(super) fn has_series(inputs: &[(String, crate::solve::Signal)]) -> bool {
    inputs
        .iter()
        .any(|(_, s)| !matches!(s, crate::solve::Signal::Constant(_)))
}

/// One dataset per time-series input in `g`: `[steps]` shared, `[steps, points]` per point.
pub(super) fn write_input_sets(
    g: &Group,
    inputs: &[(String, crate::solve::Signal)],
    path: &Path,
) -> Result<(), IoError> {
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

pub(super) fn write_inputs(dir: &Path, inputs: &[(String, crate::solve::Signal)]) -> Result<(), IoError> {
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

pub(super) fn copy_inputs(src: &Path, out: &File, out_path: &Path) -> Result<(), IoError> {
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
pub(super) struct OpenFile {
    pub(super) range: Range<usize>,
    pub(super) file: File,
    pub(super) tmp: PathBuf,
    pub(super) sets: PointSets,
    pub(super) codes: Vec<u8>,
    pub(super) times: Vec<f64>,
    /// Per statistic, `[point][column]` within the range.
    pub(super) summaries: Vec<Vec<f64>>,
    n_time: usize,
    n_columns: usize,
    /// Chunks of `/traces` being put together from blocks that each hold part of them:
    /// chunk index → (its values, points received).
    assembling: BTreeMap<usize, (Vec<f64>, usize)>,
    /// Set when the file is to be synced at the end (`durable`).
    write_behind: Option<WriteBehind>,
    /// Set when the trace chunks go to the disk directly.
    pub(super) direct: Option<DirectChunks>,
    /// When `sets.unfilled`: which chunks of `/traces` were written.
    chunks_written: Vec<bool>,
}

/// Bytes of traces written between two starts of the kernel's writeback.
const WRITE_BEHIND_BYTES: usize = 32 << 20;

/// Starts the kernel's writeback of a file being written every [`WRITE_BEHIND_BYTES`], so
/// the disk writes while the workers compute and the fsync at the end waits only for the
/// last few megabytes: without it the page cache holds the whole file until that fsync,
/// which then took as long as `dd` writing the file (0.3 s for 400 MB, about the time of the
/// whole summaries-only sweep). Linux only (`sync_file_range`); elsewhere the fsync does all.
struct WriteBehind {
    file: std::fs::File,
    pending: usize,
}

impl WriteBehind {
    fn wrote(&mut self, bytes: usize) {
        self.pending += bytes;
        if self.pending < WRITE_BEHIND_BYTES {
            return;
        }
        self.pending = 0;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file.
            // SYNC_FILE_RANGE_WRITE only queues the dirty pages for writing (it waits for
            // nothing already under way). A failure is ignored: the final fsync still syncs
            // everything and reports any error.
            let _ = unsafe { libc::sync_file_range(self.file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        }
    }
}

impl OpenFile {
    /// Creates the file; `durable`: it will be synced when finished, so from now on its
    /// traces are handed to the disk as they are written (directly, [`super::direct`], where
    /// the chunks allow it, else through [`WriteBehind`]). A file that is not synced (a
    /// cluster worker's scratch chunk) is left to the page cache: its bytes need never wait
    /// for the disk.
    pub(super) fn create(
        tmp: PathBuf,
        shape: &Shape,
        grid: &Grid,
        range: Range<usize>,
        compression: bool,
        durable: bool,
    ) -> Result<OpenFile, IoError> {
        let n = range.len();
        let layout = shape.trace_layout(n, compression);
        let mode = super::direct::mode();
        let direct_chunks = (durable && shape.keep_traces && mode != super::direct::Mode::Off)
            .then_some(layout.codec)
            .flatten()
            .filter(|_| layout.direct_writable());
        let file = match direct_chunks {
            Some(c) => create_file_page_aligned(&tmp, c.chunk_values() * c.dtype.size()),
            None => create_file(&tmp),
        }
        .map_err(h5(&tmp))?;
        let (g, sets) = create_layout(&file, shape, grid.keys(), n, compression, direct_chunks.is_some(), &tmp)?;
        let direct = if sets.unfilled {
            DirectChunks::open(&tmp, mode)?
        } else {
            None
        };
        let write_behind = if durable {
            let file = std::fs::File::open(&tmp).map_err(IoError::fs(&tmp))?;
            Some(WriteBehind { file, pending: 0 })
        } else {
            None
        };
        let chunks_written = match sets.codec.filter(|_| sets.unfilled) {
            Some(c) => vec![false; n.div_ceil(c.points_per_chunk)],
            None => Vec::new(),
        };
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
            n_time: shape.time.len(),
            n_columns: nc,
            assembling: BTreeMap::new(),
            write_behind,
            direct,
            chunks_written,
        })
    }

    /// The codec of the file's trace chunks, when they hold whole points.
    pub(super) fn codec(&self) -> Option<ChunkCodec> {
        self.sets.codec
    }

    /// Records one finished block (`b.first` relative to the file's first point); gives back
    /// the buffers of the chunks it wrote.
    pub(super) fn write_block(&mut self, b: BlockMsg) -> Result<Vec<ChunkBytes>, IoError> {
        let (p0, lanes, nc) = (b.first, b.status.len(), self.n_columns);
        for (i, s) in b.status.iter().enumerate() {
            (self.codes[p0 + i], self.times[p0 + i]) = status_code(s);
        }
        let block = lanes * nc;
        for (si, vals) in self.summaries.iter_mut().enumerate() {
            vals[p0 * nc..(p0 + lanes) * nc].copy_from_slice(&b.summaries[si * block..(si + 1) * block]);
        }
        let mut bytes_written = 0;
        let mut written = Vec::new();
        for piece in b.traces {
            match piece {
                TracePiece::Chunk { index, bytes } => {
                    let Some(bytes) = self.write_chunk_in_flight(index, bytes)? else {
                        continue;
                    };
                    if !self.write_chunk(index, &bytes)? {
                        bytes_written += bytes.len();
                    }
                    written.push(bytes);
                }
                TracePiece::Points { first, values } => bytes_written += self.write_points(first, &values)?,
            }
        }
        if let Some(w) = self.write_behind.as_mut() {
            w.wrote(bytes_written);
        }
        if let Some(direct) = self.direct.as_mut() {
            written.extend(direct.written()?);
        }
        Ok(written)
    }

    /// Hands chunk `index` to the direct writes in flight where it can go that way (`None`);
    /// else gives it back, for [`OpenFile::write_chunk`].
    fn write_chunk_in_flight(&mut self, index: usize, bytes: ChunkBytes) -> Result<Option<ChunkBytes>, IoError> {
        let (Some(ds), Some(codec), Some(direct)) = (&self.sets.traces, self.sets.codec, self.direct.as_mut()) else {
            return Ok(Some(bytes));
        };
        match direct.write_in_flight(ds, index * codec.points_per_chunk, bytes)? {
            Ok(()) => {
                if let Some(w) = self.chunks_written.get_mut(index) {
                    *w = true;
                }
                Ok(None)
            }
            Err(bytes) => Ok(Some(bytes)),
        }
    }

    /// Writes chunk `index` of `/traces`, encoded by the codec, as it is; `true` when it went
    /// to the disk directly (not through the page cache).
    fn write_chunk(&mut self, index: usize, bytes: &[u8]) -> Result<bool, IoError> {
        let (Some(ds), Some(codec)) = (&self.sets.traces, self.sets.codec) else {
            return Ok(false);
        };
        let first = index * codec.points_per_chunk;
        if let Some(w) = self.chunks_written.get_mut(index) {
            *w = true;
        }
        if let Some(direct) = self.direct.as_mut() {
            if direct.write(ds, first, bytes)? {
                return Ok(true);
            }
        }
        write_raw_chunk(ds, first, 0, bytes, &self.tmp)?;
        Ok(false)
    }

    /// Writes points from `first` on: into the chunks being assembled when chunks hold whole
    /// points (each written once complete), else straight into `/traces`. The bytes that went
    /// through the page cache.
    fn write_points(&mut self, first: usize, values: &[f64]) -> Result<usize, IoError> {
        let Some(ds) = &self.sets.traces else {
            return Ok(0);
        };
        let per_point = self.n_time * self.n_columns;
        let lanes = values.len() / per_point.max(1);
        let Some(codec) = self.sets.codec else {
            let view = ArrayView3::from_shape((lanes, self.n_time, self.n_columns), values)
                .expect("block traces are lanes × time × columns");
            ds.write_slice(view, (first..first + lanes, .., ..))
                .map_err(h5(&self.tmp))?;
            return Ok(std::mem::size_of_val(values));
        };
        let mut buffered = 0;
        let (cp, n) = (codec.points_per_chunk, self.range.len());
        let mut p = first;
        while p < first + lanes {
            let chunk = p / cp;
            let (c0, c1) = (chunk * cp, ((chunk + 1) * cp).min(n));
            let q = c1.min(first + lanes);
            let (buf, got) = self
                .assembling
                .entry(chunk)
                .or_insert_with(|| (vec![f64::NAN; (c1 - c0) * per_point], 0));
            buf[(p - c0) * per_point..(q - c0) * per_point]
                .copy_from_slice(&values[(p - first) * per_point..(q - first) * per_point]);
            *got += q - p;
            if *got == c1 - c0 {
                let (buf, _) = self.assembling.remove(&chunk).expect("just filled");
                let bytes = codec.encode(&buf);
                if !self.write_chunk(chunk, &bytes)? {
                    buffered += bytes.len();
                }
            }
            p = q;
        }
        Ok(buffered)
    }

    /// Writes status and summaries, closes the file, fsyncs it (when `durable`) and renames
    /// it to `path`.
    pub(super) fn finish(mut self, path: &Path, durable: bool) -> Result<(), IoError> {
        // Every point arrives in some block, so nothing is left to assemble; were a point
        // missing, its chunk is still written, NaN where no block came.
        for (chunk, (buf, _)) in std::mem::take(&mut self.assembling) {
            if let Some(codec) = self.sets.codec {
                self.write_chunk(chunk, &codec.encode(&buf))?;
            }
        }
        // Chunks allocated unfilled that no block reached: NaN, as the fill value would be.
        if let Some(codec) = self.sets.codec {
            let missing: Vec<usize> = (0..self.chunks_written.len())
                .filter(|&i| !self.chunks_written[i])
                .collect();
            for chunk in missing {
                self.write_chunk(chunk, &codec.encode(&[]))?;
            }
        }
        let n_columns = self.n_columns;
        let e = h5(&self.tmp);
        self.sets.code.write_raw(&self.codes[..]).map_err(&e)?;
        self.sets.t.write_raw(&self.times[..]).map_err(&e)?;
        for (ds, vals) in self.sets.summaries.iter().zip(&self.summaries) {
            let view = ndarray::ArrayView2::from_shape((self.range.len(), n_columns), vals).expect("points × columns");
            ds.write(view).map_err(&e)?;
        }
        self.file.flush().map_err(&e)?;
        // The fsync below syncs what the write-behind has not, and the direct writes' file;
        // their descriptors go first.
        drop(self.write_behind.take());
        if let Some(direct) = self.direct.as_mut() {
            direct.wait()?;
        }
        drop(self.direct.take());
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
pub(super) fn abandon(open: Option<OpenFile>) {
    if let Some(open) = open {
        let OpenFile { file, tmp, sets, .. } = open;
        // The datasets before the file: the file's handle closes last, so HDF5 never flushes
        // a dataset whose handle is already gone.
        drop(sets);
        drop(file);
        let _ = std::fs::remove_file(tmp);
    }
}

/// What `sweep.json` records, and what the root attributes of a final file hold.
/// The record of `spec` run on the circuit `circuit_name` and written with `opts`: what
/// every writer of a sweep directory (the part sink, a cluster client recording parts
/// computed elsewhere) puts in `sweep.json`, so their fingerprints agree.
pub fn sweep_record_of(spec: &SweepSpec, circuit_name: &str, opts: &FileOptions) -> SweepRecord {
    let mut settings = spec.settings_json();
    // The stored type is part of what a part file holds, so it is part of the fingerprint: a
    // resume asking for another precision is another sweep, never a mix. Recorded only when
    // it is not the default, so the fingerprints of float64 sweeps (and of cluster sweeps,
    // which store float64) are those of before.
    if opts.trace_type != TraceType::Float64 {
        settings["trace_precision"] = opts.trace_type.name().into();
    }
    SweepRecord {
        fingerprint: fingerprint(&opts.template_source, &spec.param_grid, &settings),
        circuit_name: circuit_name.to_string(),
        n_points: spec.param_grid.len(),
        chunks: spec.chunks().iter().map(|r| (r.start, r.end)).collect(),
        template_source: opts.template_source.clone(),
        template_path: opts.template_path.clone(),
        settings,
        rustrates_version: env!("CARGO_PKG_VERSION").to_string(),
        compression: opts.compression,
    }
}

/// [`sweep_record_of`] the sweep being run (its grid and chunks are the spec's).
pub(super) fn sweep_record(meta: &SweepMeta<'_>, opts: &FileOptions) -> SweepRecord {
    sweep_record_of(meta.spec, meta.circuit_name, opts)
}

/// The root attributes of a final file (all but `complete`).
pub(super) fn write_sweep_attrs(file: &File, record: &SweepRecord, path: &Path) -> Result<(), IoError> {
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
pub(super) fn write_complete(file: &File, failed_points: usize, path: &Path) -> Result<(), IoError> {
    write_u64_attr(file, "failed_points", failed_points as u64, path)?;
    file.new_attr::<u8>()
        .create("complete")
        .and_then(|a| a.write_scalar(&1u8))
        .map_err(h5(path))
}

/// The shape of the sweep a file (part or whole) belongs to; `block_size` and `total_points`
/// are the sweep's, which the file does not hold.
pub(super) fn read_shape(
    file: &File,
    path: &Path,
    circuit_name: &str,
    block_size: usize,
    total_points: usize,
) -> Result<Shape, IoError> {
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
        total_points,
        trace_type: trace_type_of(file, path)?,
    })
}

/// The type a file's `/traces` is stored as (`Float64` when it has none).
pub(super) fn trace_type_of(file: &File, path: &Path) -> Result<TraceType, IoError> {
    if !file.link_exists("traces") {
        return Ok(TraceType::Float64);
    }
    let size = file
        .dataset("traces")
        .and_then(|d| d.dtype())
        .map(|t| t.size())
        .map_err(h5(path))?;
    Ok(if size == 4 {
        TraceType::Float32
    } else {
        TraceType::Float64
    })
}

/// Writes the chunk of `/traces` that starts at point `first` as stored bytes (`filters`: the
/// mask of filters skipped, 0 for all applied).
pub(super) fn write_raw_chunk(
    ds: &Dataset,
    first: usize,
    filters: u32,
    bytes: &[u8],
    path: &Path,
) -> Result<(), IoError> {
    let offset: [hdf5_sys::h5::hsize_t; 3] = [first as _, 0, 0];
    hdf5::sync::sync(|| {
        // SAFETY: `ds` is an open chunked dataset of rank 3; `offset` is a chunk's logical
        // position and `bytes` the chunk encoded by the dataset's own filter pipeline.
        let status = unsafe {
            hdf5_sys::h5d::H5Dwrite_chunk(
                ds.id(),
                hdf5_sys::h5p::H5P_DEFAULT,
                filters,
                offset.as_ptr(),
                bytes.len(),
                bytes.as_ptr().cast(),
            )
        };
        // The error stack holds the cause (e.g. the file driver's "File too large" or "No
        // space left on device"), which is what the user can act on.
        hdf5::h5check(status).map(|_| ())
    })
    .map_err(|source| IoError::Hdf5 {
        path: path.to_path_buf(),
        source: hdf5::Error::from(format!(
            "writing the chunk of /traces at point {first} failed: {source}"
        )),
    })
}

/// The stored bytes of the chunk of `/traces` that starts at point `first` and its filter
/// mask; `None` when that chunk was never written.
pub(super) fn read_raw_chunk(ds: &Dataset, first: usize, path: &Path) -> Result<Option<(u32, Vec<u8>)>, IoError> {
    let offset: [hdf5_sys::h5::hsize_t; 3] = [first as _, 0, 0];
    let failed = || IoError::Hdf5 {
        path: path.to_path_buf(),
        source: hdf5::Error::from(format!("reading the chunk of /traces at point {first} failed")),
    };
    hdf5::sync::sync(|| {
        let (mut mask, mut addr, mut size) = (0u32, 0, 0);
        // SAFETY: `ds` is an open chunked dataset of rank 3 and `offset` a chunk's position;
        // the out-pointers are valid for the call.
        let status = unsafe {
            hdf5_sys::h5d::H5Dget_chunk_info_by_coord(ds.id(), offset.as_ptr(), &mut mask, &mut addr, &mut size)
        };
        if status < 0 {
            return Err(failed());
        }
        if addr == hdf5_sys::h5::HADDR_UNDEF {
            return Ok(None);
        }
        let mut len = size as usize;
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` holds `len` bytes, the chunk's stored size as
        // H5Dget_chunk_info_by_coord gave it (HDF5 2 checks it against `len`).
        let status = unsafe {
            hdf5_sys::h5d::H5Dread_chunk(
                ds.id(),
                hdf5_sys::h5p::H5P_DEFAULT,
                offset.as_ptr(),
                &mut mask,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if status < 0 {
            return Err(failed());
        }
        Ok(Some((mask, buf)))
    })
}
