//! `simulate`, `sweep` and `merge`: running models and joining results.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rustrates::io::guard;
use rustrates::io::h5::{self, FileOptions};
use rustrates::kernel::{Backend, Precision};
use rustrates::model::{load_circuit, Loaded};
use rustrates::solve::{Method, Signal, SimConfig};
use rustrates::sweep::{Grid, MapEntry, MapTargets, ParamMap, SweepSpec};
use rustrates::sweep::{Progress, RunControl, Shard};
use rustrates::syntax::render;
use rustrates::template::LoadOptions;

use crate::{interrupt, signal, spec};

/// Load a template, printing its diagnostics; `None` when it has errors.
pub(crate) fn load(template: &str, opts: &LoadOptions) -> Option<Loaded> {
    match load_circuit(template, opts) {
        Ok(loaded) => {
            if !loaded.warnings.is_empty() {
                eprint!("{}", render::render_all_full(&loaded.warnings, &loaded.sources));
            }
            Some(loaded)
        }
        Err(failure) => {
            eprint!("{}", render::render_all_full(&failure.diagnostics, &failure.sources));
            None
        }
    }
}

#[derive(clap::Args)]
pub(crate) struct SimulateArgs {
    pub template: String,
    /// Simulation time T in seconds.
    #[arg(long = "T", alias = "simulation-time")]
    pub simulation_time: f64,
    /// Integration step size.
    #[arg(long, alias = "step-size")]
    pub dt: f64,
    /// Sampling step size (a whole multiple of dt; default dt).
    #[arg(long, alias = "sampling-step-size")]
    pub dts: Option<f64>,
    #[arg(long, default_value = "euler")]
    pub solver: String,
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Compute in single precision.
    #[arg(long)]
    pub float32: bool,
    /// `node/op/var=value`: a parameter, or the initial value of a state variable.
    #[arg(long)]
    pub set: Vec<String>,
    /// `node/op/var=FILE|constant`: an input signal (CSV/text or .npy, one row per step).
    #[arg(long)]
    pub input: Vec<String>,
    /// `key=node/op/var` (node may be `all`); default: every state variable.
    #[arg(long)]
    pub output: Vec<String>,
    /// `.csv` or `.h5` (by extension); default: CSV on standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also draw the traces into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Replace an existing file at `--out`.
    #[arg(long)]
    pub overwrite: bool,
}

fn split_assignment<'a>(text: &'a str, flag: &str) -> anyhow::Result<(&'a str, &'a str)> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok((k.trim(), v.trim())),
        _ => bail!("{flag} expects NAME=VALUE, got `{text}`"),
    }
}

pub(crate) fn parse_method(name: &str) -> anyhow::Result<Method> {
    Method::parse(name).with_context(|| format!("unknown solver `{name}`; use euler, heun, rk4 or rk45 (scipy)"))
}

pub(crate) fn parse_backend(name: &str) -> anyhow::Result<Backend> {
    Backend::parse(name).with_context(|| format!("unknown backend `{name}`; use auto, jit, c or reference"))
}

