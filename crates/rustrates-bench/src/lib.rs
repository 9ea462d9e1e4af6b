//! What the bench binaries share: where the repository is, the reference sweep (two QIF
//! populations, Euler, dt 1e-4, r of PC every 10 steps) as a spec and as a CLI spec file,
//! building and reading the plain C programs of `shared/bench`, and timing child processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rustrates::solve::{Method, Signal, SimConfig};
use rustrates::sweep::{Grid, ParamMap, Statistic, SweepSpec};

/// The reference sweep's step.
pub const DT: f64 = 1e-4;
/// The reference sweep samples r every `EVERY` steps.
pub const EVERY: usize = 10;

/// The command line of a bench binary: `--flag value` pairs and bare switches, read in turn.
pub struct Flags {
    args: std::iter::Skip<std::env::Args>,
}

impl Flags {
    pub fn from_env() -> Self {
        Flags {
            args: std::env::args().skip(1),
        }
    }

    pub fn next_flag(&mut self) -> Option<String> {
        self.args.next()
    }

    /// The word after `flag`.
    pub fn value(&mut self, flag: &str) -> Result<String, String> {
        self.args.next().ok_or_else(|| format!("{flag} needs a value"))
    }

    /// The word after `flag`, parsed as a `T`.
    pub fn parsed<T: std::str::FromStr>(&mut self, flag: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.value(flag)?.parse().map_err(|e| format!("{flag}: {e}"))
    }
}

/// The workspace root (the bench crate's `../..`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A bench's `main`: an error is printed and the process exits with status 2.
pub fn exit_on_error(result: Result<(), String>) {
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// The `rustrates` command line tool beside this bench binary (same target directory and
/// profile; `cargo build -p rustrates-cli` puts it there).
pub fn cli_beside_bench() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("the bench binary has no directory")?;
    Ok(dir.join("rustrates"))
}

/// `rustrates sweep SPEC --out OUT -q --threads N`.
pub fn sweep_command(cli: &Path, spec: &Path, out: &Path, threads: usize) -> Command {
    let mut cmd = Command::new(cli);
    cmd.arg("sweep")
        .arg(spec)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .arg("--threads")
        .arg(threads.to_string());
    cmd
}

/// The reference model file of the sweep (`examples/models/reference_qif.yaml`).
pub fn reference_template() -> PathBuf {
    repo_root().join("examples/models/reference_qif.yaml")
}

/// The reference sweep's circuit, `pc_iin` of [`reference_template`].
pub fn reference_circuit() -> Result<rustrates::model::Circuit, String> {
    let template = format!("{}/pc_iin", reference_template().display());
    let loaded = rustrates::model::load_circuit(&template, &rustrates::template::LoadOptions::default());
    loaded.map(|l| l.circuit).map_err(|e| e.to_string())
}

/// `linspace(-5, 5, n)`, the reference sweep's values of each eta.
pub fn eta_values(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            if n == 1 {
                -5.0
            } else {
                -5.0 + 10.0 * i as f64 / (n - 1) as f64
            }
        })
        .collect()
}

/// The reference sweep over a `side × side` grid of (eta_PC, eta_IIN), PyRates' permuted
/// order, for `time` seconds.
pub fn reference_spec(side: usize, time: f64, keep_traces: bool, summaries: &[Statistic]) -> SweepSpec {
    let mut values = indexmap::IndexMap::new();
    values.insert("eta_pc".to_string(), eta_values(side));
    values.insert("eta_iin".to_string(), eta_values(side));
    let grid = Grid::from_values(&values, true).expect("equal lengths");
    let map = ParamMap::new()
        .nodes("eta_pc", &["qif_op/eta"], &["PC"])
        .nodes("eta_iin", &["qif_op/eta"], &["IIN"]);
    let sim = SimConfig::new(Method::Euler, time, DT, Some(DT * EVERY as f64));
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.inputs = vec![("PC/qif_op/I_ext".into(), Signal::Constant(1.0))];
    spec.outputs = vec![("r".into(), "PC/qif_op/r".into())];
    spec.keep_traces = keep_traces;
    spec.summaries = summaries.to_vec();
    spec
}

/// The reference sweep as a `rustrates sweep` spec file (summaries mean, std, max), with
/// `extra` YAML lines appended.
pub fn reference_spec_yaml(side: usize, time: f64, keep_traces: bool, extra: &str) -> String {
    format!(
        "template: {}/pc_iin\nsimulation_time: {time}\nstep_size: {DT}\nsampling_step_size: {}\nsolver: euler\n\
         permute_grid: true\nparam_grid: {{eta_pc: {{linspace: [-5, 5, {side}]}}, eta_iin: {{linspace: [-5, 5, {side}]}}}}\n\
         param_map:\n  eta_pc: {{vars: [qif_op/eta], nodes: [PC]}}\n  eta_iin: {{vars: [qif_op/eta], nodes: [IIN]}}\n\
         inputs: {{PC/qif_op/I_ext: 1.0}}\noutputs: {{r: PC/qif_op/r}}\nsummaries: [mean, std, max]\nkeep_traces: {keep_traces}\n{extra}",
        reference_template().display(),
        DT * EVERY as f64
    )
}

/// Compiles one of the plain C programs into `dir/name` (`-O3 -march=native`, then
/// `extra_flags`).
pub fn build_c(source: &Path, dir: &Path, name: &str, extra_flags: &[&str]) -> Result<PathBuf, String> {
    let exe = dir.join(name);
    let status = Command::new("gcc")
        .args(["-O3", "-march=native"])
        .args(extra_flags)
        .arg("-o")
        .arg(&exe)
        .arg(source)
        .arg("-lm")
        .status()
        .map_err(|e| format!("gcc: {e}"))?;
    if !status.success() {
        return Err(format!("gcc failed on {}", source.display()));
    }
    Ok(exe)
}

/// The number a C program printed as `key=value` (`key` given with its `=`).
pub fn c_field(output: &str, key: &str) -> Result<f64, String> {
    output
        .split_whitespace()
        .find_map(|f| f.strip_prefix(key))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected output of the C program: {output}"))
}

/// Best of `repeats` wall times of `f`.
pub fn best<F: FnMut() -> Result<f64, String>>(repeats: usize, mut f: F) -> Result<f64, String> {
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        best = best.min(f()?);
    }
    Ok(best)
}

/// The median (upper median of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `cmd` to its end: wall seconds; an error with its stderr when it fails.
pub fn run_process(cmd: &mut Command) -> Result<f64, String> {
    let start = Instant::now();
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Runs `cmd` to its end: wall seconds and peak resident memory in MB (`wait4`'s
/// `ru_maxrss`, that process only).
#[cfg(unix)]
pub fn run_process_with_peak(cmd: &mut Command) -> Result<(f64, f64), String> {
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for this child only.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; status and usage are valid pointers.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    if waited != pid {
        return Err(format!("{cmd:?}: wait4 failed: {}", std::io::Error::last_os_error()));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut err = String::new();
        if let Some(mut e) = child.stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("{cmd:?} failed ({status}): {err}"));
    }
    // ru_maxrss is in KiB on Linux.
    Ok((secs, usage.ru_maxrss as f64 * 1024.0 / 1e6))
}
