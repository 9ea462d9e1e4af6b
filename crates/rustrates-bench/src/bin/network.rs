//! Network benchmark: rustrates vs `shared/bench/network_grid.c` (N QIF populations coupled
//! all-to-all through a dense weight matrix, a √P × √P grid of (G, eta), Euler, the time
//! average of every node's r), both measured in this one run, reported as ratios.
//!
//! ```text
//! cargo build --release -p rustrates-bench --bin network
//! target/release/network [--c-source ../shared/bench/network_grid.c] [--repeats 3]
//!                        [--cases 200x16x1,68x256x1,68x16x0.05x0.02] [--compile 10,100,1000]
//!                        [--form edges|matrix|velocity] [--jit-max 100] [--rss 1000x16x0.01]
//!                        [--backend c|jit] [--block-size 16]
//! ```
//!
//! A case is `NxPxT` or `NxPxTxDMAX` (conduction delays up to DMAX seconds, whole steps, as in
//! the C program).
//!
//! rustrates reads the circuit as a PyRates YAML edge list (N² edges, the C program's
//! formula) and sweeps G and eta in every node (`param_map` with all nodes), or with
//! `--form matrix` as a `connectivity:` block (weights in a `.npy` file) whose `scale` is G
//! (global coupling), or with `--form velocity` as that block with `lengths` (10 × the C
//! program's delays) and a conduction velocity swept per lane (`C/velocity`, a grid key of one
//! value, 10: the C program's delays, each lane's read from the delay ring by the C loops), on one thread,
//! keeping the mean of every node's r (summaries only, sampled every step, which is the
//! C program's average over the state before each step). Its time is the whole `sweep::run`
//! (kernel cached by a warm-up run), against the C program's timed region `sim_s`, on one
//! thread and on two (the C program built with `-fopenmp`); every node's mean of every point
//! is compared with the C program's CSV output (the run fails beyond 1e-12, relative).
//! Compile time is file read → kernel ready (load, lower, compile, with an empty kernel
//! cache) per N, for the C back end and, up to `--jit-max` nodes, the JIT. `--rss NxPxT`
//! first runs that one sweep (1 thread) and prints the process's peak resident memory
//! (VmHWM) after it, before anything else runs.
//!
//! With `--form velocity`, each delayed case also times, in the same interleaved runs (one
//! thread), the block with its delays given (`delay:`, constant: the loops' whole-step rows,
//! means checked against the C program's as well), and two per-lane sweeps the C program has no
//! counterpart for (timed only): velocities 10 and 5 alternating lane by lane (G × eta/2 × 2
//! velocities, the same number of points: each lane reads its own whole step), and velocity
//! 10·(1 + 10⁻⁶) in every lane (every delay a fraction of a step: Hermite per lane).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rustrates::kernel::{Backend, Kernel, KernelOptions};
use rustrates::model::load_circuit;
use rustrates::model::passes::{lower_edges_keeping_couplings, specialize_params};
use rustrates::model::test_models::network_grid::{self, OPERATOR};
use rustrates::model::test_models::npy_bytes;
use rustrates::solve::{Method, SimConfig};
use rustrates::sweep::{BlockOutput, Grid, ParamMap, Statistic, SweepError, SweepMeta, SweepSink, SweepSpec};
use rustrates::template::LoadOptions;
use rustrates_bench::{build_c, c_field, repo_root};

const DT: f64 = 1e-4;

struct Case {
    n: usize,
    points: usize,
    time: f64,
    /// Largest conduction delay (s); 0: none.
    dmax: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Edges,
    Matrix,
    Velocity,
}

struct Args {
    c_source: PathBuf,
    repeats: usize,
    cases: Vec<Case>,
    compile: Vec<usize>,
    /// `--form`: `Edges`, or a `connectivity:` block (`Matrix`, `Velocity`).
    form: Form,
    jit_max: usize,
    rss: Option<Case>,
    /// Back end of the sweeps (`--backend c|jit`; the compile table measures both).
    backend: Backend,
    /// `--block-size`: lanes per block of the sweeps (`None`: the sweep's default).
    block_size: Option<usize>,
}

