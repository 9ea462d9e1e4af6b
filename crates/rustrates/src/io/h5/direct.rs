//! Raw trace chunks written with `O_DIRECT`: the disk takes them from the workers' page-aligned
//! buffers, with no copy into the page cache.
//!
//! Why: for an uncompressed float64 sweep the page-cache copy was what varied and cost (0.07 to
//! 0.83 s of system time for the 400 MB of a 100×100 sweep, on fresh page-cache pages; README,
//! "Traces to disk"). How: the file is created with chunk-sized allocations aligned to
//! [`PAGE`] (`H5Pset_alignment`) and `/traces` with every chunk allocated at creation and never
//! filled (`H5D_ALLOC_TIME_EARLY`, `H5D_FILL_TIME_NEVER`); the writer looks up each chunk's
//! address (`H5Dget_chunk_info_by_coord`) and writes its whole pages there through a second
//! descriptor opened `O_DIRECT`, and the bytes after the last whole page (when a chunk is not a
//! multiple of a page) through an ordinary descriptor: never past the chunk's end, so whatever
//! HDF5 puts between chunks is never touched. HDF5 never writes those chunks; it writes the
//! metadata, at close. The fsync before the rename covers both descriptors (it syncs the file).
//!
//! Two writes in flight ([`DIRECT_IO_THREADS`] I/O threads take the chunks of whole pages from
//! the writer thread): with one, the disk had nothing to do from the end of each write to the
//! start of the next (0.05–0.13 s of a 100×100 sweep, session 11's timeline); two in flight
//! took 0.4–0.7 s off it on a loaded machine, where a `SCHED_FIFO` writer with one write did
//! not (so the gap is not only the writer's wait for a core). The writer thread waits only
//! when both are busy; their buffers come back to it for reuse, and the file's finish waits
//! for both before the fsync. The first chunk is written on the writer thread, so a filesystem
//! that refuses `O_DIRECT` at the first write is found there, as before.
//!
//! Automatic: used for uncompressed whole-point chunks of a file that is synced (`durable`),
//! where the filesystem takes `O_DIRECT` (tmpfs and some others refuse it with `EINVAL`, at the
//! open or at the first write: then HDF5 writes the chunks, through the page cache, as before).
//! `RUSTRATES_DIRECT_IO=0` turns it off (the bench's comparison).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hdf5::Dataset;

use super::codec::{ChunkBytes, PAGE};
use crate::io::IoError;

/// Set to `0`: trace chunks go through the page cache even where `O_DIRECT` would work.
pub const DIRECT_IO_ENV: &str = "RUSTRATES_DIRECT_IO";

/// Whether chunks are written directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// Where the filesystem takes it (the default).
    Auto,
    /// Never.
    Off,
    /// Tests: an error wherever a chunk's whole pages could not go directly, so a passing
    /// test proves the direct path ran.
    #[cfg(test)]
    Required,
}

#[cfg(test)]
thread_local! {
    /// Tests choose the mode for the files created on their thread (the one that runs the
    /// sweep), as with the compression threshold.
    pub(super) static MODE: std::cell::Cell<Option<Mode>> = const { std::cell::Cell::new(None) };
}

pub(super) fn mode() -> Mode {
    #[cfg(test)]
    if let Some(m) = MODE.with(|m| m.get()) {
        return m;
    }
    match std::env::var_os(DIRECT_IO_ENV) {
        Some(v) if v == "0" => Mode::Off,
        _ => Mode::Auto,
    }
}

/// The direct writer of one file's trace chunks (on the writer thread).
pub(super) struct DirectChunks {
    /// Opened `O_WRONLY | O_DIRECT`.
    direct: File,
    /// Opened `O_WRONLY`: the bytes of a chunk after its last whole page.
    tails: File,
    path: PathBuf,
    required: bool,
    /// Set once a direct write went through: a later `EINVAL` is an error, not a refusal.
    proven: bool,
    /// Off after the filesystem refused the first direct write.
    refused: bool,
    /// An aligned copy of a chunk handed over in unaligned memory (not the workers' buffers).
    scratch: ChunkBytes,
    /// Whole-page chunks' writes in flight on I/O threads.
    in_flight: InFlight,
}