/// One simulation: a sweep of a single point whose grid holds the `--set` values.
pub(crate) fn simulate(args: SimulateArgs, opts: &LoadOptions) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(&args.template, opts) else {
        return Ok(ExitCode::from(1));
    };
    let protect = protected_inputs(Path::new(&args.template), &loaded);
    if let Some(out) = &args.out {
        guard::check_output(out, &protect, args.overwrite)?;
    }
    let mut keys = Vec::new();
    let mut row = Vec::new();
    let mut map = ParamMap::new();
    for s in &args.set {
        let (path, value) = split_assignment(s, "--set")?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("--set {path}: `{value}` is not a number"))?;
        keys.push(path.to_string());
        row.push(value);
        map.entries.insert(
            path.to_string(),
            MapEntry {
                vars: vec![path.to_string()],
                targets: MapTargets::Paths,
            },
        );
    }
    let grid = Grid::from_rows(keys, &[row])?;
    let sim = SimConfig {
        simulation_time: args.simulation_time,
        dt: args.dt,
        sampling_step: args.dts,
        method: parse_method(&args.solver)?,
        cutoff: 0.0,
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.backend = parse_backend(&args.backend)?;
    spec.precision = if args.float32 { Precision::F32 } else { Precision::F64 };
    for i in &args.input {
        let (path, value) = split_assignment(i, "--input")?;
        let signal = match value.parse::<f64>() {
            Ok(x) => Signal::Constant(x),
            Err(_) => signal::read_signal_file(Path::new(value)).map_err(|e| anyhow::anyhow!("--input {path}: {e}"))?,
        };
        spec.inputs.push((path.to_string(), signal));
    }
    for o in &args.output {
        let (key, path) = split_assignment(o, "--output")?;
        spec.outputs.push((key.to_string(), path.to_string()));
    }
    if spec.outputs.is_empty() {
        // Without --output, every state variable, keyed by its operator/variable path.
        let circuit = &loaded.circuit;
        for ode in &circuit.odes {
            let name = &circuit.var(ode.var).name;
            let key = name.split_once('/').map_or(name.as_str(), |(_, rest)| rest);
            let node = circuit.var(ode.var).node.clone().unwrap_or_default();
            let pair = (key.to_string(), format!("{node}/{key}"));
            if !spec.outputs.contains(&pair) {
                spec.outputs.push(pair);
            }
        }
    }
    let mut sink = rustrates::sweep::MemorySink::new();
    rustrates::sweep::run(&spec, &loaded.circuit, &mut sink)?;
    let result = sink.into_result().context("the simulation produced no result")?;
    if let Some(rustrates::solve::PointStatus::NonFinite { t }) = result.status.first() {
        eprintln!("warning: the state became NaN or infinite at t = {t}; outputs are NaN from then on");
    }
    let nc = result.columns.len();
    let traces = result.traces.as_deref().unwrap_or_default();
    match &args.out {
        Some(path) if path.extension().is_some_and(|e| e == "h5" || e == "hdf5") => {
            let mut fo = FileOptions::new(&loaded.source_text, &args.template);
            fo.overwrite = args.overwrite;
            fo.protect = protect;
            h5::sweep_to_file(&spec, &loaded.circuit, path, &fo, RunControl::default())?;
            eprintln!("wrote {}", path.display());
        }
        Some(path) => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            );
            rustrates::io::csv::write_csv(&mut f, &result.time, &result.columns, traces)?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            rustrates::io::csv::write_csv(&mut out, &result.time, &result.columns, traces)?;
        }
    }
    if let Some(png) = &args.plot {
        let series: Vec<(String, Vec<f64>)> = (0..nc)
            .map(|c| {
                let (node, key) = &result.columns[c];
                (
                    format!("{node}/{key}"),
                    (0..result.time.len()).map(|k| traces[k * nc + c]).collect(),
                )
            })
            .collect();
        crate::plot::lines(png, &args.template, &result.time, &series)?;
        eprintln!("wrote {}", png.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub(crate) struct SweepArgs {
    pub spec: PathBuf,
    #[arg(long, default_value = "results.h5")]
    pub out: PathBuf,
    /// Worker threads (default: all cores; RAYON_NUM_THREADS is honoured). More than the
    /// cores are capped at the cores unless `--oversubscribe`.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run as many threads as `--threads` asks even beyond the cores.
    #[arg(long)]
    pub oversubscribe: bool,
    /// `i/n`: run one n-th of the chunks into part files (for job arrays); join with `merge`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Where part files go (default: `<out>.parts`).
    #[arg(long)]
    pub parts_dir: Option<PathBuf>,
    /// Deflate traces of 64 MiB or more (shuffle + deflate level 1, HDF5's standard
    /// filters, read with no plugin): float64 files ≈ 1.4× smaller, float32 ≈ 1.8×, at
    /// ≈ 90 MB/s per thread, several times the sweep's own time. Off by default.
    #[arg(long)]
    pub compress: bool,
    /// Store traces uncompressed: the default now; accepted for scripts that pass it.
    #[arg(long, hide = true, conflicts_with = "compress")]
    pub no_compression: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Replace an existing results file at `--out` (never the spec or the template).
    #[arg(long)]
    pub overwrite: bool,
}

fn parse_shard(text: &str) -> anyhow::Result<Shard> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((index, count)) if count > 0 && index < count => Ok(Shard { index, count }),
        _ => bail!(
            "--shard expects i/n with 0 <= i < n (e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT), got `{text}`"
        ),
    }
}

fn progress_bar(total: usize, steps: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} points  {msg}  ETA {eta}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    let _ = steps;
    bar
}