fn parse_case(s: &str) -> Result<Case, String> {
    let f: Vec<&str> = s.split('x').collect();
    let bad = || format!("case '{s}' is not NxPxT[xDMAX] (e.g. 200x16x1)");
    if !(3..=4).contains(&f.len()) {
        return Err(bad());
    }
    Ok(Case {
        n: f[0].parse().map_err(|_| bad())?,
        points: f[1].parse().map_err(|_| bad())?,
        time: f[2].parse().map_err(|_| bad())?,
        dmax: f.get(3).map_or(Ok(0.0), |d| d.parse()).map_err(|_| bad())?,
    })
}

/// This process's peak resident memory so far (Linux `VmHWM`), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        c_source: repo_root().join("../shared/bench/network_grid.c"),
        repeats: 3,
        cases: vec![
            Case {
                n: 200,
                points: 16,
                time: 1.0,
                dmax: 0.0,
            },
            Case {
                n: 68,
                points: 256,
                time: 1.0,
                dmax: 0.0,
            },
            Case {
                n: 68,
                points: 16,
                time: 0.05,
                dmax: 0.02,
            },
        ],
        compile: vec![10, 100, 1000],
        form: Form::Edges,
        jit_max: 100,
        rss: None,
        backend: Backend::C,
        block_size: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--c-source" => a.c_source = PathBuf::from(value()?),
            "--repeats" => a.repeats = value()?.parse().map_err(|e| format!("--repeats: {e}"))?,
            "--cases" => {
                a.cases = value()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(parse_case)
                    .collect::<Result<_, _>>()?;
            }
            "--rss" => a.rss = Some(parse_case(&value()?)?),
            "--backend" => {
                a.backend = match value()?.as_str() {
                    "c" => Backend::C,
                    "jit" => Backend::Jit,
                    other => return Err(format!("--backend: '{other}' is not c or jit")),
                }
            }
            "--block-size" => {
                a.block_size = Some(value()?.parse().map_err(|e| format!("--block-size: {e}"))?);
            }
            "--jit-max" => a.jit_max = value()?.parse().map_err(|e| format!("--jit-max: {e}"))?,
            "--compile" => {
                a.compile = value()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().map_err(|e| format!("--compile: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--form" => {
                a.form = match value()?.as_str() {
                    "edges" => Form::Edges,
                    "matrix" => Form::Matrix,
                    "velocity" => Form::Velocity,
                    other => return Err(format!("--form: '{other}' is not edges, matrix or velocity")),
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    for c in &a.cases {
        let side = (c.points as f64).sqrt().round() as usize;
        if side * side != c.points || c.n == 0 {
            return Err(format!(
                "case {}x{}: N ≥ 1 and a perfect square of points",
                c.n, c.points
            ));
        }
    }
    Ok(a)
}

/// `network_grid.c`'s circuit as a PyRates YAML edge list, edges into each target in source
/// order (the C program's summation order), delays rounded to whole steps as it reads them.
fn network_yaml(n: usize, dmax: f64) -> String {
    network_grid::yaml(n, dmax, DT, |_, _| true)
}

/// `network_grid.c`'s circuit as one `connectivity:` block named `C` (its `scale` is the
/// global coupling G, the nodes' own G stays 1): the weights (and delays) written to
/// `.npy` files in `dir`, in the YAML file's folder.
fn network_matrix_yaml(n: usize, dmax: f64, dir: &Path, form: Form) -> Result<String, String> {
    let write_npy = |name: &str, f: &dyn Fn(usize, usize) -> f64| -> Result<(), String> {
        let values: Vec<f64> = (0..n).flat_map(|i| (0..n).map(move |j| f(i, j))).collect();
        std::fs::write(dir.join(name), npy_bytes(n, n, &values, false)).map_err(|e| e.to_string())
    };
    write_npy(&format!("w{n}.npy"), &|i, j| network_grid::weight(n, i, j))?;
    let mut s = String::from(OPERATOR);
    s.push_str("Net:\n  base: CircuitTemplate\n  nodes:\n");
    for i in 0..n {
        s.push_str(&format!("    n{i}: qif_net_pop\n"));
    }
    let nodes: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    s.push_str(&format!(
        "  connectivity:\n    - {{source: qif_net_op/r, target: qif_net_op/r_in, name: C, scale: 1.0, weight: w{n}.npy, source_nodes: [{}]",
        nodes.join(", ")
    ));
    if dmax > 0.0 && form == Form::Velocity {
        // At velocity 10 each delay is a whole number of steps (`whole_steps`), as the C program's.
        write_npy(&format!("l{n}.npy"), &|i, j| {
            network_grid::delay_steps(dmax, DT, i, j) as f64 * DT * 10.0
        })?;
        s.push_str(&format!(", lengths: l{n}.npy, velocity: 10.0"));
    } else if dmax > 0.0 {
        write_npy(&format!("d{n}.npy"), &|i, j| {
            network_grid::delay_steps(dmax, DT, i, j) as f64 * DT
        })?;
        s.push_str(&format!(", delay: d{n}.npy"));
    }
    s.push_str("}\n");
    Ok(s)
}

/// (the program's `sim_s`, its checksum) on `threads` threads (the OpenMP build for more
/// than one); with `csv`, it also writes every node's mean per point there (after its timed
/// region).
fn run_c(exe: &Path, threads: usize, case: &Case, csv: Option<&Path>) -> Result<(f64, f64), String> {
    let mut cmd = Command::new(exe);
    cmd.env("OMP_NUM_THREADS", threads.to_string())
        .args([case.n.to_string(), case.points.to_string(), case.time.to_string()])
        .arg(DT.to_string())
        .arg(case.dmax.to_string());
    if let Some(csv) = csv {
        cmd.arg(csv);
    }
    let out = cmd.output().map_err(|e| format!("{}: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok((c_field(&text, "sim_s=")?, c_field(&text, "checksum=")?))
}

/// Sums every summary (the C program's checksum: the sum of all nodes' means) and keeps every
/// node's mean per point, `means[point][node]`.
#[derive(Default)]
struct Checksum {
    sum: f64,
    /// Node index of every output column (the nodes are `n0 … n{N-1}`).
    node_of: Vec<usize>,
    means: Vec<Vec<f64>>,
}

impl SweepSink for Checksum {
    fn begin(&mut self, meta: &SweepMeta<'_>) -> Result<(), SweepError> {
        self.sum = 0.0;
        self.node_of = meta
            .columns
            .iter()
            .map(|(node, _)| {
                let digits: String = node
                    .trim_start_matches('n')
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().expect("nodes are named n0 … n{N-1}")
            })
            .collect();
        self.means = vec![vec![f64::NAN; meta.columns.len()]; meta.grid.len()];
        Ok(())
    }
    fn block(&mut self, out: BlockOutput<'_>) -> Result<(), SweepError> {
        self.sum += out.summaries.iter().sum::<f64>();
        let cols = self.node_of.len();
        for lane in 0..out.lanes {
            for (c, &node) in self.node_of.iter().enumerate() {
                self.means[out.first_point + lane][node] = out.summaries[lane * cols + c];
            }
        }
        Ok(())
    }
}

/// The largest relative difference between our means and the C program's CSV (`G, eta`, then
/// the mean r of node 0 … N−1 per point, in grid order).
fn compare_means(csv: &Path, means: &[Vec<f64>]) -> Result<f64, String> {
    let text = std::fs::read_to_string(csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    let mut worst = 0.0f64;
    let mut rows = 0;
    for (k, line) in text.lines().skip(1).enumerate() {
        let ours = means
            .get(k)
            .ok_or_else(|| format!("{}: more points than the sweep's", csv.display()))?;
        let theirs: Vec<f64> = line
            .split(',')
            .skip(2)
            .map(|v| v.parse().map_err(|e| format!("{}: row {}: {e}", csv.display(), k + 2)))
            .collect::<Result<_, _>>()?;
        if theirs.len() != ours.len() {
            return Err(format!(
                "{}: row {}: {} nodes, the sweep has {}",
                csv.display(),
                k + 2,
                theirs.len(),
                ours.len()
            ));
        }
        for (a, b) in ours.iter().zip(&theirs) {
            worst = worst.max((a - b).abs() / b.abs().max(1e-300));
        }
        rows += 1;
    }
    if rows != means.len() {
        return Err(format!(
            "{}: {rows} points, the sweep has {}",
            csv.display(),
            means.len()
        ));
    }
    Ok(worst)
}

/// The extra sweeps of a delayed case with `--form velocity`: the block with its delays
/// given (constant), velocities alternating per lane, and fractional delays in every lane.
struct VelocityRuns {
    constant: (rustrates::model::Circuit, SweepSpec),
    per_lane: (rustrates::model::Circuit, [SweepSpec; 2]),
    constant_sink: Checksum,
    /// Best times: constant, alternating, fractional.
    best: [f64; 3],
}

impl VelocityRuns {
    fn new(case: &Case, backend: Backend, dir: &Path) -> Result<VelocityRuns, String> {
        let load = |form: Form, file: &str| -> Result<rustrates::model::Circuit, String> {
            let path = dir.join(file);
            std::fs::write(&path, network_matrix_yaml(case.n, case.dmax, dir, form)?).map_err(|e| e.to_string())?;
            load_circuit(&format!("{}/Net", path.display()), &LoadOptions::default())
                .map(|l| l.circuit)
                .map_err(|e| e.to_string())
        };
        let constant = load(Form::Matrix, &format!("const{}.yaml", case.n))?;
        let velocity = load(Form::Velocity, &format!("lanes{}.yaml", case.n))?;
        let mut runs = VelocityRuns {
            constant: (constant, spec(case, backend, Form::Matrix)),
            per_lane: (
                velocity,
                [
                    spec_with_velocities(case, backend, Form::Velocity, &[10.0, 5.0]),
                    spec_with_velocities(case, backend, Form::Velocity, &[10.0 * (1.0 + 1e-6)]),
                ],
            ),
            constant_sink: Checksum::default(),
            best: [f64::INFINITY; 3],
        };
        // Compile (or load from the cache) outside the timed runs.
        runs.run_once()?;
        runs.best = [f64::INFINITY; 3];
        Ok(runs)
    }

    fn run_once(&mut self) -> Result<(), String> {
        let t0 = Instant::now();
        rustrates::sweep::run(&self.constant.1, &self.constant.0, &mut self.constant_sink)
            .map_err(|e| e.to_string())?;
        self.best[0] = self.best[0].min(t0.elapsed().as_secs_f64());
        for (k, s) in self.per_lane.1.iter().enumerate() {
            let t0 = Instant::now();
            rustrates::sweep::run(s, &self.per_lane.0, &mut Checksum::default()).map_err(|e| e.to_string())?;
            self.best[k + 1] = self.best[k + 1].min(t0.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

/// Euler with delays of whole steps: our means equal the C program's to rounding (the same
/// operations; only the coupling's sum may round differently, ≈ 1e-16 per step, relative).
const MEANS_TOLERANCE: f64 = 1e-12;

fn spec(case: &Case, backend: Backend, form: Form) -> SweepSpec {
    spec_with_velocities(case, backend, form, &[10.0])
}

/// [`spec`] with the velocity grid `velocities` (the innermost key, so consecutive lanes take
/// them in turn; eta gets `side / velocities.len()` values, keeping the number of points).
fn spec_with_velocities(case: &Case, backend: Backend, form: Form, velocities: &[f64]) -> SweepSpec {
    let side = (case.points as f64).sqrt().round() as usize;
    let lin = |a: f64, b: f64| -> Vec<f64> {
        (0..side)
            .map(|i| {
                if side == 1 {
                    a
                } else {
                    a + (b - a) * i as f64 / (side - 1) as f64
                }
            })
            .collect()
    };
    let mut values = indexmap::IndexMap::new();
    values.insert("G".to_string(), lin(0.0, 2.0));
    let mut eta = lin(-6.0, -4.0);
    eta.truncate(side / velocities.len().max(1));
    values.insert("eta".to_string(), eta);
    if form == Form::Velocity && case.dmax > 0.0 {
        values.insert("velocity".to_string(), velocities.to_vec());
    }
    let grid = Grid::from_values(&values, true).expect("equal lengths");
    let nodes: Vec<String> = (0..case.n).map(|i| format!("n{i}")).collect();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut map = ParamMap::new().nodes("eta", &["qif_net_op/eta"], &nodes);
    if form != Form::Edges {
        map = map.paths("G", &["C/scale"]);
        if values.contains_key("velocity") {
            map = map.paths("velocity", &["C/velocity"]);
        }
    } else {
        map = map.nodes("G", &["qif_net_op/G"], &nodes);
    }
    let sim = SimConfig::new(Method::Euler, case.time, DT, Some(DT));
    let mut s = SweepSpec::new(grid, map, sim);
    s.outputs = vec![("r".into(), "all/qif_net_op/r".into())];
    s.keep_traces = false;
    s.summaries = vec![Statistic::Mean];
    s.backend = backend;
    s.threads = Some(1);
    s
}

fn main() {
    rustrates_bench::exit_on_error(real_main());
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    if let Some(case) = &args.rss {
        let path = work.path().join("rss.yaml");
        let text = if args.form != Form::Edges {
            network_matrix_yaml(case.n, case.dmax, work.path(), args.form)?
        } else {
            network_yaml(case.n, case.dmax)
        };
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let loaded =
            load_circuit(&format!("{}/Net", path.display()), &LoadOptions::default()).map_err(|e| e.to_string())?;
        let mut sink = Checksum::default();
        rustrates::sweep::run(&spec(case, args.backend, args.form), &loaded.circuit, &mut sink)
            .map_err(|e| e.to_string())?;
        println!(
            "peak RSS, N = {} × {} points, T = {}, file → results ({:?} back end, {}): {:.0} MB in {:.2} s",
            case.n,
            case.points,
            case.time,
            args.backend,
            if args.form != Form::Edges {
                "connectivity block"
            } else {
                "YAML edge list"
            },
            peak_rss_mb().unwrap_or(f64::NAN),
            t0.elapsed().as_secs_f64()
        );
    }
    let exe = build_c(&args.c_source, work.path(), "network_grid", &["-fopenmp-simd"])?;
    let exe_omp = build_c(
        &args.c_source,
        work.path(),
        "network_grid_omp",
        &["-fopenmp-simd", "-fopenmp"],
    )?;
    println!(
        "network benchmark: N QIF nodes all-to-all, Euler dt {DT}, {:?} back end, best of {}",
        args.backend, args.repeats
    );
    println!(
        "{:>5} {:>6} {:>5} {:>6} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>9} {:>10}",
        "N", "points", "T", "dmax", "C 1 thr.", "ours 1", "× C", "C 2 thr.", "ours 2", "× C", "ours 1/2", "means Δ"
    );
    for case in &args.cases {
        let path = work.path().join(format!("net{}.yaml", case.n));
        let text = if args.form != Form::Edges {
            network_matrix_yaml(case.n, case.dmax, work.path(), args.form)?
        } else {
            network_yaml(case.n, case.dmax)
        };
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        let loaded =
            load_circuit(&format!("{}/Net", path.display()), &LoadOptions::default()).map_err(|e| e.to_string())?;
        let mut s = spec(case, args.backend, args.form);
        if let Some(lanes) = args.block_size {
            s.block_size = lanes;
        }
        let mut sink = Checksum::default();
        // Compile (or load from the cache) outside the timed runs.
        rustrates::sweep::run(&s, &loaded.circuit, &mut sink).map_err(|e| e.to_string())?;
        let (mut c_best, mut ours_best, mut c_sum) = (f64::INFINITY, f64::INFINITY, 0.0);
        let (mut c2_best, mut two_best) = (f64::INFINITY, f64::INFINITY);
        let mut two = s.clone();
        two.threads = Some(2);
        let mut velocity_runs = (args.form == Form::Velocity && case.dmax > 0.0)
            .then(|| VelocityRuns::new(case, args.backend, work.path()))
            .transpose()?;
        for _ in 0..args.repeats.max(1) {
            if let Some(v) = velocity_runs.as_mut() {
                v.run_once()?;
            }
            // Interleaved, so both best-ofs come from the same minutes of a shared machine.
            let (c_sim, sum) = run_c(&exe, 1, case, None)?;
            c_best = c_best.min(c_sim);
            c_sum = sum;
            let t0 = Instant::now();
            rustrates::sweep::run(&s, &loaded.circuit, &mut sink).map_err(|e| e.to_string())?;
            ours_best = ours_best.min(t0.elapsed().as_secs_f64());
            c2_best = c2_best.min(run_c(&exe_omp, 2, case, None)?.0);
            let t0 = Instant::now();
            rustrates::sweep::run(&two, &loaded.circuit, &mut sink).map_err(|e| e.to_string())?;
            two_best = two_best.min(t0.elapsed().as_secs_f64());
        }
        // The last run (two threads) left its sums and means in the sink.
        let ours_sum = sink.sum;
        let csv = work.path().join(format!("means{}x{}.csv", case.n, case.points));
        run_c(&exe, 1, case, Some(&csv))?;
        let means_delta = compare_means(&csv, &sink.means)?;
        if means_delta > MEANS_TOLERANCE || (ours_sum - c_sum).abs() > MEANS_TOLERANCE * c_sum.abs() {
            return Err(format!(
                "case {}x{}x{}x{}: node means differ from the C program's by up to {means_delta:e}, checksums {ours_sum:e} vs {c_sum:e} (tolerance {MEANS_TOLERANCE:e})",
                case.n, case.points, case.time, case.dmax
            ));
        }
        if let Some(v) = &velocity_runs {
            let csv = work.path().join(format!("means{}x{}.csv", case.n, case.points));
            let delta = compare_means(&csv, &v.constant_sink.means)?;
            if delta > MEANS_TOLERANCE {
                return Err(format!(
                    "case {}x{}: the constant-delay block's node means differ from the C program's by {delta:e}",
                    case.n, case.points
                ));
            }
            println!(
                "      velocity 10 per lane {:.3} s; delays given (constant) {:.3} s: per-lane / constant {:.2}×; \
                 velocities 10 | 5 alternating {:.3} s ({:.2}×); every delay a fraction {:.3} s ({:.2}×)",
                ours_best,
                v.best[0],
                ours_best / v.best[0],
                v.best[1],
                v.best[1] / v.best[0],
                v.best[2],
                v.best[2] / v.best[0]
            );
        }
        println!(
            "{:>5} {:>6} {:>5} {:>6} {:>9.3} {:>9.3} {:>6.2} {:>9.3} {:>9.3} {:>6.2} {:>9.2} {:>10.1e}",
            case.n,
            case.points,
            case.time,
            case.dmax,
            c_best,
            ours_best,
            ours_best / c_best,
            c2_best,
            two_best,
            two_best / c2_best,
            ours_best / two_best,
            means_delta
        );
    }
    if !args.compile.is_empty() {
        println!(
            "\ncompile time, file read → kernel ready (C back end, empty kernel cache; {})",
            if args.form != Form::Edges {
                "connectivity block, .npy weights"
            } else {
                "YAML edge list"
            }
        );
        println!(
            "{:>6} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10} {:>10} {:>10}",
            "N", "edges", "load s", "lower s", "C kernel s", "loops", "C total s", "JIT kern s", "JIT total s"
        );
    }
    for &n in &args.compile {
        let path = work.path().join(format!("compile{n}.yaml"));
        let text = if args.form != Form::Edges {
            network_matrix_yaml(n, 0.0, work.path(), args.form)?
        } else {
            network_yaml(n, 0.0)
        };
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        let cache = tempfile::tempdir().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let loaded =
            load_circuit(&format!("{}/Net", path.display()), &LoadOptions::default()).map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        let low = lower_edges_keeping_couplings(&loaded.circuit);
        let per_lane: Vec<_> = (0..low.vars.len() as u32)
            .map(rustrates::model::VarId)
            .filter(|v| {
                let name = &low.var(*v).name;
                name.ends_with("/G") || name.ends_with("/eta") || name == "C/scale"
            })
            .collect();
        let compiled = specialize_params(&low, &per_lane);
        let t2 = Instant::now();
        let k = Kernel::compile(
            &compiled,
            &KernelOptions {
                backend: Backend::C,
                cache_dir: Some(cache.path().to_path_buf()),
                ..KernelOptions::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let t3 = Instant::now();
        // The JIT: population loops, the engine running the coupling (an edge list's sums read
        // back as one); `RUSTRATES_JIT_UNROLLED=1` times the code with every term written out.
        let jit = (n <= args.jit_max)
            .then(|| {
                let t = Instant::now();
                Kernel::compile(
                    &compiled,
                    &KernelOptions {
                        backend: Backend::Jit,
                        ..KernelOptions::default()
                    },
                )
                .map(|_| t.elapsed().as_secs_f64())
            })
            .transpose()
            .map_err(|e| e.to_string())?;
        let front = (t2 - t0).as_secs_f64();
        let jit_cols = match jit {
            Some(s) => format!("{s:>10.3} {:>10.3}", front + s),
            None => format!("{:>10} {:>10}", "-", "-"),
        };
        println!(
            "{:>6} {:>10} {:>10.3} {:>10.3} {:>10.3} {:>8} {:>10.3} {jit_cols}",
            n,
            n * n,
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
            k.is_network(),
            (t3 - t0).as_secs_f64(),
        );
    }
    Ok(())
}
