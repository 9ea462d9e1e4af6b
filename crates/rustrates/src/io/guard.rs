//! What a sweep may write, replace, delete and hold: the rules that keep a user's files safe.
//!
//! - **Outputs are checked before anything is computed** ([`check_output`],
//!   [`check_parts_dir`]): a directory, a missing or unwritable folder, an input of the sweep
//!   (spec, template) or an existing file are refused up front. An existing file is replaced
//!   only when the caller says so (`overwrite`); an input never.
//! - **rustrates deletes only what it wrote.** A sweep directory records which folders
//!   rustrates created in it ([`OWNER_FILE`], written by [`ensure_sweep_dir`]); cleaning up
//!   ([`remove_sweep_files`]) removes the files of the sweep's own layout (record, manifest,
//!   inputs, the part files of its chunks and their temporary or set-aside copies), then the
//!   folders it created, each only when empty. A folder the user gave that rustrates did not
//!   create keeps everything else, and is never removed.
//! - **One writer per output** ([`OutputLock`]): a lock file holding pid, host and start time
//!   is created next to the output (or in the sweep directory, per shard). A second sweep to
//!   the same place is refused at once, naming the holder; a lock whose process is gone (same
//!   host, pid not running) is stale and taken over.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::parts::{part_file, tmp_path, Manifest, SweepRecord};
use super::IoError;

/// Name of the ownership record in a sweep directory.
pub const OWNER_FILE: &str = ".rustrates-owned.json";
/// Suffix of a part file set aside because it failed its checksum.
pub const CORRUPT_SUFFIX: &str = ".corrupt";
/// The time-series inputs of a sweep, in its directory.
pub(crate) const INPUTS_FILE: &str = "inputs.h5";

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("output {path} is a directory; give a file name, e.g. {}", .path.join("results.h5").display())]
    OutputIsDirectory { path: PathBuf },
    #[error("output {path} is {what} of this sweep; writing there would destroy it: choose another output path")]
    OutputIsInput { path: PathBuf, what: String },
    #[error("output {path} already exists; rustrates does not write over a file unless told to: choose another path, delete it, or allow it (--overwrite on the command line, overwrite=True in Python)")]
    OutputExists { path: PathBuf },
    #[error("cannot write {path}: folder {folder} does not exist; create it first or choose another path")]
    NoSuchFolder { path: PathBuf, folder: PathBuf },
    #[error("cannot write in {folder}: {source}; choose a writable place")]
    NotWritable { folder: PathBuf, source: std::io::Error },
    #[error("part directory {path} exists and is not a directory; choose another --parts-dir")]
    PartsDirIsFile { path: PathBuf },
    #[error("{what} is in use by another rustrates sweep (pid {pid} on host {host}, since {started} s after the epoch, lock file {lock}); wait for it to finish or stop it. If that process is gone, delete {lock}")]
    Locked {
        what: PathBuf,
        lock: PathBuf,
        pid: u32,
        host: String,
        started: u64,
    },
    #[error("{lock} exists but is not a rustrates lock file; rustrates does not remove files it did not write: delete it if no sweep is running, or choose another output")]
    ForeignLock { lock: PathBuf },
}

impl From<GuardError> for IoError {
    fn from(e: GuardError) -> IoError {
        IoError::Guard(Box::new(e))
    }
}

/// Checks that a results file may be written at `out` before anything is computed: not a
/// folder, not one of `protect` (the sweep's inputs), not an existing file unless
/// `overwrite`, and in an existing, writable folder.
pub fn check_output(out: &Path, protect: &[PathBuf], overwrite: bool) -> Result<(), GuardError> {
    if out.is_dir() {
        return Err(GuardError::OutputIsDirectory { path: out.into() });
    }
    if out.exists() {
        if let Some(p) = protect.iter().find(|p| same_file(p, out)) {
            return Err(GuardError::OutputIsInput {
                path: out.into(),
                what: format!("an input ({})", p.display()),
            });
        }
        if !overwrite {
            return Err(GuardError::OutputExists { path: out.into() });
        }
    }
    check_writable_folder(out, &folder_of(out))
}

