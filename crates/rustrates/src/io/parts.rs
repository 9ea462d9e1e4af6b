//! Part files: the one mechanism for partial results (interrupted runs, shards, clusters).
//!
//! A sweep directory `DIR` holds
//! - `DIR/sweep.json`: the [`SweepRecord`] — fingerprint, chunk ranges, template source and
//!   settings, everything `merge` needs to write the final file;
//! - `DIR/parts/chunk_{start:08}_{end:08}.h5`: one finished chunk each, written as
//!   `….h5.tmp` and renamed when complete;
//! - `DIR/manifest.jsonl`: one line per finished chunk, appended (and fsynced) after the
//!   rename: `{"chunk", "start", "end", "file", "sha256"}`.
//!
//! A chunk counts as done when the manifest lists it and its file exists. A torn last line
//! (a crash while appending) is ignored, so that chunk is simply recomputed.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use std::ops::Range;

use super::IoError;
use crate::sweep::Grid;

/// SHA-256 over the template source, the grid (keys and values) and the settings JSON.
pub fn fingerprint(template_source: &str, grid: &Grid, settings: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(b"rustrates-sweep-v1\0");
    h.update((template_source.len() as u64).to_le_bytes());
    h.update(template_source.as_bytes());
    h.update((grid.keys().len() as u64).to_le_bytes());
    for (key, col) in grid.keys().iter().zip(grid.columns()) {
        h.update((key.len() as u64).to_le_bytes());
        h.update(key.as_bytes());
        h.update((col.len() as u64).to_le_bytes());
        for x in col {
            h.update(x.to_le_bytes());
        }
    }
    h.update(settings.to_string().as_bytes());
    format!("{:x}", h.finalize())
}

/// `DIR/sweep.json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepRecord {
    pub fingerprint: String,
    pub circuit_name: String,
    pub n_points: usize,
    pub chunks: Vec<(usize, usize)>,
    pub template_source: String,
    pub template_path: String,
    pub settings: serde_json::Value,
    pub rustrates_version: String,
    /// Deflate the traces of the merged file.
    pub compression: bool,
}

impl SweepRecord {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("sweep.json")
    }
    pub fn load(dir: &Path) -> Result<Option<SweepRecord>, IoError> {
        let path = Self::path(dir);
        match fs::read_to_string(&path) {
            // An unreadable record is "cannot resume", never "no sweep here".
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|source| IoError::UnreadableRecord { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IoError::Fs { path, source: e }),
        }
    }
    /// Creates `dir` with this record, or checks that the record already there is the same
    /// sweep.
    pub fn create_or_check(&self, dir: &Path) -> Result<(), IoError> {
        self.create_or_check_with(dir, true)
    }
    /// [`SweepRecord::create_or_check`]; `durable = false` skips the fsync (scratch
    /// directories whose files are shipped elsewhere).
    pub fn create_or_check_with(&self, dir: &Path, durable: bool) -> Result<(), IoError> {
        super::guard::ensure_sweep_dir(dir)?;
        if let Some(existing) = Self::load(dir)? {
            if existing.fingerprint != self.fingerprint {
                return Err(IoError::FingerprintMismatch {
                    dir: dir.to_path_buf(),
                    expected: self.fingerprint.clone(),
                    found: existing.fingerprint,
                });
            }
            return Ok(());
        }
        if holds_parts(dir) {
            return Err(IoError::PartsWithoutRecord { dir: dir.to_path_buf() });
        }
        let text = serde_json::to_string_pretty(self).map_err(|source| IoError::Json {
            path: Self::path(dir),
            source,
        })?;
        write_file(&Self::path(dir), text.as_bytes(), durable)
    }
}

/// Whether `dir` holds a manifest or a chunk's part file (finished or not): the traces of a
/// sweep, whose record must then be there too.
fn holds_parts(dir: &Path) -> bool {
    if Manifest::path(dir).exists() {
        return true;
    }
    let Ok(entries) = fs::read_dir(dir.join("parts")) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.starts_with("chunk_") && name.contains(".h5")
    })
}