impl DirectChunks {
    /// The direct writer of the file at `path` (already created by HDF5); `None` where the
    /// filesystem refuses `O_DIRECT`.
    pub(super) fn open(path: &Path, mode: Mode) -> Result<Option<DirectChunks>, IoError> {
        let required = match mode {
            Mode::Off => return Ok(None),
            Mode::Auto => false,
            #[cfg(test)]
            Mode::Required => true,
        };
        let direct = match open_direct(path) {
            Ok(f) => f,
            Err(e) if !required && e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(IoError::fs(path)(e)),
        };
        let tails = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(IoError::fs(path))?;
        let shared = direct.try_clone().map_err(IoError::fs(path))?;
        let in_flight = InFlight::start(Arc::new(shared), DIRECT_IO_THREADS, path)?;
        Ok(Some(DirectChunks {
            direct,
            tails,
            path: path.to_path_buf(),
            required,
            proven: false,
            refused: false,
            scratch: ChunkBytes::default(),
            in_flight,
        }))
    }

    /// Hands the chunk of `ds` that starts at point `first` to an I/O thread, which writes it
    /// while this thread goes on: `Err(bytes)` when it cannot go that way (no I/O threads,
    /// before a first direct write proved the filesystem takes them, a buffer or address not
    /// page aligned, a tail after the last whole page): then [`DirectChunks::write`] it.
    pub(super) fn write_in_flight(
        &mut self,
        ds: &Dataset,
        first: usize,
        bytes: ChunkBytes,
    ) -> Result<Result<(), ChunkBytes>, IoError> {
        let aligned = bytes.as_ptr().align_offset(PAGE) == 0 && bytes.len().is_multiple_of(PAGE) && !bytes.is_empty();
        if !(self.proven && !self.refused && aligned) {
            return Ok(Err(bytes));
        }
        let Some(offset) = chunk_address(ds, first, bytes.len(), &self.path)? else {
            return Ok(Err(bytes));
        };
        self.in_flight.send(WriteJob { offset, bytes }, &self.path)?;
        Ok(Ok(()))
    }

    /// The buffers of the writes the I/O threads have finished, for reuse.
    pub(super) fn written(&mut self) -> Result<Vec<ChunkBytes>, IoError> {
        self.in_flight.collect(false, &self.path)
    }

    /// Waits for every write in flight; the first error among them.
    pub(super) fn wait(&mut self) -> Result<(), IoError> {
        self.in_flight.collect(true, &self.path).map(drop)
    }

    /// Writes the chunk of `ds` (`/traces`, raw) that starts at point `first`. `false`: not
    /// written (its address is not page aligned, or the filesystem refused), HDF5 must write it.
    pub(super) fn write(&mut self, ds: &Dataset, first: usize, bytes: &[u8]) -> Result<bool, IoError> {
        if self.refused {
            return Ok(false);
        }
        let Some(addr) = chunk_address(ds, first, bytes.len(), &self.path)? else {
            return self.decline(|| format!("the chunk at point {first} is not allocated at a page boundary"));
        };
        let source: &[u8] = if bytes.as_ptr().align_offset(PAGE) == 0 {
            bytes
        } else {
            let mut scratch = std::mem::take(&mut self.scratch).sized(bytes.len());
            scratch.copy_from_slice(bytes);
            self.scratch = scratch;
            &self.scratch
        };
        let whole = source.len() / PAGE * PAGE;
        if whole > 0 {
            if let Err(e) = write_all_at(&self.direct, &source[..whole], addr) {
                if e.raw_os_error() == Some(libc::EINVAL) && !self.proven && !self.required {
                    // The filesystem opened the file O_DIRECT but takes no direct writes;
                    // nothing was written, HDF5 writes this chunk and the rest.
                    self.refused = true;
                    return Ok(false);
                }
                return Err(IoError::fs(&self.path)(e));
            }
            self.proven = true;
        }
        if whole < source.len() {
            write_all_at(&self.tails, &source[whole..], addr + whole as u64).map_err(IoError::fs(&self.path))?;
        }
        Ok(true)
    }

    fn decline(&self, why: impl FnOnce() -> String) -> Result<bool, IoError> {
        if self.required {
            return Err(IoError::Hdf5 {
                path: self.path.clone(),
                source: hdf5::Error::from(why()),
            });
        }
        Ok(false)
    }
}