/// Checks that the sweep directory `dir` can be used: a folder, or nothing yet below a
/// writable folder (missing folders between are created with it). Nothing is created here.
pub fn check_parts_dir(dir: &Path) -> Result<(), GuardError> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(GuardError::PartsDirIsFile { path: dir.into() });
        }
        return check_writable_folder(dir, dir);
    }
    let mut folder = folder_of(dir);
    while !folder.exists() && folder != Path::new(".") {
        match folder.parent() {
            Some(p) if !p.as_os_str().is_empty() => folder = p.to_path_buf(),
            _ => folder = PathBuf::from("."),
        }
    }
    if !folder.is_dir() {
        return Err(GuardError::PartsDirIsFile { path: folder });
    }
    check_writable_folder(dir, &folder)
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Creates and removes a probe file in `folder`: the one reliable test that a file can be
/// written there (permissions, read-only mounts, ACLs).
fn check_writable_folder(path: &Path, folder: &Path) -> Result<(), GuardError> {
    if !folder.is_dir() {
        return Err(GuardError::NoSuchFolder {
            path: path.into(),
            folder: folder.into(),
        });
    }
    let probe = folder.join(format!(".rustrates-probe-{}", std::process::id()));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        // A probe left by this pid (a crash between create and remove) proves writability.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(source) => Err(GuardError::NotWritable {
            folder: folder.into(),
            source,
        }),
    }
}

/// Which folders of a sweep directory rustrates created ("." the directory itself, "parts").
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Owned {
    created: Vec<String>,
}

fn read_owned(dir: &Path) -> Owned {
    fs::read_to_string(dir.join(OWNER_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Creates the sweep directory `dir` and its `parts/` folder where missing, recording in
/// [`OWNER_FILE`] which of them rustrates created (so cleaning up removes those folders and
/// never one the user made).
pub fn ensure_sweep_dir(dir: &Path) -> Result<(), IoError> {
    let parts = dir.join("parts");
    let mut owned = read_owned(dir);
    let before = owned.created.len();
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(IoError::fs(dir))?;
        owned.created.push(".".into());
    }
    if !parts.exists() {
        fs::create_dir(&parts).map_err(IoError::fs(&parts))?;
        owned.created.push("parts".into());
    }
    if owned.created.len() != before || (before == 0 && !dir.join(OWNER_FILE).exists()) {
        let text = serde_json::to_string(&owned).map_err(|source| IoError::Json {
            path: dir.join(OWNER_FILE),
            source,
        })?;
        super::parts::write_file(&dir.join(OWNER_FILE), text.as_bytes(), false)?;
    }
    Ok(())
}

/// What [`remove_sweep_files`] could not remove: folders rustrates created that hold files it
/// did not write. They are left as they are.
#[derive(Debug, Default, PartialEq)]
pub struct LeftBehind {
    pub folders: Vec<PathBuf>,
}

/// Removes the files of the sweep in `dir` that rustrates wrote, then the folders it created
/// when they are empty. Files it did not write stay, and so do their folders.
pub fn remove_sweep_files(dir: &Path) -> Result<LeftBehind, IoError> {
    let record = SweepRecord::load(dir).ok().flatten();
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(r) = &record {
        for &(s, e) in &r.chunks {
            let part = dir.join(part_file(s, e));
            files.push(tmp_path(&part));
            files.push(with_suffix(&part, CORRUPT_SUFFIX));
            files.push(part);
        }
    }
    // Parts the manifest names (the same files, or a record that could not be read).
    for line in fs::read_to_string(Manifest::path(dir)).unwrap_or_default().lines() {
        if let Ok(e) = serde_json::from_str::<super::parts::ManifestEntry>(line) {
            if e.file == part_file(e.start, e.end) {
                files.push(dir.join(&e.file));
            }
        }
    }
    for name in [INPUTS_FILE, "manifest.jsonl", "sweep.json"] {
        let p = dir.join(name);
        files.push(tmp_path(&p));
        files.push(p);
    }
    for f in &files {
        match fs::remove_file(f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IoError::Fs {
                    path: f.clone(),
                    source,
                })
            }
        }
    }
    let owned = read_owned(dir);
    let mut left = LeftBehind::default();
    let created = |name: &str| owned.created.iter().any(|c| c == name);
    let parts = dir.join("parts");
    if created("parts") && fs::remove_dir(&parts).is_err() && parts.exists() {
        left.folders.push(parts);
    }
    let _ = fs::remove_file(dir.join(OWNER_FILE));
    if created(".") && fs::remove_dir(dir).is_err() && dir.exists() {
        left.folders.push(dir.into());
    }
    Ok(left)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Sets a part file that failed its checksum aside (`….h5.corrupt`, replacing an older one),
/// so its chunk is recomputed; returns the new name.
pub fn set_aside(part: &Path) -> Result<PathBuf, IoError> {
    let aside = with_suffix(part, CORRUPT_SUFFIX);
    fs::rename(part, &aside).map_err(IoError::fs(part))?;
    Ok(aside)
}

/// Contents of a lock file.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct LockInfo {
    rustrates_lock: u32,
    pid: u32,
    host: String,
    started: u64,
    what: PathBuf,
}

