//! Compiling generated C with the system compiler, and the on-disk library cache.
//!
//! A library is keyed by a SHA-256 of everything that can change its machine code: the
//! source, the flags, the compiler's version line, the CPU (model name and feature flags, so
//! a cluster node never loads a library built for a newer CPU) and rustrates' version. It is
//! built under a unique temporary name in the cache directory and renamed into place, so
//! concurrent jobs sharing the directory never see a half-written file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::kernel::{KernelError, KernelOptions};

/// `-ffp-contract=off`: no FMA contraction, so results match the reference evaluator and do
/// not depend on the lane count. No `-ffast-math`, for the same reason.
pub(crate) const FLAGS: &[&str] = &[
    "-O3",
    "-march=native",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-fPIC",
    "-shared",
];

/// The compiler command: `$CC` (may carry arguments, split on whitespace) or `cc`.
pub(crate) fn compiler_command() -> Vec<String> {
    let cc = std::env::var("CC")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "cc".to_string());
    cc.split_whitespace().map(str::to_string).collect()
}

type VersionCache = Mutex<HashMap<Vec<String>, Result<String, String>>>;

/// First line of `CC --version`, run once per process and compiler command.
pub(crate) fn compiler_version(cmd: &[String]) -> Result<String, KernelError> {
    static CACHE: OnceLock<VersionCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let no_compiler = |reason: String| KernelError::NoCompiler {
        compiler: cmd.join(" "),
        reason,
    };
    if let Some(r) = cache
        .lock()
        .map_err(|_| no_compiler("version cache poisoned".into()))?
        .get(cmd)
    {
        return r.clone().map_err(no_compiler);
    }
    let memo = version_memo_path(cmd);
    let remembered = memo
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .filter(|v| !v.trim().is_empty());
    let r = match (remembered, cmd.split_first()) {
        (Some(v), _) => Ok(v.trim().to_string()),
        (None, None) => Err("empty compiler command".to_string()),
        (None, Some((prog, args))) => match Command::new(prog).args(args).arg("--version").output() {
            Err(e) => Err(e.to_string()),
            Ok(out) if !out.status.success() => Err(format!("`--version` exited with {}", out.status)),
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let version = text.lines().next().unwrap_or("").trim().to_string();
                if let Some(p) = &memo {
                    remember_version(p, &version);
                }
                Ok(version)
            }
        },
    };
    if let Ok(mut c) = cache.lock() {
        c.insert(cmd.to_vec(), r.clone());
    }
    r.map_err(no_compiler)
}

/// Where the version line of this exact compiler binary is remembered across processes:
/// running `cc --version` costs ≈ 10 ms, a large share of a small sweep. Keyed by the
/// resolved binary's path, size and modification time, so an upgraded compiler is asked again.
fn version_memo_path(cmd: &[String]) -> Option<PathBuf> {
    let (prog, args) = cmd.split_first()?;
    let resolved = if prog.contains('/') {
        PathBuf::from(prog)
    } else {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())?
    };
    let real = std::fs::canonicalize(resolved).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    let mtime = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    let mut h = Sha256::new();
    h.update(real.as_os_str().as_encoded_bytes());
    h.update(meta.len().to_le_bytes());
    h.update(mtime.as_nanos().to_le_bytes());
    for a in args {
        h.update(a.as_bytes());
        h.update([0]);
    }
    let key: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    Some(
        cache_dir(&KernelOptions::default())
            .join("compilers")
            .join(format!("{key}.txt")),
    )
}

/// Best effort: a memo that cannot be written only costs the next process a `--version`.
fn remember_version(path: &Path, version: &str) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, version).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Model name and feature flags of the first CPU (Linux); the architecture elsewhere.
fn cpu_identity() -> &'static str {
    static CPU: OnceLock<String> = OnceLock::new();
    CPU.get_or_init(|| {
        let mut id = std::env::consts::ARCH.to_string();
        if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
            for key in ["model name", "flags", "Features", "CPU part"] {
                let found = info
                    .lines()
                    .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key));
                if let Some(line) = found {
                    id.push('\n');
                    id.push_str(line.trim());
                }
            }
        }
        id
    })
}

/// Where libraries are cached: the options, `$RUSTRATES_CACHE_DIR`, `$XDG_CACHE_HOME/rustrates`,
/// `~/.cache/rustrates`, else the temporary directory.
pub(crate) fn cache_dir(opts: &KernelOptions) -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = &opts.cache_dir {
        return d.clone();
    }
    if let Some(d) = env("RUSTRATES_CACHE_DIR") {
        return d;
    }
    if let Some(d) = env("XDG_CACHE_HOME") {
        return d.join("rustrates");
    }
    if let Some(d) = env("HOME") {
        return d.join(".cache").join("rustrates");
    }
    std::env::temp_dir().join("rustrates-cache")
}

/// Hex SHA-256 cache key of a source for this compiler and machine.
pub(crate) fn cache_key(source: &str, cmd: &[String], version: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        source,
        &cmd.join(" "),
        &FLAGS.join(" "),
        version,
        cpu_identity(),
        env!("CARGO_PKG_VERSION"),
    ] {
        // Length-prefixed so that no two different tuples hash the same bytes.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn library_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("rustrates-{key}.{}", std::env::consts::DLL_EXTENSION))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KernelError + '_ {
    move |source| KernelError::CacheIo {
        path: path.display().to_string(),
        source,
    }
}

/// Compile `source` into `target` (write to a temporary name, then rename into place).
pub(crate) fn compile(source: &str, cmd: &[String], target: &Path) -> Result<(), KernelError> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let stem = target
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("rustrates-kernel");
    let tmp = format!(
        "{stem}.tmp{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let tmp_c = dir.join(format!("{tmp}.c"));
    let tmp_so = dir.join(format!("{tmp}.{}", std::env::consts::DLL_EXTENSION));
    std::fs::write(&tmp_c, source).map_err(io_err(&tmp_c))?;
    let cleanup = || {
        let _ = std::fs::remove_file(&tmp_c);
        let _ = std::fs::remove_file(&tmp_so);
    };
    let Some((prog, args)) = cmd.split_first() else {
        cleanup();
        return Err(KernelError::NoCompiler {
            compiler: String::new(),
            reason: "empty compiler command".into(),
        });
    };
    let out = Command::new(prog)
        .args(args)
        .args(FLAGS)
        .arg("-o")
        .arg(&tmp_so)
        .arg(&tmp_c)
        .arg("-lm")
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            cleanup();
            return Err(KernelError::NoCompiler {
                compiler: cmd.join(" "),
                reason: e.to_string(),
            });
        }
    };
    if !out.status.success() {
        cleanup();
        let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        stderr.push_str(&String::from_utf8_lossy(&out.stdout));
        return Err(KernelError::CompileFailed {
            status: out.status.code().unwrap_or(-1),
            stderr,
        });
    }
    let r = std::fs::rename(&tmp_so, target).map_err(io_err(target));
    // Keep the source beside the library for inspection; losing that race is harmless.
    let _ = std::fs::rename(&tmp_c, target.with_extension("c"));
    cleanup();
    COMPILES.fetch_add(1, Ordering::Relaxed);
    r
}

/// Number of compiler invocations in this process (tests use it to prove cache hits).
pub(crate) static COMPILES: AtomicUsize = AtomicUsize::new(0);