/// Writes `path` through `path.tmp` + fsync (when `durable`) + rename. A failed write (a full
/// disk) removes its temporary file rather than leave it filling the disk.
pub(crate) fn write_file(path: &Path, bytes: &[u8], durable: bool) -> Result<(), IoError> {
    let tmp = tmp_path(path);
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        Ok(())
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(IoError::Fs { path: tmp, source });
    }
    fs::rename(&tmp, path).map_err(IoError::fs(path))
}

/// Before a merge: at least one of `dirs` must hold a sweep record, else the error names each
/// directory and what is wrong with it (missing, or no `sweep.json`).
pub fn check_merge_dirs(dirs: &[&Path]) -> Result<(), IoError> {
    if dirs.iter().any(|d| SweepRecord::path(d).is_file()) {
        return Ok(());
    }
    Err(IoError::NoSweepIn {
        dirs: dirs.iter().map(|d| (d.to_path_buf(), d.exists())).collect(),
    })
}

/// After a merge into `out` (as `out.tmp`): on failure, removes the temporary file (a full
/// disk is not left full) and names the directories and chunk count in a missing-chunks
/// error.
pub fn after_merge<T>(result: Result<T, IoError>, dirs: &[&Path], out: &Path) -> Result<T, IoError> {
    let err = match result {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let _ = fs::remove_file(tmp_path(out));
    Err(match err {
        IoError::MissingChunks { missing } => {
            let total = dirs
                .iter()
                .find_map(|d| SweepRecord::load(d).ok().flatten())
                .map_or(missing.len(), |r| r.chunks.len());
            IoError::MissingChunksIn {
                missing,
                total,
                dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
            }
        }
        other => other,
    })
}

/// `x.h5` → `x.h5.tmp`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Relative path of a chunk's part file.
pub fn part_file(start: usize, end: usize) -> String {
    format!("parts/chunk_{start:08}_{end:08}.h5")
}

/// Records chunk `index` (points `range`), whose finished part file is in place in `dir`:
/// hashes it and appends its manifest line (fsynced when `durable`). From then on the chunk
/// counts as done.
pub fn record_finished_part(
    dir: &Path,
    index: usize,
    range: Range<usize>,
    durable: bool,
) -> Result<ManifestEntry, IoError> {
    let file = part_file(range.start, range.end);
    let entry = ManifestEntry {
        chunk: index,
        start: range.start,
        end: range.end,
        sha256: sha256_file(&dir.join(&file))?,
        file,
    };
    Manifest::append_with(dir, &entry, durable)?;
    Ok(entry)
}

/// Records chunk `index` (points `range`) from the bytes of its part file computed elsewhere
/// (a cluster worker's): the part is written as `.tmp`, fsynced and renamed, then its
/// manifest line is appended, as [`super::PartSink`] records a chunk it computed.
pub fn record_part_bytes(
    dir: &Path,
    index: usize,
    range: Range<usize>,
    bytes: &[u8],
) -> Result<ManifestEntry, IoError> {
    write_file(&dir.join(part_file(range.start, range.end)), bytes, true)?;
    record_finished_part(dir, index, range, true)
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestEntry {
    pub chunk: usize,
    pub start: usize,
    pub end: usize,
    /// Relative to the sweep directory.
    pub file: String,
    pub sha256: String,
}

/// `DIR/manifest.jsonl`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("manifest.jsonl")
    }
    /// Reads the manifest, keeping the last entry per chunk whose file exists.
    pub fn load(dir: &Path) -> Result<Manifest, IoError> {
        let path = Self::path(dir);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(e) => return Err(IoError::Fs { path, source: e }),
        };
        let mut entries: Vec<ManifestEntry> = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(IoError::fs(&path))?;
            // A torn line from a crash mid-append is not a finished chunk.
            let Ok(e) = serde_json::from_str::<ManifestEntry>(&line) else {
                continue;
            };
            if !dir.join(&e.file).is_file() {
                continue;
            }
            entries.retain(|x| x.chunk != e.chunk);
            entries.push(e);
        }
        Ok(Manifest { entries })
    }
    /// [`Manifest::load`], then checks every listed part against its SHA-256: a part that
    /// fails is set aside (`….h5.corrupt`) and left out, so its chunk is computed again.
    /// Returns the manifest and the files set aside.
    pub fn load_verified(dir: &Path) -> Result<(Manifest, Vec<PathBuf>), IoError> {
        let mut m = Manifest::load(dir)?;
        let mut aside = Vec::new();
        let mut kept = Vec::with_capacity(m.entries.len());
        for e in m.entries {
            let path = dir.join(&e.file);
            if sha256_file(&path)? == e.sha256 {
                kept.push(e);
            } else {
                let moved = super::guard::set_aside(&path)?;
                log::warn!(
                    "{} does not match its SHA-256 in the manifest: set aside as {}, chunk {} is computed again",
                    path.display(),
                    moved.display(),
                    e.chunk
                );
                aside.push(moved);
            }
        }
        m.entries = kept;
        Ok((m, aside))
    }
    pub fn contains(&self, chunk: usize) -> bool {
        self.entries.iter().any(|e| e.chunk == chunk)
    }
    /// Appends one line and fsyncs it.
    pub fn append(dir: &Path, entry: &ManifestEntry) -> Result<(), IoError> {
        Self::append_with(dir, entry, true)
    }
    /// [`Manifest::append`]; `durable = false` skips the fsync.
    pub fn append_with(dir: &Path, entry: &ManifestEntry, durable: bool) -> Result<(), IoError> {
        let path = Self::path(dir);
        let mut line = serde_json::to_string(entry).map_err(|source| IoError::Json {
            path: path.clone(),
            source,
        })?;
        line.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(IoError::fs(&path))?;
        // A torn last line (a crash mid-append) has no newline: without one first, this entry
        // would be glued to it and lost with it.
        if ends_torn(&f).map_err(IoError::fs(&path))? {
            line.insert(0, '\n');
        }
        f.write_all(line.as_bytes()).map_err(IoError::fs(&path))?;
        if durable {
            f.sync_all().map_err(IoError::fs(&path))?;
        }
        Ok(())
    }
}

