//! Joining part files into one results file: at once ([`merge`]) or chunk by chunk as they
//! arrive ([`IncrementalMerge`]).

use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::{Dataset, File, Group};

use super::super::parts::{self, fingerprint, tmp_path, Manifest, ManifestEntry, SweepRecord};
use super::super::IoError;
use super::codec::TraceType;
use super::layout::*;
use crate::sweep::Grid;

/// Points copied at a time when merging traces (bounds merge memory).
pub(super) const MERGE_POINTS: usize = 256;

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
pub(super) enum MergeTarget<'a> {
    /// A new file, written as `out.tmp` and renamed.
    New(&'a Path),
    /// An existing file, added to in place.
    Existing(&'a Path),
}

/// Where the points of one chunk come from when merging.
#[derive(Clone)]
pub(super) enum ChunkSource {
    Part(PathBuf, ManifestEntry),
    Failed(Range<usize>, String),
}

pub(super) fn merge_sources(
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
pub(super) struct MergeWriter {
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
            Some(p) => read_shape(&open_file(p).map_err(h5(p))?, p, &record.circuit_name, block_size, n)?,
            None => Shape {
                circuit_name: record.circuit_name.clone(),
                time: Vec::new(),
                columns: Vec::new(),
                stats: Vec::new(),
                keep_traces: false,
                block_size,
                total_points: n,
                trace_type: TraceType::Float64,
            },
        };
        let (grid, sets) = create_layout(&file, &shape, &grid_keys, n, record.compression, false, &tmp)?;
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
            if self.chunks_copy_as_stored(&src, &r)? {
                // The part's chunks are whole chunks of this file, encoded alike: copied as
                // stored, neither decoded nor encoded again.
                let cp = self.sets.codec.expect("checked").points_per_chunk;
                for first in r.clone().step_by(cp) {
                    if let Some((mask, bytes)) = read_raw_chunk(&src, first - r.start, path)? {
                        write_raw_chunk(ds, first, mask, &bytes, &self.tmp)?;
                    }
                }
            } else {
                let mut p = 0;
                while p < r.len() {
                    let q = (p + MERGE_POINTS).min(r.len());
                    let v: ndarray::Array3<f64> = src.read_slice((p..q, .., ..)).map_err(&ep)?;
                    ds.write_slice(&v, (r.start + p..r.start + q, .., ..)).map_err(&eo)?;
                    p = q;
                }
            }
        }
        Ok(())
    }

    /// Whether the chunks of a part's `/traces` (`src`, the points `r`) are chunks of this
    /// file as they are: same chunk shape, filters and type, and the part's points start and
    /// end on this file's chunk boundaries (or at its end).
    fn chunks_copy_as_stored(&self, src: &Dataset, r: &Range<usize>) -> Result<bool, IoError> {
        let (Some(dst), Some(codec)) = (&self.sets.traces, self.sets.codec) else {
            return Ok(false);
        };
        let cp = codec.points_per_chunk;
        let aligned = r.start.is_multiple_of(cp) && (r.end.is_multiple_of(cp) || r.end == self.n_points);
        let size = |d: &Dataset| d.dtype().map(|t| t.size()).map_err(h5(&self.tmp));
        Ok(aligned && src.chunk() == dst.chunk() && src.filters() == dst.filters() && size(src)? == size(dst)?)
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