/// A held lock; dropping it removes the lock file.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
}

impl OutputLock {
    /// The lock of the results file `out`: `<out>.lock`.
    pub fn of_output(out: &Path) -> Result<OutputLock, GuardError> {
        OutputLock::acquire(&with_suffix(out, ".lock"), out)
    }

    /// The lock of shard `index` of `count` in the sweep directory `dir`.
    pub fn of_shard(dir: &Path, index: usize, count: usize) -> Result<OutputLock, GuardError> {
        OutputLock::acquire(&dir.join(format!("shard-{index}-of-{count}.lock")), dir)
    }

    /// Creates `lock` exclusively; a lock of a live process is refused, a stale one taken over.
    pub fn acquire(lock: &Path, what: &Path) -> Result<OutputLock, GuardError> {
        let me = LockInfo {
            rustrates_lock: 1,
            pid: std::process::id(),
            host: host_name(),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            what: what.to_path_buf(),
        };
        let text = serde_json::to_string(&me).expect("a lock record serialises");
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).open(lock) {
                Ok(mut f) => {
                    f.write_all(text.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|source| GuardError::NotWritable {
                            folder: folder_of(lock),
                            source,
                        })?;
                    return Ok(OutputLock { path: lock.into() });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(GuardError::NotWritable {
                        folder: folder_of(lock),
                        source,
                    })
                }
            }
            let held = fs::read_to_string(lock).ok();
            let Some(info) = held.as_deref().and_then(|t| serde_json::from_str::<LockInfo>(t).ok()) else {
                // Empty: its owner is between create and write; anything else is not ours.
                if held.as_deref() == Some("") {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                }
                return Err(GuardError::ForeignLock { lock: lock.into() });
            };
            if info.host == me.host && !process_alive(info.pid) {
                // Stale: its process is gone. Taking over by rename keeps two late-comers from
                // both deleting a lock that one of them has just created.
                let stale = with_suffix(lock, &format!(".stale-{}", me.pid));
                if fs::rename(lock, &stale).is_ok() {
                    let _ = fs::remove_file(&stale);
                }
                continue;
            }
            return Err(GuardError::Locked {
                what: what.into(),
                lock: lock.into(),
                pid: info.pid,
                host: info.host,
                started: info.started,
            });
        }
        Err(GuardError::ForeignLock { lock: lock.into() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    // Without a way to ask, a lock is never taken over: the message says how to remove it.
    true
}

/// This machine's name (locks on shared filesystems name their host).
pub fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
        // or truncates, and the last byte stays 0.
        let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
        if r == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
    }
    "unknown".into()
}

/// The default sweep directory of the results file `out`: `<out>.parts`.
pub fn default_parts_dir(out: &Path) -> PathBuf {
    with_suffix(out, ".parts")
}

/// The checks of a sweep into `out` (through the sweep directory `parts_dir`, when it uses
/// one), done before anything is computed, then the output's lock.
#[cfg(feature = "hdf5")]
pub fn prepare_sweep(
    out: &Path,
    parts_dir: Option<&Path>,
    opts: &super::h5::FileOptions,
) -> Result<OutputLock, IoError> {
    check_output(out, &opts.protect, opts.overwrite)?;
    if let Some(dir) = parts_dir {
        check_parts_dir(dir)?;
    }
    Ok(OutputLock::of_output(out)?)
}

/// Ends a sweep into `out` that held `lock`: when it succeeded, removes what it wrote in its
/// sweep directory (unless the parts are kept) and notes folders left because they hold other
/// files; when it failed, removes the unfinished results file (whose name the lock made this
/// sweep's) so a full disk is not left full. Finished parts stay for the rerun.
pub fn finish_sweep(
    result: Result<crate::sweep::SweepSummary, IoError>,
    out: &Path,
    parts_dir: Option<&Path>,
    keep_parts: bool,
    lock: OutputLock,
) -> Result<crate::sweep::SweepSummary, IoError> {
    let mut summary = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_file(tmp_path(out));
            if let Some(dir) = parts_dir {
                remove_part_temporaries(dir);
            }
            drop(lock);
            return Err(e);
        }
    };
    if let (Some(dir), false) = (parts_dir, keep_parts) {
        let left = remove_sweep_files(dir)?;
        for folder in left.folders {
            summary.notes.push(format!(
                "{} was kept: rustrates removed the files it wrote there, the others are not its own",
                folder.display()
            ));
        }
    }
    drop(lock);
    Ok(summary)
}

