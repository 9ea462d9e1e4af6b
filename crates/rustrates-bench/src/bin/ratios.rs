//! Ratio benchmark: rustrates vs the plain C program of `shared/bench` (and PyRates when a
//! Python with `pyrates` is given), all measured in this one run, reported as ratios.
//!
//! ```text
//! cargo build --release -p rustrates-cli -p rustrates-bench
//! target/release/ratios [--points 10000] [--c-source ../shared/bench/montbrio_grid.c]
//!                       [--pyrates-python /path/to/venv/bin/python] [--json out.json]
//!                       [--repeats 3] [--simulation-time 5] [--backends jit,c,auto] [--kernel-only]
//!                       [--regime]
//! ```
//!
//! `--regime`: only the cost of the `regime` summary (Jacobian, eigenvalues, period
//! detection) against a `mean`-only sweep of the same grid, in-process, summaries only, one
//! thread per back end, the two interleaved repeat by repeat; wall time and the process's
//! CPU time (which leaves out the time other processes held the core on a shared machine),
//! best of the repeats each.
//!
//! Cases (the reference sweep: two QIF populations, Euler, dt 1e-4, T 5, r of PC every 10 steps):
//! - kernel: N points in-process, traces kept in memory, one thread, per back end, vs the C
//!   program's own timed region (its `sim_s`); once into a trace array allocated and touched
//!   before the clock starts, as the C program does ("as C"), once into the sweep's
//!   `MemorySink`, which allocates its array inside the run; also against the C program run
//!   again right before each of ours ("interleaved"), the steadier ratio on a shared machine;
//! - process: the whole `rustrates sweep` process (summaries only, and traces written to HDF5
//!   with and without compression) vs the whole C process, one and two threads;
//! - PyRates: 5×5 and 20×20 `grid_search` end to end vs the `rustrates sweep` process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rustrates::kernel::Backend;
use rustrates::sweep::{BlockOutput, MemorySink, Statistic, SweepError, SweepMeta, SweepSink, SweepSpec};
use rustrates_bench::{
    best, build_c, c_field, reference_spec, reference_spec_yaml, repo_root, run_process, Flags, DT, EVERY,
};

/// The PyRates script's T (fixed in `PYRATES_SCRIPT`).
const PYRATES_T: f64 = 5.0;

