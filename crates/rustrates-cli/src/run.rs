//! `simulate`, `sweep` and `merge`: running models and joining results.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rustrates::io::h5::{self, FileOptions};
use rustrates::kernel::{Backend, Precision};
use rustrates::model::{load_circuit, Loaded};
use rustrates::solve::{Method, Signal, SimConfig};
use rustrates::sweep::run::{Progress, RunControl, Shard};
use rustrates::sweep::{Grid, MapEntry, MapTargets, ParamMap, SweepSpec};
use rustrates::syntax::render;
use rustrates::template::LoadOptions;

use crate::{signal, spec};

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

pub(crate) struct SimulateArgs {
    pub template: String,
    pub simulation_time: f64,
    pub dt: f64,
    pub dts: Option<f64>,
    pub solver: String,
    pub backend: String,
    pub float32: bool,
    pub set: Vec<String>,
    pub input: Vec<String>,
    pub output: Vec<String>,
    pub out: Option<PathBuf>,
    pub plot: Option<PathBuf>,
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
            let fo = FileOptions::new(&loaded.source_text, &args.template);
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

pub(crate) struct SweepArgs {
    pub spec: PathBuf,
    pub out: PathBuf,
    pub threads: Option<usize>,
    pub shard: Option<String>,
    pub parts_dir: Option<PathBuf>,
    pub no_compression: bool,
    pub quiet: bool,
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
    let mut spec = file.spec;
    if args.threads.is_some() {
        spec.threads = args.threads;
    }
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let mut fo = FileOptions::new(&loaded.source_text, &file.template);
    fo.compression = !args.no_compression;
    fo.trace_type = file.trace_type;
    fo.parts_dir = args.parts_dir.clone();

    let bar = Arc::new(progress_bar(spec.param_grid.len(), spec.steps(), args.quiet));
    let started = Instant::now();
    let progress_bar = Arc::clone(&bar);
    let progress = move |p: Progress| {
        progress_bar.set_position(p.points_done as u64);
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        progress_bar.set_message(format!("{:.3e} lane-steps/s", p.lane_steps as f64 / secs));
    };
    let ctrl = RunControl {
        progress: Some(&progress),
        shard,
        ..RunControl::default()
    };
    let summary = match shard {
        Some(_) => {
            let dir = args.parts_dir.clone().unwrap_or_else(|| parts_dir_of(&args.out));
            let (summary, written) = h5::run_parts(&spec, &loaded.circuit, &dir, &fo, ctrl)?;
            bar.finish_and_clear();
            eprintln!(
                "shard {}: {written} chunk(s) written to {} ({} skipped as already done); join with `rustrates merge {} --out {}`",
                args.shard.as_deref().unwrap_or_default(),
                dir.display(),
                summary.chunks_skipped,
                dir.display(),
                args.out.display()
            );
            summary
        }
        None => {
            let summary = h5::sweep_to_file(&spec, &loaded.circuit, &args.out, &fo, ctrl)?;
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
            summary
        }
    };
    let _ = summary;
    Ok(ExitCode::SUCCESS)
}

fn parts_dir_of(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".parts");
    PathBuf::from(s)
}

fn absolute(p: &Path) -> PathBuf {
    if p.as_os_str().is_empty() {
        return std::env::current_dir().unwrap_or_default();
    }
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

pub(crate) fn merge(dirs: &[PathBuf], out: &Path) -> anyhow::Result<ExitCode> {
    let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
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