pub(crate) fn sweep(args: SweepArgs, opts: &LoadOptions) -> anyhow::Result<ExitCode> {
    let file = match spec::load(&args.spec) {
        Ok(f) => f,
        Err((sources, diags)) => {
            eprint!("{}", render::render_all_full(&diags, &sources));
            return Ok(ExitCode::from(1));
        }
    };
    let opts = LoadOptions {
        search_path: opts.search_path.clone(),
        cwd: Some(absolute(&file.base_dir)),
    };
    let Some(loaded) = load(&file.template, &opts) else {
        return Ok(ExitCode::from(1));
    };
    // What the engine would refuse, pointed at where the spec file says it.
    if let Err(e) = rustrates::sweep::check(&file.spec, &loaded.circuit) {
        eprint!("{}", render::render_all_full(&file.locate(&e), &file.sources));
        return Ok(ExitCode::from(1));
    }
    let mut spec = file.spec;
    if args.threads.is_some() {
        spec.threads = args.threads;
    }
    spec.oversubscribe = args.oversubscribe;
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let mut fo = FileOptions::new(&loaded.source_text, &file.template);
    fo.compression = args.compress;
    fo.trace_type = file.trace_type;
    fo.parts_dir = args.parts_dir.clone();
    fo.overwrite = args.overwrite;
    fo.protect = protected_inputs(&args.spec, &loaded);

    let bar = Arc::new(progress_bar(spec.param_grid.len(), spec.steps(), args.quiet));
    let started = Instant::now();
    let progress_bar = Arc::clone(&bar);
    let progress = move |p: Progress| {
        progress_bar.set_position(p.points_done as u64);
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        progress_bar.set_message(format!("{:.3e} lane-steps/s", p.lane_steps as f64 / secs));
    };
    interrupt::install();
    let ctrl = RunControl {
        progress: Some(&progress),
        shard,
        cancel: Some(&interrupt::STOP),
        ..RunControl::default()
    };
    let dir = args
        .parts_dir
        .clone()
        .unwrap_or_else(|| guard::default_parts_dir(&args.out));
    let result = match shard {
        Some(s) => {
            // Shards of one sweep share its directory: each locks only its own share.
            guard::check_parts_dir(&dir)?;
            guard::ensure_sweep_dir(&dir)?;
            let _lock = guard::OutputLock::of_shard(&dir, s.index, s.count)?;
            h5::run_parts(&spec, &loaded.circuit, &dir, &fo, ctrl).map(|(summary, written)| {
                bar.finish_and_clear();
                eprintln!(
                    "shard {}/{}: {written} chunk(s) written to {} ({} skipped as already done)",
                    s.index,
                    s.count,
                    dir.display(),
                    summary.chunks_skipped,
                );
                eprintln!(
                    "when all {} shards have finished, join them with `rustrates merge {} --out {}` (give every directory the shards wrote to)",
                    s.count,
                    dir.display(),
                    args.out.display()
                );
                summary
            })
        }
        None => h5::sweep_to_file(&spec, &loaded.circuit, &args.out, &fo, ctrl).inspect(|summary| {
            bar.finish_and_clear();
            eprintln!(
                "wrote {}: {} point(s) run, {} resumed from earlier parts, {} diverged; backend {:?}, {:.2} s",
                args.out.display(),
                summary.points_run,
                summary.points_skipped,
                summary.points_failed,
                summary.backend,
                started.elapsed().as_secs_f64()
            );
        }),
    };
    bar.finish_and_clear();
    match result {
        Ok(summary) => {
            for note in &summary.notes {
                eprintln!("note: {note}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if interrupt::requested() && is_cancelled(&e) => {
            eprintln!("{}", interrupted_message(&dir, &spec));
            Ok(ExitCode::from(interrupt::exit_status()))
        }
        Err(e) => Err(e.into()),
    }
}

fn is_cancelled(e: &rustrates::io::IoError) -> bool {
    matches!(
        e,
        rustrates::io::IoError::Sweep(rustrates::sweep::SweepError::Cancelled { .. })
    )
}

/// What an interrupted sweep kept and how to go on.
fn interrupted_message(dir: &Path, spec: &SweepSpec) -> String {
    let total = spec.chunks().len();
    let kept = rustrates::io::Manifest::load(dir).map_or(0, |m| m.entries.len());
    if kept == 0 {
        return format!(
            "interrupted: no chunk had finished, nothing was kept (of {total} chunk(s)); the same command starts the sweep again"
        );
    }
    format!(
        "interrupted: {kept} of {total} chunk(s) finished and kept in {}; run the same command again to resume (only the missing chunks are computed)",
        dir.display()
    )
}

/// Files a sweep's output must never replace: the spec, and the template when it is a file.
fn protected_inputs(spec_path: &Path, loaded: &Loaded) -> Vec<PathBuf> {
    let mut out = vec![spec_path.to_path_buf()];
    for (_, file) in loaded.sources.files() {
        let p = PathBuf::from(&file.name);
        if p.is_file() {
            out.push(p);
        }
    }
    out
}

fn absolute(p: &Path) -> PathBuf {
    if p.as_os_str().is_empty() {
        return std::env::current_dir().unwrap_or_default();
    }
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

pub(crate) fn merge(dirs: &[PathBuf], out: &Path, overwrite: bool) -> anyhow::Result<ExitCode> {
    let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    guard::check_output(out, &[], overwrite)?;
    let _lock = guard::OutputLock::of_output(out)?;
    h5::merge(&refs, out)?;
    eprintln!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parses_slurm_style_and_rejects_out_of_range() {
        assert_eq!(parse_shard("2/5").expect("valid"), Shard { index: 2, count: 5 });
        assert!(parse_shard("5/5").is_err());
        assert!(parse_shard("1").is_err());
        assert!(parse_shard("0/0").is_err());
    }
}