struct Args {
    points: usize,
    c_source: PathBuf,
    pyrates_python: Option<PathBuf>,
    json: Option<PathBuf>,
    repeats: usize,
    /// T (default 5); shorter runs make `valgrind --tool=callgrind` instruction counts
    /// affordable.
    time: f64,
    backends: Vec<(String, Backend)>,
    /// Only the in-process cases (no whole-process or PyRates cases).
    kernel_only: bool,
    /// Only the cost of the `regime` summary against a mean-only sweep of the same grid.
    regime: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        points: 10_000,
        c_source: repo_root().join("../shared/bench/montbrio_grid.c"),
        pyrates_python: None,
        json: None,
        repeats: 3,
        time: 5.0,
        backends: vec![
            ("jit".into(), Backend::Jit),
            ("c".into(), Backend::C),
            ("auto".into(), Backend::Auto),
        ],
        kernel_only: false,
        regime: false,
    };
    let mut flags = Flags::from_env();
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--points" => a.points = flags.parsed(&flag)?,
            "--c-source" => a.c_source = flags.value(&flag)?.into(),
            "--pyrates-python" => a.pyrates_python = Some(flags.value(&flag)?.into()),
            "--json" => a.json = Some(flags.value(&flag)?.into()),
            "--repeats" => a.repeats = flags.parsed(&flag)?,
            "--simulation-time" => {
                a.time = flags.parsed(&flag)?;
                if !(a.time.is_finite() && a.time > 0.0) {
                    return Err("--simulation-time must be positive".into());
                }
            }
            "--backends" => {
                a.backends = flags
                    .value(&flag)?
                    .split(',')
                    .map(|name| {
                        Backend::parse(name)
                            .map(|b| (name.to_string(), b))
                            .ok_or_else(|| format!("--backends: unknown back end '{name}' (jit, c, auto, reference)"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--kernel-only" => a.kernel_only = true,
            "--regime" => a.regime = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let side = (a.points as f64).sqrt().round() as usize;
    if side * side != a.points {
        return Err("--points must be a perfect square".into());
    }
    Ok(a)
}

/// (whole-process seconds, the program's own `sim_s`).
fn run_c(exe: &Path, points: usize, time: f64) -> Result<(f64, f64), String> {
    let start = Instant::now();
    let out = Command::new(exe)
        .arg(points.to_string())
        .arg("-")
        .arg(time.to_string())
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let wall = start.elapsed().as_secs_f64();
    Ok((wall, c_field(&String::from_utf8_lossy(&out.stdout), "sim_s=")?))
}

/// Keeps traces in an array the caller allocated and touched before the clock starts, as
/// `montbrio_grid.c` does with its `out`; blocks write straight into it.
struct PreparedTraces {
    traces: Vec<f64>,
    per_point: usize,
}

impl SweepSink for PreparedTraces {
    fn begin(&mut self, meta: &SweepMeta<'_>) -> Result<(), SweepError> {
        assert_eq!(
            self.per_point,
            meta.time.len() * meta.columns.len(),
            "trace array sized for the sweep"
        );
        assert_eq!(
            self.traces.len(),
            meta.grid.len() * self.per_point,
            "trace array sized for the sweep"
        );
        Ok(())
    }
    fn trace_target(&mut self, range: std::ops::Range<usize>) -> Option<&mut [f64]> {
        Some(&mut self.traces[range.start * self.per_point..range.end * self.per_point])
    }
    fn block(&mut self, _out: BlockOutput<'_>) -> Result<(), SweepError> {
        Ok(())
    }
}

/// PyRates' `grid_search` of the reference sweep, timed from its import: `python script.py
/// TEMPLATE n` prints the seconds of an n × n sweep (shared with the `traces` bench).
const PYRATES_SCRIPT: &str = include_str!("../pyrates_grid_search.py");

fn main() {
    rustrates_bench::exit_on_error(real_main());
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    let side = (args.points as f64).sqrt().round() as usize;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cli = rustrates_bench::cli_beside_bench()?;
    let lane_steps = args.points as f64 * (args.time / DT).round();
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
    report.insert("steps".into(), ((args.time / DT).round() as u64).into());
    println!(
        "rustrates ratio benchmark: {} points × {} Euler steps, cpu: {cpu}",
        args.points,
        (args.time / DT).round()
    );

    if args.regime {
        let circuit = rustrates_bench::reference_circuit()?;
        println!(
            "\n{:<44} {:>10} {:>10} {:>10}",
            "summaries only, 1 thread", "mean s", "regime s", "× mean"
        );
        for (name, backend) in &args.backends {
            let specs: Vec<SweepSpec> = [vec![Statistic::Mean], Statistic::expand(&[Statistic::Regime])]
                .iter()
                .map(|stats| {
                    let mut spec = reference_spec(side, args.time, false, stats);
                    (spec.backend, spec.threads) = (*backend, Some(1));
                    spec
                })
                .collect();
            // Wall and process CPU time, best of the repeats each: on a shared machine the
            // CPU time leaves out the time other processes held the core.
            let mut secs = [f64::INFINITY; 2];
            let mut cpu = [f64::INFINITY; 2];
            for round in 0..=args.repeats.max(1) {
                for (i, spec) in specs.iter().enumerate() {
                    let (start, start_cpu) = (Instant::now(), process_cpu_seconds());
                    rustrates::sweep::run(spec, &circuit, &mut MemorySink::new()).map_err(|e| e.to_string())?;
                    // Round 0 compiles (or loads from the cache): not timed.
                    if round > 0 {
                        secs[i] = secs[i].min(start.elapsed().as_secs_f64());
                        cpu[i] = cpu[i].min(process_cpu_seconds() - start_cpu);
                    }
                }
            }
            println!(
                "{:<44} {:>10.3} {:>10.3} {:>10.3}",
                format!("backend {name}"),
                secs[0],
                secs[1],
                secs[1] / secs[0]
            );
            println!(
                "{:<44} {:>10.3} {:>10.3} {:>10.3}",
                format!("backend {name}, CPU time"),
                cpu[0],
                cpu[1],
                cpu[1] / cpu[0]
            );
            report.insert(format!("summary_mean_{name}_s"), secs[0].into());
            report.insert(format!("summary_regime_{name}_s"), secs[1].into());
            report.insert(format!("summary_mean_{name}_cpu_s"), cpu[0].into());
            report.insert(format!("summary_regime_{name}_cpu_s"), cpu[1].into());
        }
        return write_json(&args, &report);
    }

    let c_exe = build_c(&args.c_source, work.path(), "montbrio_grid", &[])?;
    let c_sim = best(args.repeats, || run_c(&c_exe, args.points, args.time).map(|x| x.1))?;
    let c_wall = best(args.repeats, || run_c(&c_exe, args.points, args.time).map(|x| x.0))?;
    println!(
        "C program (1 thread): timed region {c_sim:.3} s ({:.3} ns/lane-step), whole process {c_wall:.3} s",
        1e9 * c_sim / lane_steps
    );
    report.insert("c_sim_s".into(), c_sim.into());
    report.insert("c_process_s".into(), c_wall.into());

    let circuit = rustrates_bench::reference_circuit()?;
    println!(
        "\n{:<44} {:>10} {:>14} {:>10} {:>12} {:>10}",
        "in-process, traces in memory, 1 thread", "seconds", "ns/lane-step", "× C", "C interl. s", "× C interl."
    );
    let per_point = (args.time / (DT * EVERY as f64)).round() as usize;
    // Allocated and touched here, outside every timed region, as the C program's `out`.
    let mut prepared = PreparedTraces {
        traces: vec![0.0; args.points * per_point],
        per_point,
    };
    for (name, backend) in &args.backends {
        let mut spec = reference_spec(side, args.time, true, &[]);
        spec.backend = *backend;
        spec.threads = Some(1);
        // Compile (or load from the cache) outside the timed runs.
        rustrates::sweep::run(&spec, &circuit, &mut prepared).map_err(|e| e.to_string())?;
        for (label, own_buffer) in [("as C", true), ("MemorySink", false)] {
            // The C program runs again before each of ours, so that both best-ofs come from
            // the same minutes of a shared machine.
            let mut c_near = f64::INFINITY;
            let secs = best(args.repeats, || {
                c_near = c_near.min(run_c(&c_exe, args.points, args.time)?.1);
                let start = Instant::now();
                if own_buffer {
                    rustrates::sweep::run(&spec, &circuit, &mut prepared).map_err(|e| e.to_string())?;
                } else {
                    let mut sink = MemorySink::new();
                    rustrates::sweep::run(&spec, &circuit, &mut sink).map_err(|e| e.to_string())?;
                }
                Ok(start.elapsed().as_secs_f64())
            })?;
            println!(
                "{:<44} {:>10.3} {:>14.3} {:>10.2} {:>12.3} {:>10.2}",
                format!("backend {name} ({label})"),
                secs,
                1e9 * secs / lane_steps,
                secs / c_sim,
                c_near,
                secs / c_near
            );
            let key = if own_buffer { "kernel" } else { "memorysink" };
            report.insert(format!("{key}_{name}_s"), secs.into());
            report.insert(format!("{key}_{name}_c_interleaved_s"), c_near.into());
        }
    }
    if args.kernel_only {
        return write_json(&args, &report);
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
            std::fs::write(&spec_path, reference_spec_yaml(side, args.time, keep, "")).map_err(|e| e.to_string())?;
            let out = work.path().join("out.h5");
            let secs = best(args.repeats, || {
                let _ = std::fs::remove_file(&out);
                let mut cmd = rustrates_bench::sweep_command(&cli, &spec_path, &out, threads);
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
            std::fs::write(&spec_path, reference_spec_yaml(n, PYRATES_T, true, "")).map_err(|e| e.to_string())?;
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
    write_json(&args, &report)
}

fn write_json(args: &Args, report: &serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(report).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// CPU time of this process so far (all threads), in seconds; NaN where it cannot be read.
fn process_cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec for the call's duration.
        if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        }
    }
    f64::NAN
}
