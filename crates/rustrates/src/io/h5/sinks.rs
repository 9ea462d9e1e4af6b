//! The sweep sinks that write results files: part files with a manifest ([`PartSink`]) and
//! the direct write of a one-chunk sweep ([`FileSink`]).

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::super::guard;
use super::super::parts::{self, part_file, tmp_path, Manifest, ManifestEntry, SweepRecord};
use super::super::IoError;
use super::layout::*;
use super::merge::merge;
use crate::model::Circuit;
use crate::sweep::{
    run_with, BlockOutput, Grid, RunControl, SweepError, SweepMeta, SweepSink, SweepSpec, SweepSummary,
};

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
pub(super) struct FileSink {
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

pub(super) fn out_err(e: IoError) -> SweepError {
    SweepError::Output { source: Box::new(e) }
}

/// Undoes [`out_err`], so callers see the typed I/O error.
pub(super) fn unwrap_out(e: SweepError) -> IoError {
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
