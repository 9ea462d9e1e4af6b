//! Ratio benchmark: rustrates vs the plain C program of `shared/bench` (and PyRates when a
//! Python with `pyrates` is given), all measured in this one run, reported as ratios.
//!
//! ```text
//! cargo build --release -p rustrates-cli -p rustrates-bench
//! target/release/ratios [--points 10000] [--c-source ../shared/bench/montbrio_grid.c]
//!                       [--pyrates-python /path/to/venv/bin/python] [--json out.json]
//! ```
//!
//! Cases (the reference sweep: two QIF populations, Euler, dt 1e-4, T 5, r of PC every 10 steps):
//! - kernel: N points in-process, traces kept in memory, one thread, per back end, vs the C
//!   program's own timed region (its `sim_s`);
//! - process: the whole `rustrates sweep` process (summaries only, and traces written to HDF5
//!   with and without compression) vs the whole C process, one and two threads;
//! - PyRates: 5×5 and 20×20 `grid_search` end to end vs the `rustrates sweep` process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rustrates::kernel::Backend;
use rustrates::model::load_circuit;
use rustrates::solve::{Method, Signal, SimConfig};
use rustrates::sweep::{Grid, MemorySink, ParamMap, Statistic, SweepSpec};
use rustrates::template::LoadOptions;

const T: f64 = 5.0;
const DT: f64 = 1e-4;
const EVERY: usize = 10;

