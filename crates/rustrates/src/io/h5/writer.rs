//! The writer thread: the one thread that touches the HDF5 file while a sweep runs.
//!
//! Worker threads finish a block, encode its trace chunks ([`super::codec`]) and send it
//! through a bounded channel; they never wait on HDF5 unless the writer has fallen behind by
//! the whole queue ([`QUEUE_BYTES`]). The writer writes each chunk with `H5Dwrite_chunk`, keeps
//! status and summaries in memory, and finishes a file (part or final) when told, while the
//! workers go on with the next chunk of the sweep.
//!
//! Memory: at most [`QUEUE_BYTES`] of blocks wait in the queue (rounded up to one block), plus
//! the block each worker holds, the chunks being written `O_DIRECT` (one per I/O thread,
//! [`super::direct::DIRECT_IO_THREADS`]) and the chunks the writer is assembling from blocks
//! that do not cover them whole (at most one partial chunk per block boundary).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::codec::{ChunkBytes, ChunkCodec};
use super::layout::{abandon, OpenFile};
use crate::io::IoError;
use crate::solve::PointStatus;
use crate::sweep::{BlockHandler, BlockOutput, SweepError};

/// Bytes of finished blocks the queue to the writer holds before workers wait for it.
pub const QUEUE_BYTES: usize = 128 << 20;

/// Chunk buffers the writer keeps, once written, for the workers to encode the next chunks
/// into: a fresh buffer per chunk costs a page fault per 4 KiB (and the kernel's zeroing of
/// the page) on every chunk, CPU time the 2 worker threads of a 2-core machine lose.
pub const SPARE_BUFFERS: usize = 4;

/// What a file's last step does once every block is written (close, sync and rename it; for
/// a part file also hash it and append its manifest line).
pub(super) type FinishJob = Box<dyn FnOnce(OpenFile) -> Result<(), IoError> + Send>;

/// The traces of a block as the worker hands them over.
pub(super) enum TracePiece {
    /// Chunk `index` of the file's `/traces`, encoded.
    Chunk { index: usize, bytes: ChunkBytes },
    /// Points from `first` (relative to the file's first point) that do not fill a chunk of
    /// their own, or all of a block's points when the layout has no whole-point chunks.
    Points { first: usize, values: Vec<f64> },
}

/// One finished block, file-relative.
pub(super) struct BlockMsg {
    pub first: usize,
    pub status: Vec<PointStatus>,
    /// `[statistic][lane][column]`.
    pub summaries: Vec<f64>,
    pub traces: Vec<TracePiece>,
}

pub(super) enum Msg {
    /// The next file to write into (the previous one was finished).
    Open(Box<OpenFile>),
    Block(BlockMsg),
    Finish(FinishJob),
    /// No more messages: the writer returns (block handlers may still hold senders).
    Close,
}

/// What the writer and the sink's side share: the first error, and whether to stop.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    error: Mutex<Option<IoError>>,
    /// The first error's message, kept when the error itself is taken, for the others.
    message: Mutex<Option<String>>,
    /// Written chunks' buffers, for the next encodes (at most [`SPARE_BUFFERS`]).
    spare: Mutex<Vec<ChunkBytes>>,
}

impl Shared {
    fn spare_buffer(&self) -> ChunkBytes {
        self.spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn give_back(&self, buffers: Vec<ChunkBytes>) {
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        for b in buffers.into_iter().filter(ChunkBytes::reusable) {
            if spare.len() >= SPARE_BUFFERS {
                break;
            }
            spare.push(b);
        }
    }

    fn fail(&self, e: IoError) {
        self.stop.store(true, Ordering::Release);
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *self.message.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            *slot = Some(e);
        }
    }

    /// The writer's error for whoever notices the writer stopped first; for the rest an error
    /// that quotes it. Which worker's error the run reports is not fixed (two may notice at
    /// once), so every one of them names the cause.
    fn take_error(&self) -> IoError {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.take().unwrap_or_else(|| {
            let message = self.message.lock().unwrap_or_else(|p| p.into_inner()).clone();
            IoError::Sweep(SweepError::Output {
                source: match message {
                    Some(m) => format!("the results writer stopped: {m}").into(),
                    None => "the results writer stopped after an error".into(),
                },
            })
        })
    }
}

/// The sink's handle on the writer thread.
pub(super) struct Writer {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Writer {
    /// Starts the writer; `block_bytes` is the size of one block's traces (sets how many
    /// blocks the queue holds).
    pub fn spawn(block_bytes: usize) -> Result<Writer, IoError> {
        let capacity = (QUEUE_BYTES / block_bytes.max(1)).max(1);
        let (tx, rx) = sync_channel(capacity);
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("rustrates-writer".into())
            .spawn(move || write_loop(rx, &theirs))
            .map_err(|e| {
                IoError::Sweep(SweepError::Output {
                    source: format!("could not start the results writer thread: {e}").into(),
                })
            })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
            shared,
        })
    }

    pub fn send(&self, msg: Msg) -> Result<(), IoError> {
        send(self.tx.as_ref(), &self.shared, msg)
    }

    /// The handler the worker threads give their blocks to, for the file whose first point
    /// is `first_point` of the sweep and which holds `n_points`.
    pub fn handler(&self, first_point: usize, n_points: usize, codec: Option<ChunkCodec>) -> Arc<dyn BlockHandler> {
        Arc::new(BlockEncoder {
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
            first_point,
            n_points,
            codec,
        })
    }

    /// Waits until everything sent is written; the writer's error if it had one.
    pub fn close(&mut self) -> Result<(), IoError> {
        if let Some(tx) = self.tx.take() {
            // Fails only when the writer has returned already.
            let _ = tx.send(Msg::Close);
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                return Err(IoError::Sweep(SweepError::Output {
                    source: "the results writer thread panicked".into(),
                }));
            }
        }
        match self.shared.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    /// A sink dropped before `close` (an error or a cancel elsewhere): the writer still
    /// finishes the files of chunks that were ended, as a run without a writer thread would
    /// have before computing on, and removes the one it was writing.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.close();
        }
    }
}