/// Whether a non-empty file does not end with a newline.
fn ends_torn(mut f: &fs::File) -> std::io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    if f.metadata()?.len() == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1))?;
    f.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String, IoError> {
    let mut f = fs::File::open(path).map_err(IoError::fs(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(IoError::fs(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    /// A record of fingerprint `aaa`, 4 points cut into `chunks`.
    fn record(chunks: &[(usize, usize)]) -> SweepRecord {
        SweepRecord {
            fingerprint: "aaa".into(),
            circuit_name: "Net".into(),
            n_points: 4,
            chunks: chunks.to_vec(),
            template_source: String::new(),
            template_path: String::new(),
            settings: serde_json::json!({}),
            rustrates_version: "0".into(),
            compression: true,
        }
    }

    fn grid(v: &[f64]) -> Grid {
        let m: IndexMap<String, Vec<f64>> = [("a".to_string(), v.to_vec())].into_iter().collect();
        Grid::from_values(&m, false).unwrap()
    }

    #[test]
    fn fingerprint_changes_with_template_grid_and_settings() {
        let s = serde_json::json!({"dt": 1e-4});
        let base = fingerprint("src", &grid(&[1.0, 2.0]), &s);
        assert_eq!(base, fingerprint("src", &grid(&[1.0, 2.0]), &s));
        assert_ne!(base, fingerprint("src ", &grid(&[1.0, 2.0]), &s));
        assert_ne!(base, fingerprint("src", &grid(&[1.0, 2.5]), &s));
        assert_ne!(
            base,
            fingerprint("src", &grid(&[1.0, 2.0]), &serde_json::json!({"dt": 1e-3}))
        );
        assert_eq!(base.len(), 64);
    }

    #[test]
    fn manifest_torn_line_and_missing_file_are_not_done() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("parts")).unwrap();
        let e0 = ManifestEntry {
            chunk: 0,
            start: 0,
            end: 4,
            file: part_file(0, 4),
            sha256: "x".into(),
        };
        let e1 = ManifestEntry {
            chunk: 1,
            start: 4,
            end: 8,
            file: part_file(4, 8),
            sha256: "y".into(),
        };
        fs::write(dir.path().join(&e0.file), b"part").unwrap();
        Manifest::append(dir.path(), &e0).unwrap();
        Manifest::append(dir.path(), &e1).unwrap(); // its file does not exist
        let mut f = OpenOptions::new()
            .append(true)
            .open(Manifest::path(dir.path()))
            .unwrap();
        f.write_all(b"{\"chunk\": 2, \"sta").unwrap();
        let m = Manifest::load(dir.path()).unwrap();
        assert_eq!(m.entries, vec![e0]);
        assert!(m.contains(0) && !m.contains(1) && !m.contains(2));
    }

    #[test]
    fn sweep_record_other_fingerprint_is_error() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record(&[(0, 4)]);
        rec.create_or_check(dir.path()).unwrap();
        rec.create_or_check(dir.path()).unwrap();
        let other = SweepRecord {
            fingerprint: "bbb".into(),
            ..rec.clone()
        };
        let err = other.create_or_check(dir.path()).unwrap_err();
        assert!(
            matches!(err, IoError::FingerprintMismatch { ref found, .. } if found == "aaa"),
            "{err}"
        );
        assert_eq!(SweepRecord::load(dir.path()).unwrap(), Some(rec));
    }

    /// Issue 14 item 9: after a torn last line, the next append starts a line of its own, so
    /// the chunk it records is not lost with the torn text.
    #[test]
    fn manifest_append_after_a_torn_line_keeps_the_new_entry() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("parts")).unwrap();
        let entry = |chunk: usize| ManifestEntry {
            chunk,
            start: 2 * chunk,
            end: 2 * chunk + 2,
            file: part_file(2 * chunk, 2 * chunk + 2),
            sha256: "h".into(),
        };
        for c in [0, 1] {
            fs::write(dir.path().join(entry(c).file), b"part").unwrap();
        }
        Manifest::append(dir.path(), &entry(0)).unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(Manifest::path(dir.path()))
            .unwrap();
        f.write_all(b"{\"chunk\": 1, \"sta").unwrap();
        Manifest::append(dir.path(), &entry(1)).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap().entries, vec![entry(0), entry(1)]);
    }

    /// Issue 14 item 3: parts without a record, or a record that cannot be read, are "cannot
    /// resume", never a fresh start over them or "the same sweep".
    #[test]
    fn sweep_record_missing_or_unreadable_next_to_parts_cannot_resume() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record(&[(0, 2), (2, 4)]);
        rec.create_or_check(dir.path()).unwrap();
        fs::write(dir.path().join(part_file(0, 2)), b"part").unwrap();
        fs::remove_file(SweepRecord::path(dir.path())).unwrap();
        let err = rec.create_or_check(dir.path()).unwrap_err();
        assert!(matches!(err, IoError::PartsWithoutRecord { .. }), "{err}");
        assert!(!SweepRecord::path(dir.path()).exists(), "no record written over them");
        fs::write(SweepRecord::path(dir.path()), "{\"fingerprint\": ").unwrap();
        let err = rec.create_or_check(dir.path()).unwrap_err();
        assert!(matches!(err, IoError::UnreadableRecord { .. }), "{err}");
        assert!(err.to_string().contains("cannot resume"));
    }
}