/// Removes the unfinished part files (`….h5.tmp`) of the sweep in `dir`: what a failed write
/// left (finished parts stay, for the rerun).
fn remove_part_temporaries(dir: &Path) {
    if let Ok(Some(r)) = SweepRecord::load(dir) {
        for &(s, e) in &r.chunks {
            let _ = fs::remove_file(tmp_path(&dir.join(part_file(s, e))));
        }
    }
}

/// A note per part file set aside by [`Manifest::load_verified`].
pub fn set_aside_notes(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            format!(
                "{} did not match its checksum: it was set aside under that name and its chunk computed again",
                f.display()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = walk(dir, dir);
        v.sort();
        v
    }

    fn walk(root: &Path, dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).expect("under root").display().to_string());
            if p.is_dir() {
                out.extend(walk(root, &p));
            }
        }
        out
    }

    fn record(chunks: Vec<(usize, usize)>) -> SweepRecord {
        SweepRecord {
            fingerprint: "f".into(),
            circuit_name: "Net".into(),
            n_points: 4,
            chunks,
            template_source: String::new(),
            template_path: String::new(),
            settings: serde_json::json!({}),
            rustrates_version: "0".into(),
            compression: false,
        }
    }

    /// A sweep directory laid out by hand, as `PartSink` leaves it: the record, two parts, a
    /// temporary and a set-aside one, the manifest; plus a file of the user's.
    fn populate(dir: &Path) {
        record(vec![(0, 2), (2, 4)]).create_or_check(dir).expect("record");
        for name in [
            "parts/chunk_00000000_00000002.h5",
            "parts/chunk_00000002_00000004.h5.tmp",
            "parts/chunk_00000002_00000004.h5.corrupt",
            "manifest.jsonl",
            INPUTS_FILE,
        ] {
            fs::write(dir.join(name), b"x").expect("write");
        }
    }

    #[test]
    fn remove_sweep_files_removes_what_rustrates_wrote_and_the_folders_it_made() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("made");
        populate(&dir);
        let left = remove_sweep_files(&dir).expect("removed");
        assert_eq!(left, LeftBehind::default());
        assert!(!dir.exists());
    }

    #[test]
    fn remove_sweep_files_keeps_the_users_files_and_folder() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("given");
        fs::create_dir(&dir).expect("the user's folder");
        fs::write(dir.join("notes.txt"), b"mine").expect("write");
        populate(&dir);
        fs::write(dir.join("parts/chunk_x.h5"), b"mine too").expect("write");
        let before = names(&dir);
        let left = remove_sweep_files(&dir).expect("removed");
        let after = names(&dir);
        eprintln!("before {before:?}\nafter {after:?}");
        assert_eq!(after, ["notes.txt", "parts", "parts/chunk_x.h5"]);
        assert_eq!(
            left.folders,
            [dir.join("parts")],
            "parts/ was made by rustrates but holds a file of the user's"
        );
    }

    #[test]
    fn lock_refuses_a_live_holder_and_takes_over_a_dead_one() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let out = tmp.path().join("r.h5");
        let held = OutputLock::of_output(&out).expect("free");
        let err = OutputLock::of_output(&out).expect_err("held by this process");
        match &err {
            GuardError::Locked { pid, host, .. } => {
                assert_eq!((*pid, host.as_str()), (std::process::id(), host_name().as_str()));
            }
            other => panic!("{other}"),
        }
        drop(held);
        assert!(!tmp.path().join("r.h5.lock").exists());
        // A holder that is gone: a child that has exited (and been reaped).
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("reaped");
        let lock = tmp.path().join("r.h5.lock");
        let info = LockInfo {
            rustrates_lock: 1,
            pid: dead,
            host: host_name(),
            started: 0,
            what: out.clone(),
        };
        fs::write(&lock, serde_json::to_string(&info).expect("json")).expect("write");
        let taken = OutputLock::of_output(&out).expect("stale lock taken over");
        let now: LockInfo = serde_json::from_str(&fs::read_to_string(&lock).expect("read")).expect("ours");
        assert_eq!(now.pid, std::process::id());
        drop(taken);
        // Not a lock of ours: never removed.
        fs::write(&lock, "user data").expect("write");
        assert!(matches!(
            OutputLock::of_output(&out),
            Err(GuardError::ForeignLock { .. })
        ));
        assert_eq!(fs::read_to_string(&lock).expect("kept"), "user data");
    }
}
