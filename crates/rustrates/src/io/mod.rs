//! Stage 7: results on disk.
//!
//! Input: a sweep's stream of blocks ([`crate::sweep::SweepSink`]) or a single simulation's
//! samples. Output: HDF5 result files (feature `hdf5`, layout in [`h5`]), part files with a
//! manifest for interrupted, sharded and cluster sweeps ([`parts`]), CSV for single runs.
//!
//! Invariant: a file that looks complete is complete — final files appear only by rename and
//! carry `complete = 1`; part files are `*.h5.tmp` until their chunk is finished. A sweep of
//! one chunk skips the part files and writes its final file the same way (`out.tmp`, renamed).

// Errors are built once per failed call, never in the stepping loop: their typed fields are
// worth more than a smaller `Result`.
#![allow(clippy::result_large_err)]

pub mod csv;
pub mod guard;
pub mod parts;

#[cfg(feature = "hdf5")]
pub mod h5;
#[cfg(feature = "hdf5")]
pub mod pytables;

pub use csv::write_csv;
pub use parts::{fingerprint, record_finished_part, record_part_bytes, Manifest, ManifestEntry, SweepRecord};

#[cfg(feature = "hdf5")]
pub use h5::{
    merge, merge_marking_failed, merge_marking_failed_into, read_part, read_results, run_parts, sweep_record_of,
    sweep_to_file, FailedChunk, FileOptions, IncrementalMerge, MergedPoints, PartSink,
};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{path}: {source}")]
    Fs { path: PathBuf, source: std::io::Error },
    #[error("{path}: invalid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path} cannot be read ({source}): without it rustrates cannot tell which sweep the parts next to it belong to, so it cannot resume; use another directory, or delete that one if its parts are not needed")]
    UnreadableRecord { path: PathBuf, source: serde_json::Error },
    #[error("{dir} holds part files or a manifest but no sweep.json: rustrates cannot tell which sweep they belong to, so it cannot resume from them; use another directory, or delete that one if its parts are not needed")]
    PartsWithoutRecord { dir: PathBuf },
    #[error(transparent)]
    Guard(Box<guard::GuardError>),
    #[cfg(feature = "hdf5")]
    #[error("{path}: HDF5: {source}")]
    Hdf5 { path: PathBuf, source: hdf5::Error },
    #[error("{dir} holds parts of a different sweep (fingerprint {found}, this sweep {expected}); use another directory or delete it")]
    FingerprintMismatch {
        dir: PathBuf,
        expected: String,
        found: String,
    },
    #[error("cannot merge: {} chunk(s) missing{}", .missing.len(), example(.missing))]
    MissingChunks { missing: Vec<(usize, usize)> },
    #[error("cannot merge: {} of the sweep's {total} chunk(s) missing from {}{}; run the shards that compute them (every shard of the sweep, or the whole sweep) into these directories, then merge again", .missing.len(), dirs_text(.dirs), example(.missing))]
    MissingChunksIn {
        missing: Vec<(usize, usize)>,
        total: usize,
        dirs: Vec<PathBuf>,
    },
    #[error("nothing to merge: {}", nothing_text(.dirs))]
    NoSweepIn { dirs: Vec<(PathBuf, bool)> },
    #[error("{path} does not match the SHA-256 in the manifest (expected {expected}, found {found}); rerun the same sweep or shard command: it sets the file aside and recomputes that chunk")]
    CorruptPart {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path} is not a complete rustrates results file (missing or unfinished: {what})")]
    Incomplete { path: PathBuf, what: &'static str },
    #[error("{path} has no output column '{name}': ask for one of {}", .available.join(", "))]
    UnknownOutput {
        path: PathBuf,
        name: String,
        available: Vec<String>,
    },
    #[error("{path} is not a finished rustrates part file (no chunk_start attribute, or a .tmp still being written): give a file that parts/ of a sweep directory lists in its manifest.jsonl")]
    NotAPart { path: PathBuf },
    #[error("input '{name}' has {len} values, not a whole number of rows of {points} points")]
    InputShape { name: String, len: usize, points: usize },
    #[error("nothing to merge: no sweep.json in any of the given directories")]
    NothingToMerge,
    #[error("no chunk of the sweep was computed (all {chunks} failed): there is nothing to write")]
    NoChunkComputed { chunks: usize },
    #[error("text '{text:.40}' cannot be stored in HDF5 (it contains a NUL byte)")]
    BadText { text: String },
    #[error(transparent)]
    Sweep(#[from] crate::sweep::SweepError),
}

fn example(missing: &[(usize, usize)]) -> String {
    missing
        .first()
        .map(|(s, e)| format!(", e.g. points {s}..{e}"))
        .unwrap_or_default()
}

fn dirs_text(dirs: &[PathBuf]) -> String {
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    names.join(", ")
}

/// `(directory, exists)` per directory given to a merge.
fn nothing_text(dirs: &[(PathBuf, bool)]) -> String {
    let each: Vec<String> = dirs
        .iter()
        .map(|(d, exists)| {
            if *exists {
                format!(
                    "{} holds no sweep.json (not a sweep directory, or its sweep never started)",
                    d.display()
                )
            } else {
                format!("{} does not exist", d.display())
            }
        })
        .collect();
    format!(
        "{}; give the part directories the sweep or its shards wrote (by default `<out>.parts`)",
        each.join("; ")
    )
}

impl IoError {
    pub(crate) fn fs(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> IoError {
        let path = path.into();
        move |source| IoError::Fs { path, source }
    }
}