/// I/O threads per file writing whole-page chunks `O_DIRECT`: two writes in flight, so the
/// disk has the next one while the thread of the one it finished waits for a core. Each holds
/// one chunk's buffer while it writes.
pub const DIRECT_IO_THREADS: usize = 2;

struct WriteJob {
    offset: u64,
    bytes: ChunkBytes,
}

/// Direct writes of whole-page chunks on I/O threads. At most one write per thread is in
/// flight: the hand-over waits for a free thread.
struct InFlight {
    jobs: Option<SyncSender<WriteJob>>,
    done: Receiver<std::io::Result<ChunkBytes>>,
    threads: Vec<JoinHandle<()>>,
    /// Sent and not yet collected from `done`.
    pending: usize,
}

impl InFlight {
    fn start(file: Arc<File>, n: usize, path: &Path) -> Result<InFlight, IoError> {
        let (jobs, queue) = sync_channel::<WriteJob>(0);
        let queue = Arc::new(Mutex::new(queue));
        let (finished, done) = channel();
        let mut threads = Vec::with_capacity(n);
        for _ in 0..n {
            let (file, queue, finished) = (Arc::clone(&file), Arc::clone(&queue), finished.clone());
            let spawned = std::thread::Builder::new()
                .name("rustrates-direct-io".into())
                .spawn(move || loop {
                    let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(WriteJob { offset, bytes }) = job else {
                        return;
                    };
                    let result = write_all_at(&file, &bytes, offset).map(|()| bytes);
                    if finished.send(result).is_err() {
                        return;
                    }
                })
                .map_err(IoError::fs(path))?;
            threads.push(spawned);
        }
        Ok(InFlight {
            jobs: Some(jobs),
            done,
            threads,
            pending: 0,
        })
    }

    fn send(&mut self, job: WriteJob, path: &Path) -> Result<(), IoError> {
        let jobs = self.jobs.as_ref().expect("sender kept until drop");
        jobs.send(job)
            .map_err(|_| IoError::fs(path)(std::io::Error::other("the direct-write threads stopped")))?;
        self.pending += 1;
        Ok(())
    }

    /// The finished writes' buffers; with `wait`, after every pending write finished.
    fn collect(&mut self, wait: bool, path: &Path) -> Result<Vec<ChunkBytes>, IoError> {
        let mut buffers = Vec::new();
        while self.pending > 0 {
            let result = if wait {
                self.done
                    .recv()
                    .map_err(|_| std::io::Error::other("the direct-write threads stopped"))
            } else {
                match self.done.try_recv() {
                    Ok(r) => Ok(r),
                    Err(_) => break,
                }
            };
            self.pending -= 1;
            buffers.push(result.and_then(|r| r).map_err(IoError::fs(path))?);
        }
        Ok(buffers)
    }
}

impl Drop for InFlight {
    /// Writes in flight finish (their buffers are the threads'); the threads end.
    fn drop(&mut self) {
        drop(self.jobs.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// Elsewhere no `O_DIRECT`: refused as a filesystem without it is.
#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> std::io::Result<File> {
    Err(std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// The file offset of the chunk of `/traces` that starts at point `first`, when it is
/// allocated, page aligned and `len` bytes long (what the direct write needs); `None` else.
fn chunk_address(ds: &Dataset, first: usize, len: usize, path: &Path) -> Result<Option<u64>, IoError> {
    let offset: [hdf5_sys::h5::hsize_t; 3] = [first as _, 0, 0];
    let (mut mask, mut addr, mut size) = (0u32, 0, 0);
    // SAFETY: `ds` is an open chunked dataset of rank 3 and `offset` a chunk's position; the
    // out-pointers are valid for the call.
    let status = hdf5::sync::sync(|| unsafe {
        hdf5_sys::h5d::H5Dget_chunk_info_by_coord(ds.id(), offset.as_ptr(), &mut mask, &mut addr, &mut size)
    });
    if status < 0 {
        return Err(IoError::Hdf5 {
            path: path.to_path_buf(),
            source: hdf5::Error::from(format!("looking up the chunk of /traces at point {first} failed")),
        });
    }
    let aligned = addr != hdf5_sys::h5::HADDR_UNDEF && addr % PAGE as u64 == 0 && size as usize == len;
    Ok(aligned.then_some(addr))
}