struct Args {
    points: usize,
    c_source: PathBuf,
    pyrates_python: Option<PathBuf>,
    json: Option<PathBuf>,
    repeats: usize,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        points: 10_000,
        c_source: repo_root().join("../shared/bench/montbrio_grid.c"),
        pyrates_python: None,
        json: None,
        repeats: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--points" => a.points = value()?.parse().map_err(|e| format!("--points: {e}"))?,
            "--c-source" => a.c_source = PathBuf::from(value()?),
            "--pyrates-python" => a.pyrates_python = Some(PathBuf::from(value()?)),
            "--json" => a.json = Some(PathBuf::from(value()?)),
            "--repeats" => a.repeats = value()?.parse().map_err(|e| format!("--repeats: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let side = (a.points as f64).sqrt().round() as usize;
    if side * side != a.points {
        return Err("--points must be a perfect square".into());
    }
    Ok(a)
}

fn linspace(n: usize) -> Vec<f64> {
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

fn reference_spec(side: usize, keep_traces: bool, summaries: &[Statistic]) -> SweepSpec {
    let mut values = indexmap::IndexMap::new();
    values.insert("eta_pc".to_string(), linspace(side));
    values.insert("eta_iin".to_string(), linspace(side));
    let grid = Grid::from_values(&values, true).expect("equal lengths");
    let map = ParamMap::new()
        .nodes("eta_pc", &["qif_op/eta"], &["PC"])
        .nodes("eta_iin", &["qif_op/eta"], &["IIN"]);
    let sim = SimConfig {
        simulation_time: T,
        dt: DT,
        sampling_step: Some(DT * EVERY as f64),
        method: Method::Euler,
        cutoff: 0.0,
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.inputs = vec![("PC/qif_op/I_ext".into(), Signal::Constant(1.0))];
    spec.outputs = vec![("r".into(), "PC/qif_op/r".into())];
    spec.keep_traces = keep_traces;
    spec.summaries = summaries.to_vec();
    spec
}

fn spec_yaml(side: usize, keep_traces: bool) -> String {
    let template = repo_root().join("examples/models/reference_qif.yaml");
    format!(
        "template: {}/pc_iin\nsimulation_time: {T}\nstep_size: {DT}\nsampling_step_size: {}\nsolver: euler\n\
         permute_grid: true\nparam_grid: {{eta_pc: {{linspace: [-5, 5, {side}]}}, eta_iin: {{linspace: [-5, 5, {side}]}}}}\n\
         param_map:\n  eta_pc: {{vars: [qif_op/eta], nodes: [PC]}}\n  eta_iin: {{vars: [qif_op/eta], nodes: [IIN]}}\n\
         inputs: {{PC/qif_op/I_ext: 1.0}}\noutputs: {{r: PC/qif_op/r}}\nsummaries: [mean, std, max]\nkeep_traces: {keep_traces}\n",
        template.display(),
        DT * EVERY as f64
    )
}

/// Best of `repeats` wall times of `f`.
fn best<F: FnMut() -> Result<f64, String>>(repeats: usize, mut f: F) -> Result<f64, String> {
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        best = best.min(f()?);
    }
    Ok(best)
}

fn build_c(source: &Path, dir: &Path) -> Result<PathBuf, String> {
    let exe = dir.join("montbrio_grid");
    let status = Command::new("gcc")
        .args(["-O3", "-march=native", "-o"])
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

/// (whole-process seconds, the program's own `sim_s`).
fn run_c(exe: &Path, points: usize) -> Result<(f64, f64), String> {
    let start = Instant::now();
    let out = Command::new(exe)
        .arg(points.to_string())
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let wall = start.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    let sim = text
        .split_whitespace()
        .find_map(|f| f.strip_prefix("sim_s="))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected output of the C program: {text}"))?;
    Ok((wall, sim))
}

fn run_process(cmd: &mut Command) -> Result<f64, String> {
    let start = Instant::now();
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(start.elapsed().as_secs_f64())
}

const PYRATES_SCRIPT: &str = r#"
import sys, time
import numpy as np
t0 = time.perf_counter()
from pyrates import grid_search
n = int(sys.argv[2])
e = np.linspace(-5, 5, n)
T, dt = 5.0, 1e-4
inp = np.ones((int(round(T / dt)), 1))
grid_search(sys.argv[1], param_grid={'eta_pc': e, 'eta_iin': e},
            param_map={'eta_pc': {'vars': ['qif_op/eta'], 'nodes': ['PC']},
                       'eta_iin': {'vars': ['qif_op/eta'], 'nodes': ['IIN']}},
            simulation_time=T, step_size=dt, sampling_step_size=1e-3, permute_grid=True,
            inputs={'PC/qif_op/I_ext': inp}, outputs={'r': 'PC/qif_op/r'},
            solver='euler', backend='default', float_precision='float64', matrix_sparseness=0.0)
print(time.perf_counter() - t0)
"#;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    let side = (args.points as f64).sqrt().round() as usize;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe_dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let cli = exe_dir.join("rustrates");
    let lane_steps = args.points as f64 * (T / DT).round();
    let mut report = serde_json::Map::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    report.insert("cpu".into(), cpu.clone().into());
    report.insert("commit".into(), commit.into());
    report.insert("points".into(), args.points.into());
    report.insert("steps".into(), ((T / DT).round() as u64).into());
    println!(
        "rustrates ratio benchmark: {} points × {} Euler steps, cpu: {cpu}",
        args.points,
        (T / DT).round()
    );

    let c_exe = build_c(&args.c_source, work.path())?;
    let c_sim = best(args.repeats, || run_c(&c_exe, args.points).map(|x| x.1))?;
    let c_wall = best(args.repeats, || run_c(&c_exe, args.points).map(|x| x.0))?;
    println!(
        "C program (1 thread): timed region {c_sim:.3} s ({:.3} ns/lane-step), whole process {c_wall:.3} s",
        1e9 * c_sim / lane_steps
    );
    report.insert("c_sim_s".into(), c_sim.into());
    report.insert("c_process_s".into(), c_wall.into());

    let template = format!(
        "{}/pc_iin",
        repo_root().join("examples/models/reference_qif.yaml").display()
    );
    let loaded = load_circuit(&template, &LoadOptions::default()).map_err(|e| e.to_string())?;
    println!(
        "\n{:<44} {:>10} {:>14} {:>10}",
        "in-process, traces in memory, 1 thread", "seconds", "ns/lane-step", "× C"
    );
    for (name, backend) in [("jit", Backend::Jit), ("c", Backend::C), ("auto", Backend::Auto)] {
        let mut spec = reference_spec(side, true, &[]);
        spec.backend = backend;
        spec.threads = Some(1);
        let secs = best(args.repeats, || {
            let mut sink = MemorySink::new();
            let start = Instant::now();
            rustrates::sweep::run(&spec, &loaded.circuit, &mut sink).map_err(|e| e.to_string())?;
            Ok(start.elapsed().as_secs_f64())
        })?;
        println!(
            "{:<44} {:>10.3} {:>14.3} {:>10.2}",
            format!("backend {name}"),
            secs,
            1e9 * secs / lane_steps,
            secs / c_sim
        );
        report.insert(format!("kernel_{name}_s"), secs.into());
    }

    if cli.exists() {
        println!(
            "\n{:<44} {:>10} {:>10}",
            "whole `rustrates sweep` process", "seconds", "× C proc"
        );
        for (label, keep, extra, threads) in [
            ("summaries only, 1 thread", false, None, 1),
            ("summaries only, 2 threads", false, None, 2),
            ("traces to HDF5 (deflate), 1 thread", true, None, 1),
            (
                "traces to HDF5 (uncompressed), 1 thread",
                true,
                Some("--no-compression"),
                1,
            ),
        ] {
            let spec_path = work.path().join(format!("spec_{keep}.yaml"));
            std::fs::write(&spec_path, spec_yaml(side, keep)).map_err(|e| e.to_string())?;
            let out = work.path().join("out.h5");
            let secs = best(args.repeats, || {
                let _ = std::fs::remove_file(&out);
                let mut cmd = Command::new(&cli);
                cmd.arg("sweep")
                    .arg(&spec_path)
                    .arg("--out")
                    .arg(&out)
                    .arg("-q")
                    .arg("--threads")
                    .arg(threads.to_string());
                if let Some(x) = extra {
                    cmd.arg(x);
                }
                run_process(&mut cmd)
            })?;
            println!("{label:<44} {secs:>10.3} {:>10.2}", secs / c_wall);
            report.insert(
                format!("process_{}", label.replace([' ', ',', '(', ')'], "_")),
                secs.into(),
            );
        }
    } else {
        println!(
            "\n(skipping whole-process cases: build {} with `cargo build --release -p rustrates-cli`)",
            cli.display()
        );
    }

    if let Some(python) = &args.pyrates_python {
        let yaml = repo_root().join("examples/models/reference_qif");
        let script = work.path().join("pyrates_sweep.py");
        std::fs::write(&script, PYRATES_SCRIPT).map_err(|e| e.to_string())?;
        println!(
            "\n{:<44} {:>10} {:>10} {:>10}",
            "PyRates grid_search vs `rustrates sweep`", "PyRates s", "ours s", "speed-up"
        );
        for n in [5usize, 20] {
            let py = run_process(
                Command::new(python)
                    .arg(&script)
                    .arg(format!("{}/pc_iin", yaml.display()))
                    .arg(n.to_string()),
            )?;
            let spec_path = work.path().join(format!("spec_py{n}.yaml"));
            std::fs::write(&spec_path, spec_yaml(n, true)).map_err(|e| e.to_string())?;
            let ours = best(args.repeats, || {
                let out = work.path().join(format!("py{n}.h5"));
                let _ = std::fs::remove_file(&out);
                run_process(
                    Command::new(&cli)
                        .arg("sweep")
                        .arg(&spec_path)
                        .arg("--out")
                        .arg(&out)
                        .arg("-q"),
                )
            })?;
            println!("{:<44} {py:>10.2} {ours:>10.3} {:>10.0}", format!("{n}×{n}"), py / ours);
            report.insert(format!("pyrates_{n}x{n}_s"), py.into());
            report.insert(format!("rustrates_{n}x{n}_s"), ours.into());
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