fn send(tx: Option<&SyncSender<Msg>>, shared: &Shared, msg: Msg) -> Result<(), IoError> {
    if shared.stop.load(Ordering::Acquire) {
        return Err(shared.take_error());
    }
    match tx.map(|tx| tx.send(msg)) {
        Some(Ok(())) => Ok(()),
        _ => Err(shared.take_error()),
    }
}

fn write_loop(rx: Receiver<Msg>, shared: &Shared) {
    let mut current: Option<OpenFile> = None;
    for msg in rx {
        if shared.stop.load(Ordering::Acquire) {
            match msg {
                Msg::Open(f) => abandon(Some(*f)),
                Msg::Close => break,
                _ => {}
            }
            continue;
        }
        let done = match msg {
            Msg::Open(f) => {
                abandon(current.replace(*f));
                Ok(())
            }
            Msg::Block(b) => match current.as_mut() {
                Some(f) => f.write_block(b).map(|written| shared.give_back(written)),
                None => Ok(()),
            },
            Msg::Finish(job) => match current.take() {
                Some(f) => job(f),
                None => Ok(()),
            },
            Msg::Close => break,
        };
        if let Err(e) = done {
            shared.fail(e);
            abandon(current.take());
        }
    }
    abandon(current.take());
}

/// Runs on the worker threads: encodes a finished block's chunks there, in parallel, and
/// queues the block for the writer.
struct BlockEncoder {
    tx: Option<SyncSender<Msg>>,
    shared: Arc<Shared>,
    first_point: usize,
    /// Points in the file.
    n_points: usize,
    codec: Option<ChunkCodec>,
}

impl BlockEncoder {
    fn pieces(&self, first: usize, lanes: usize, traces: &[f64]) -> Vec<TracePiece> {
        let Some(codec) = self.codec else {
            return vec![TracePiece::Points {
                first,
                values: traces.to_vec(),
            }];
        };
        let (cp, pp) = (codec.points_per_chunk, codec.per_point);
        let end = first + lanes;
        let mut pieces = Vec::new();
        let mut p = first;
        while p < end {
            let chunk = p / cp;
            // The last chunk of the file may be short.
            let (c0, c1) = (chunk * cp, ((chunk + 1) * cp).min(self.n_points));
            let q = c1.min(end);
            let values = &traces[(p - first) * pp..(q - first) * pp];
            // A chunk this block fills alone goes encoded; the part of a chunk it shares with
            // other blocks goes as points, and the writer assembles that chunk.
            if p == c0 && q == c1 {
                pieces.push(TracePiece::Chunk {
                    index: chunk,
                    bytes: codec.encode_into(values, self.shared.spare_buffer()),
                });
            } else {
                pieces.push(TracePiece::Points {
                    first: p,
                    values: values.to_vec(),
                });
            }
            p = q;
        }
        pieces
    }
}

impl BlockHandler for BlockEncoder {
    fn block(&self, out: BlockOutput<'_>) -> Result<(), SweepError> {
        if self.shared.stop.load(Ordering::Acquire) {
            return Err(super::sinks::out_err(self.shared.take_error()));
        }
        let first = out.first_point - self.first_point;
        let traces = out.traces.map(|t| self.pieces(first, out.lanes, t)).unwrap_or_default();
        let msg = Msg::Block(BlockMsg {
            first,
            status: out.status.to_vec(),
            summaries: out.summaries.to_vec(),
            traces,
        });
        send(self.tx.as_ref(), &self.shared, msg).map_err(super::sinks::out_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two workers noticing a failed write at once: whichever the run reports, it names the
    /// cause (a full disk, here EFBIG's message); the first gets the error itself.
    #[test]
    fn every_worker_that_notices_the_stop_names_the_writers_error() {
        let shared = Shared::default();
        shared.fail(IoError::Fs {
            path: "r.h5.tmp".into(),
            source: std::io::Error::other("File too large"),
        });
        shared.fail(IoError::Fs {
            path: "r.h5.tmp".into(),
            source: std::io::Error::other("a later error"),
        });
        let first = shared.take_error();
        assert!(matches!(first, IoError::Fs { .. }), "{first}");
        assert_eq!(first.to_string(), "r.h5.tmp: File too large");
        let second = shared.take_error().to_string();
        assert!(second.contains("r.h5.tmp: File too large"), "{second}");
        assert!(!second.contains("later"), "{second}");
        assert!(Shared::default()
            .take_error()
            .to_string()
            .contains("stopped after an error"));
    }
}
