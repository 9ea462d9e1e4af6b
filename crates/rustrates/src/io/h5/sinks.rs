//! The sweep sinks that write results files: part files with a manifest ([`PartSink`]) and
//! the direct write of a one-chunk sweep ([`FileSink`]). Both hand blocks to a writer thread
//! ([`super::writer`]) after encoding their trace chunks on the worker threads.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::guard;
use super::super::parts::{self, part_file, tmp_path, Manifest, SweepRecord};
use super::super::IoError;
use super::layout::*;
use super::merge::merge;
use super::writer::{Msg, Writer};
use crate::model::Circuit;
use crate::sweep::{
    run_with, BlockHandler, BlockOutput, Grid, RunControl, SweepError, SweepMeta, SweepSink, SweepSpec, SweepSummary,
};

/// The writer of a sweep whose blocks carry `shape`'s traces: its queue holds
/// [`super::writer::QUEUE_BYTES`] of them.
fn spawn_writer(shape: &Shape) -> Result<Writer, IoError> {
    let block_bytes = if shape.keep_traces {
        shape.block_size * shape.per_point() * size_of::<f64>()
    } else {
        shape.block_size * shape.columns.len() * shape.stats.len() * size_of::<f64>()
    };
    Writer::spawn(block_bytes)
}

/// The chunk a part sink is writing, and the handler its blocks go to.
struct Current {
    index: usize,
    range: Range<usize>,
    handler: Arc<dyn BlockHandler>,
}

/// Writes each chunk of a sweep into `DIR/parts/` and records it in the manifest.
pub struct PartSink {
    dir: PathBuf,
    opts: FileOptions,
    manifest: Manifest,
    shape: Option<Shape>,
    grid: Option<Grid>,
    writer: Option<Writer>,
    current: Option<Current>,
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
            writer: None,
            current: None,
            chunks_written: 0,
            set_aside: Vec::new(),
        }
    }

    fn begin_io(&mut self, meta: &SweepMeta<'_>) -> Result<(), IoError> {
        sweep_record(meta, &self.opts).create_or_check_with(&self.dir, self.opts.durable)?;
        (self.manifest, self.set_aside) = Manifest::load_verified(&self.dir)?;
        let shape = Shape::of(meta, self.opts.trace_type);
        self.writer = Some(spawn_writer(&shape)?);
        self.shape = Some(shape);
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
        let writer = self.writer.as_ref().expect("begin runs before chunks");
        let tmp = tmp_path(&self.dir.join(part_file(range.start, range.end)));
        // Parts are encoded as the merged file is (its chunks are whole chunks of the merged
        // file), so the merge copies their chunks without decoding them.
        let part = OpenFile::create(
            tmp,
            shape,
            grid,
            range.clone(),
            self.opts.compression,
            self.opts.durable,
        )?;
        write_u64_attr(&part.file, "chunk_index", index as u64, &part.tmp)?;
        write_u64_attr(&part.file, "chunk_start", range.start as u64, &part.tmp)?;
        write_u64_attr(&part.file, "chunk_end", range.end as u64, &part.tmp)?;
        let codec = part.codec();
        writer.send(Msg::Open(Box::new(part)))?;
        self.current = Some(Current {
            index,
            handler: writer.handler(range.start, range.len(), codec),
            range,
        });
        Ok(true)
    }

    fn end_chunk_io(&mut self) -> Result<(), IoError> {
        let Current { index, range, .. } = self.current.take().expect("end_chunk follows begin_chunk");
        let (dir, durable) = (self.dir.clone(), self.opts.durable);
        let finish = move |part: OpenFile| -> Result<(), IoError> {
            part.finish(&dir.join(part_file(range.start, range.end)), durable)?;
            parts::record_finished_part(&dir, index, range, durable).map(drop)
        };
        // The writer finishes the part while the workers go on with the next chunk.
        self.writer
            .as_ref()
            .expect("begin runs before chunks")
            .send(Msg::Finish(Box::new(finish)))?;
        self.chunks_written += 1;
        Ok(())
    }

    fn finish_io(&mut self) -> Result<(), IoError> {
        match self.writer.as_mut() {
            Some(w) => w.close(),
            None => Ok(()),
        }
    }
}

/// Writes a sweep of one chunk straight into its results file, as `out.tmp` renamed when
/// complete: the same content a merge of its one part file gives, without writing, hashing,
/// reading back and deleting that part (which is most of the time of a small sweep).
pub(super) struct FileSink {
    out: PathBuf,
    opts: FileOptions,
    writer: Option<Writer>,
    handler: Option<Arc<dyn BlockHandler>>,
}

impl FileSink {
    fn begin_io(&mut self, meta: &SweepMeta<'_>) -> Result<(), IoError> {
        let shape = Shape::of(meta, self.opts.trace_type);
        let tmp = tmp_path(&self.out);
        let n = meta.grid.len();
        let open = OpenFile::create(tmp, &shape, meta.grid, 0..n, self.opts.compression, self.opts.durable)?;
        write_sweep_attrs(&open.file, &sweep_record(meta, &self.opts), &open.tmp)?;
        if has_series(&meta.spec.inputs) {
            let g = open.file.create_group("inputs").map_err(h5(&open.tmp))?;
            write_input_sets(&g, &meta.spec.inputs, &open.tmp)?;
        }
        let writer = spawn_writer(&shape)?;
        let codec = open.codec();
        writer.send(Msg::Open(Box::new(open)))?;
        self.handler = Some(writer.handler(0, n, codec));
        self.writer = Some(writer);
        Ok(())
    }

    fn end_io(&mut self) -> Result<(), IoError> {
        let (out, durable) = (self.out.clone(), self.opts.durable);
        let finish = move |open: OpenFile| -> Result<(), IoError> {
            write_complete(&open.file, 0, &open.tmp)?;
            open.finish(&out, durable)
        };
        let writer = self.writer.as_mut().expect("one chunk, opened by begin");
        writer.send(Msg::Finish(Box::new(finish)))?;
        writer.close()
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
    fn block_handler(&mut self) -> Option<Arc<dyn BlockHandler>> {
        self.handler.clone()
    }
    fn block(&mut self, out: BlockOutput<'_>) -> Result<(), SweepError> {
        self.handler.as_ref().expect("blocks follow begin").block(out)
    }
    fn end_chunk(&mut self, _index: usize, _range: Range<usize>) -> Result<(), SweepError> {
        self.end_io().map_err(out_err)
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
    fn block_handler(&mut self) -> Option<Arc<dyn BlockHandler>> {
        self.current.as_ref().map(|c| Arc::clone(&c.handler))
    }
    fn block(&mut self, out: BlockOutput<'_>) -> Result<(), SweepError> {
        self.current
            .as_ref()
            .expect("blocks arrive inside a chunk")
            .handler
            .block(out)
    }
    fn end_chunk(&mut self, _index: usize, _range: Range<usize>) -> Result<(), SweepError> {
        self.end_chunk_io().map_err(out_err)
    }
    fn finish(&mut self) -> Result<(), SweepError> {
        self.finish_io().map_err(out_err)
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
            writer: None,
            handler: None,
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
