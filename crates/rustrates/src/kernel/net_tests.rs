//! Networks on every back end: `network_grid.c`'s circuit (N QIF nodes, weights and delays by
//! formula) run through the solver on the reference, JIT and C back ends, against an
//! independent transcription of the C program's loop. The C back end runs it as population
//! loops (`c/net`); the JIT as population loops, the edge sums (delayed terms through the
//! solver's `past` hook) run by the engine (`kernel/coupling.rs`); the reference evaluator
//! runs the unrolled code.

use super::test_kit::eval;
use super::{Backend, Kernel, KernelCtx, KernelOptions};
use crate::model::network::testing::{load, weight, yaml};
use crate::model::passes::{lower_edges, specialize_params};
use crate::model::test_models::network_grid::transcription;
use crate::model::{Circuit, VarId};
use crate::solve::{default_init, default_params, simulate, Method, OutputBinding, SimConfig};

/// The grid of `network_grid.c` for 2×2 points: G = linspace(0, 2, 2) fastest,
/// eta = linspace(−6, −4, 2).
fn grid() -> Vec<(f64, f64)> {
    let g = [0.0, 2.0];
    let e = [-6.0, -4.0];
    (0..4).map(|k| (g[k % 2], e[k / 2])).collect()
}

fn vars_ending(c: &Circuit, suffix: &str) -> Vec<VarId> {
    crate::model::test_models::var_ids_named(c, |name| name.ends_with(suffix))
}

/// The lowered circuit with every parameter but G and eta folded, and per-lane parameters
/// with (G, eta) of the grid's points in every node.
fn prepared(c: &Circuit, lanes: &[(f64, f64)]) -> (Circuit, Vec<f64>) {
    let low = lower_edges(c);
    let (gs, etas) = (vars_ending(&low, "/G"), vars_ending(&low, "/eta"));
    let per_lane: Vec<VarId> = gs.iter().chain(&etas).copied().collect();
    let compiled = specialize_params(&low, &per_lane);
    let layout = compiled.layout();
    let mut params = default_params(&compiled, lanes.len());
    for (l, &(g, eta)) in lanes.iter().enumerate() {
        for v in &gs {
            params[layout.slot[v.0 as usize] as usize * lanes.len() + l] = g;
        }
        for v in &etas {
            params[layout.slot[v.0 as usize] as usize * lanes.len() + l] = eta;
        }
    }
    (compiled, params)
}

fn kernel(c: &Circuit, backend: Backend, dir: &std::path::Path) -> Kernel {
    kernel_in(c, backend, super::Precision::F64, dir)
}

fn kernel_in(c: &Circuit, backend: Backend, precision: super::Precision, dir: &std::path::Path) -> Kernel {
    // `$CC` held shared while compiling (a C-only test changes it).
    let _env = super::test_kit::env_read();
    Kernel::compile(
        c,
        &KernelOptions {
            backend,
            precision,
            cache_dir: Some(dir.to_path_buf()),
            ..KernelOptions::default()
        },
    )
    .expect("compiles")
}

/// `lanes` points with distinct (G, eta). Couplings run whole chunks of 16 lanes, then whole
/// vectors (8 doubles), then the rest lane by lane: 28 = 16 + 8 + 4 takes every path.
fn spread_points(lanes: usize) -> Vec<(f64, f64)> {
    (0..lanes).map(|l| (0.1 * l as f64, -6.0 + 0.07 * l as f64)).collect()
}

fn backends() -> Vec<Backend> {
    super::test_kit::backends()
}

/// r of every node, sampled every `every` steps: the step of each sample, and the values
/// `[node][lane][sample]`.
fn run(
    k: &Kernel,
    c: &Circuit,
    params: &[f64],
    lanes: usize,
    steps: usize,
    dt: f64,
    every: usize,
) -> (Vec<usize>, Vec<f64>) {
    let cfg = sim_config(Method::Euler, steps, dt, every);
    let tr = simulate(k, &cfg, &[], &r_outputs(c), params, &default_init(c, lanes), lanes).expect("runs");
    assert!(tr.time.len() >= steps / every, "{} samples", tr.time.len());
    let at = tr.time.iter().map(|t| (t / dt).round() as usize).collect();
    (at, tr.data)
}

/// `steps` steps of `dt`, sampled every `every` steps.
fn sim_config(method: Method, steps: usize, dt: f64, every: usize) -> SimConfig {
    SimConfig::new(method, steps as f64 * dt, dt, Some(every as f64 * dt))
}

/// Each lane of one block run of `k` equals that lane's point run alone, bit for bit.
fn assert_lanes_equal_single_runs(k: &Kernel, c: &Circuit, cfg: &SimConfig, params: &[f64], lanes: usize) {
    let outputs = r_outputs(c);
    let block = simulate(k, cfg, &[], &outputs, params, &default_init(c, lanes), lanes).expect("runs");
    super::test_kit::assert_lanes_equal_single_runs(&block, k, c, (cfg, &outputs), params, 0..lanes);
}

/// A temporary folder for the C kernels of a test of the C back end alone; `None`, with the
/// test kit's loud note (a failure under CI), when no C compiler runs.
fn c_scratch_dir() -> Option<tempfile::TempDir> {
    super::test_kit::c_available().then(|| tempfile::tempdir().expect("temp dir"))
}

/// `backend`'s network kernel's run of `outputs` equals the reference evaluator's run of the
/// unrolled circuit bit for bit; the network kernel's run is returned.
fn assert_loops_equal_unrolled_run(
    backend: Backend,
    c: &Circuit,
    cfg: &SimConfig,
    outputs: &[OutputBinding],
    params: &[f64],
    lanes: usize,
) -> crate::solve::Trajectories {
    let dir = tempfile::tempdir().expect("temp dir");
    let ck = kernel(c, backend, dir.path());
    assert!(ck.is_network(), "{backend:?}");
    let rk = kernel(c, Backend::Reference, dir.path());
    let init = default_init(c, lanes);
    let a = simulate(&ck, cfg, &[], outputs, params, &init, lanes).expect("runs");
    let b = simulate(&rk, cfg, &[], outputs, params, &init, lanes).expect("runs");
    assert!(a.data.iter().all(|x| x.is_finite()));
    assert!(a.data.iter().zip(&b.data).all(|(x, y)| x.to_bits() == y.to_bits()));
    a
}

/// N = 5 without and with delays (up to 2 ms = 20 steps), 4 grid points, T = 0.05 (500 Euler
/// steps), every back end against the transcription. 1e-12 relative: the transcription's
/// operations are the kernels' in the same order (bit-identical where both evaluate the same
/// expression), so only libm's `pow`/`sin` or the delay history's interpolation at exact
/// sample times (cubic Hermite, reproduces the sample to rounding) could differ.
#[test]
fn network_n5_matches_the_c_programs_formula_on_every_back_end() {
    let (n, dt, steps, every) = (5, 1e-4, 500, 10);
    let points = grid();
    let dir = tempfile::tempdir().expect("temp dir");
    for dmax in [0.0, 0.002] {
        let want: Vec<Vec<Vec<f64>>> = points
            .iter()
            .map(|&(g, eta)| transcription(n, (g, eta), (steps, dt), dmax, |_, _| 0.0))
            .collect();
        let (c, params) = prepared(&load(&yaml(n, dmax, dt, |_, _| true)), &points);
        for backend in backends() {
            let k = kernel(&c, backend, dir.path());
            // The C back end runs loops (with delays: reading the delay ring buffer); the JIT
            // population loops with the engine summing the edges (reading the ring too).
            let jit_loops = backend == Backend::Jit;
            assert_eq!(k.is_network(), backend == Backend::C || jit_loops, "{backend:?}");
            assert_eq!(k.runs_couplings(), jit_loops, "{backend:?}");
            assert_eq!(
                k.delay_ring_span().is_some(),
                backend != Backend::Reference && dmax > 0.0,
                "{backend:?}"
            );
            let (at, got) = run(&k, &c, &params, points.len(), steps, dt, every);
            let samples = at.len();
            let mut worst = 0.0f64;
            for i in 0..n {
                for (l, w) in want.iter().enumerate() {
                    for s in 0..samples {
                        let g = got[(i * points.len() + l) * samples + s];
                        let x = w[at[s]][i];
                        worst = worst.max((g - x).abs() / x.abs().max(1e-300));
                    }
                }
            }
            assert!(
                worst <= 1e-12,
                "{backend:?} dmax {dmax}: worst relative error {worst:e}"
            );
        }
    }
}

/// `text` (an all-to-all edge list of `n` nodes, target by target, sources in order) with each
/// target's edges listed in the source order 0, 5, 10, … (mod n, n prime to 5): every row still
/// reads the same sources in the same order, so the coupling stays dense.
fn shuffled_sources(text: &str, n: usize) -> String {
    let (head, edges) = text.split_at(text.find("  edges:\n").expect("edge list") + "  edges:\n".len());
    let lines: Vec<&str> = edges.lines().collect();
    assert_eq!(lines.len(), n * n);
    let mut out = head.to_string();
    for row in lines.chunks(n) {
        for k in 0..n {
            out.push_str(row[k * 5 % n]);
            out.push('\n');
        }
    }
    out
}

/// The loops and the unrolled code round alike: one evaluation of every algebraic and
/// derivative, on states spread around the initial state, is identical bit for bit between
/// each compiled back end's network kernel (the C loops; the JIT's population loops with the
/// edge sums run by the engine) and the reference evaluator of the unrolled circuit, in both
/// precisions, for a dense
/// network (13 nodes: a block of eight rows, one of four and a single row; 12: eight and
/// four; 6: four and two single rows; 13 with its edges listed in a shuffled source order, so
/// the dense loops read the sources by index instead of walking evenly spaced slots), a
/// sparse ring and per-node constants (a term and an exponent), on 44 lanes (five vectors,
/// four lane by lane; the engine's coupling: five chunks of 8 lanes, four lane by lane).
#[test]
fn network_loops_equal_the_unrolled_evaluation_bit_for_bit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let points = spread_points(44);
    let lanes = points.len();
    let ring = |n: usize| move |i: usize, j: usize| j == (i + 1) % n || (j + 1) % n == i;
    let cases: Vec<(&str, Circuit)> = vec![
        ("dense 13", load(&yaml(13, 0.0, 1e-4, |_, _| true))),
        (
            "dense 13, sources shuffled",
            load(&shuffled_sources(&yaml(13, 0.0, 1e-4, |_, _| true), 13)),
        ),
        ("dense 12", load(&yaml(12, 0.0, 1e-4, |_, _| true))),
        ("dense 6", load(&yaml(6, 0.0, 1e-4, |_, _| true))),
        ("ring 7", load(&yaml(7, 0.0, 1e-4, ring(7)))),
        // Delayed terms (0 to 20 steps; zero delays are current reads) read through the
        // evaluation's `past` hook, as the reference evaluator reads them.
        ("delayed dense 6", load(&yaml(6, 0.002, 1e-4, |_, _| true))),
        (
            "delayed ring 7, fractional",
            load(&yaml_with_delays(
                7,
                |i, j| [0.0, 0.3e-4, 7.25e-4][(i + j) % 3],
                ring(7),
            )),
        ),
        ("per-node eta", {
            let mut c = load(&yaml(5, 0.0, 1e-4, |_, _| true));
            for i in 0..5 {
                let eta = c.find_var(&format!("n{i}/qif_net_op/eta")).expect("eta");
                c.vars[eta.0 as usize].value = -6.0 + 0.5 * i as f64;
            }
            c
        }),
        // Noise on every node (`+ s·randn()`), with a per-node scale: node i draws its own
        // source (`made_up_randn` differs per source and lane).
        ("per-node noise scale", {
            let mut c = load(&noisy(&yaml(6, 0.0, 1e-4, |_, _| true)));
            for i in 0..6 {
                let s = c.find_var(&format!("n{i}/qif_net_op/s")).expect("s");
                c.vars[s.0 as usize].value = 0.5 + 0.25 * i as f64;
            }
            c
        }),
        ("noisy ring 7", load(&noisy(&yaml(7, 0.0, 1e-4, ring(7))))),
        // A per-node exponent: node 0's value must not decide how every node raises to it.
        ("per-node exponent", {
            let text = yaml(5, 0.0, 1e-4, |_, _| true)
                .replace("v^2 + eta", "v^p + eta")
                .replace("    G: 1.0\n", "    G: 1.0\n    p: 2.0\n");
            let mut c = load(&text);
            for i in 0..5 {
                let p = c.find_var(&format!("n{i}/qif_net_op/p")).expect("p");
                c.vars[p.0 as usize].value = 2.0 + (i % 2) as f64;
            }
            c
        }),
    ];
    for (name, c) in cases {
        let (compiled, params) = if name.starts_with("per-node") {
            let low = lower_edges(&c);
            let g = vars_ending(&low, "/G");
            let s = specialize_params(&low, &g);
            let p = default_params(&s, lanes);
            (s, p)
        } else {
            prepared(&c, &points)
        };
        let ns = compiled.layout().states.len();
        let y: Vec<f64> = (0..ns * lanes)
            .map(|x| 0.01 + 0.003 * (x as f64 * 0.37).sin() - if x / lanes % 2 == 1 { 2.0 } else { 0.0 })
            .collect();
        for precision in [super::Precision::F64, super::Precision::F32] {
            let rk = kernel_in(&compiled, Backend::Reference, precision, dir.path());
            let want = evaluate_network(&rk, precision, lanes, &y, &params);
            assert!(want.iter().any(|x| *x != 0), "{name}: derivatives computed");
            for backend in backends().into_iter().filter(|b| *b != Backend::Reference) {
                let k = kernel_in(&compiled, backend, precision, dir.path());
                assert!(k.is_network(), "{name}, {backend:?}");
                assert_eq!(k.runs_couplings(), backend == Backend::Jit, "{name}, {backend:?}");
                let got = evaluate_network(&k, precision, lanes, &y, &params);
                assert!(
                    got == want,
                    "{name}, {backend:?}, {precision:?}: differs from the reference"
                );
            }
        }
    }
}

/// A history for one evaluation: a value for every (variable, lane, time, delay), different
/// for each.
fn made_up_past(_: &mut KernelCtx, var: u32, lane: usize, t: f64, delay: f64) -> f64 {
    0.1 * (0.37 * var as f64 + 0.11 * lane as f64 + t - 3e3 * delay).sin()
}

/// Noise for one evaluation: a value for every (source, lane), different for each.
fn made_up_randn(_: &mut KernelCtx, source: u32, lane: usize) -> f64 {
    (0.37 * f64::from(source) + 0.11 * lane as f64).sin()
}

/// `text` (a [`yaml`] network) with noise on every node's `v'`: `+ s·randn()` (Euler–Maruyama
/// with `s` = σ/√dt), `s` a parameter of the node.
fn noisy(text: &str) -> String {
    let out = text
        .replace("G*r_in - (pi*r)^2", "G*r_in + s*randn() - (pi*r)^2")
        .replace("    G: 1.0\n", "    G: 1.0\n    s: 2.0\n");
    assert_eq!(out.matches("randn").count(), 1, "one noise site in the template");
    out
}

/// The bits of every derivative and algebraic of one evaluation of `k` at `y` (rounded to
/// `precision`), inputs in the kernel's own layout (a JIT kernel whose engine sums the edges
/// has an input slot per sum) different in every slot and lane: each sum starts from its
/// external input, so terms taken in another order round differently.
fn evaluate_network(k: &Kernel, precision: super::Precision, lanes: usize, y: &[f64], params: &[f64]) -> Vec<u64> {
    let u: Vec<f64> = (0..k.layout().inputs.len() * lanes)
        .map(|x| 0.3 * (x as f64 * 0.71).sin())
        .collect();
    let mut ctx = KernelCtx {
        past: Some(made_up_past),
        randn: Some(made_up_randn),
        ..KernelCtx::default()
    };
    let (dy, a) = match precision {
        super::Precision::F64 => eval(k, 0.0, lanes, [y, params, &u], &mut ctx),
        super::Precision::F32 => {
            let narrow = super::test_kit::to_f32;
            let (dy, a) = eval(k, 0.0, lanes, [&narrow(y), &narrow(params), &narrow(&u)], &mut ctx);
            let wide = |v: Vec<f32>| v.into_iter().map(f64::from).collect();
            (wide(dy), wide(a))
        }
    };
    dy.iter().chain(&a).map(|x| x.to_bits()).collect()
}

/// A lane's result does not depend on the block it runs in: 28 points in one block of the C
/// network kernel (a chunk of 16, a vector of 8, 4 lanes one by one) equal each point run alone,
/// bit for bit (RK4, so every stage goes through the coupling). Ten nodes: the lanes taken one
/// by one sum eight rows at a time, then two rows alone. The same for the JIT's population
/// loops (the engine's coupling: three chunks of 8 lanes, then 4 lane by lane; dense groups
/// of four rows, then two rows alone).
#[test]
fn network_lanes_equal_single_runs_bit_for_bit() {
    for backend in backends().into_iter().filter(|b| *b != Backend::Reference) {
        assert_network_lanes_equal_single_runs(backend, 10, 0.0);
    }
}

/// 28 points (`spread_points`) in one block of `backend`'s network kernel of `n` nodes with
/// delays up to `dmax` (0: none) equal each point run alone, bit for bit: 300 RK4 steps of 1e-4.
fn assert_network_lanes_equal_single_runs(backend: Backend, n: usize, dmax: f64) {
    let (dt, steps, every) = (1e-4, 300, 30);
    let dir = tempfile::tempdir().expect("temp dir");
    let points = spread_points(28);
    let (c, params) = prepared(&load(&yaml(n, dmax, dt, |_, _| true)), &points);
    let k = kernel(&c, backend, dir.path());
    assert!(k.is_network());
    assert_eq!(
        k.delay_ring_span().is_some(),
        dmax > 0.0 && backend != Backend::Reference,
        "a delay ring exactly when delayed"
    );
    assert_lanes_equal_single_runs(
        &k,
        &c,
        &sim_config(Method::Rk4, steps, dt, every),
        &params,
        points.len(),
    );
}

/// With conduction delays the C loops read each delayed term from the solver's history, as
/// the unrolled code does, and so does the JIT's engine coupling (through the `past` hook): a
/// run with delays of 0 to 20 steps (RK4, so history is read between samples too) equals the
/// reference evaluator's run of the unrolled circuit bit for bit, on 18 lanes (the engine's
/// delayed rows take every lane alike; the C loops a chunk of 16 and two lanes).
#[test]
fn network_delayed_loops_equal_the_unrolled_run_bit_for_bit() {
    let (n, dt, steps, every) = (6, 1e-4, 400, 20);
    let points = spread_points(18);
    let (c, params) = prepared(&load(&yaml(n, 0.002, dt, |_, _| true)), &points);
    let cfg = sim_config(Method::Rk4, steps, dt, every);
    for backend in backends().into_iter().filter(|b| *b != Backend::Reference) {
        assert_loops_equal_unrolled_run(backend, &c, &cfg, &r_outputs(&c), &params, points.len());
    }
}

/// Noise per node (`randn()` in the template) through the solver: the C loops and the JIT's
/// population loops draw every node's own stream at every step and stage, exactly the
/// numbers of the unrolled code — bit for bit the reference evaluator's run and the JIT's
/// unrolled run — for Euler(–Maruyama), Heun and RK4, 28 lanes (a chunk of 16, a vector of 8,
/// 4 one by one). Blocks, threads and chunks: `tests/it/populations.rs`.
#[test]
fn network_noise_loops_equal_the_unrolled_run_bit_for_bit() {
    let (n, dt, steps, every) = (6, 1e-4, 300, 10);
    let points = spread_points(28);
    let (c, params) = prepared(&load(&noisy(&yaml(n, 0.0, dt, |_, _| true))), &points);
    let (quiet, quiet_params) = prepared(&load(&yaml(n, 0.0, dt, |_, _| true)), &points);
    let dir = tempfile::tempdir().expect("temp dir");
    let unrolled = Kernel::compile(
        &c,
        &KernelOptions {
            backend: Backend::Jit,
            jit_unrolled: true,
            ..KernelOptions::default()
        },
    )
    .expect("compiles");
    assert!(!unrolled.is_network());
    for method in [Method::Euler, Method::Heun, Method::Rk4] {
        let cfg = sim_config(method, steps, dt, every);
        let init = default_init(&c, points.len());
        let outputs = r_outputs(&c);
        let want = simulate(&unrolled, &cfg, &[], &outputs, &params, &init, points.len()).expect("runs");
        // The noise is live: the run differs from the same network without it.
        let rk = kernel(&quiet, Backend::Reference, dir.path());
        let still = simulate(&rk, &cfg, &[], &outputs, &quiet_params, &init, points.len()).expect("runs");
        assert!(
            differing_bits(&want.data, &still.data) > want.data.len() / 2,
            "{method:?}"
        );
        for backend in backends().into_iter().filter(|b| *b != Backend::Reference) {
            let got = assert_loops_equal_unrolled_run(backend, &c, &cfg, &outputs, &params, points.len());
            assert_eq!(differing_bits(&got.data, &want.data), 0, "{backend:?} {method:?}");
        }
    }
}

/// `Auto` takes the C back end for a network however short the run: the JIT would compile
/// one term per edge. The same circuit below the population size keeps the cost model's
/// choice (the JIT for a run this short).
#[test]
fn auto_picks_the_c_loops_for_a_network_even_for_a_short_run() {
    let Some(dir) = c_scratch_dir() else { return };
    let opts = KernelOptions {
        backend: Backend::Auto,
        work_hint: 1.0,
        cache_dir: Some(dir.path().to_path_buf()),
        ..KernelOptions::default()
    };
    let (network, _) = prepared(&load(&yaml(5, 0.0, 1e-4, |_, _| true)), &grid());
    assert_eq!(super::auto::auto_choice(&network, &opts), Backend::C);
    let (small, _) = prepared(&load(&yaml(3, 0.0, 1e-4, |_, _| true)), &grid());
    assert_ne!(super::auto::auto_choice(&small, &opts), Backend::C);
}

/// Two populations of different templates coupled both ways: five QIF nodes all-to-all plus
/// a driver node (a population of one) that hears every QIF node and feeds them all back; the
/// QIF input sums sources from both populations. C loops (and the JIT's population loops, the
/// engine summing both populations' sources) vs the reference evaluator of the unrolled
/// circuit, bit for bit over an RK4 run and over an Euler run (whose steps the C loops take
/// in place, each population advancing its states in its own loop).
#[test]
fn network_of_two_templates_equals_the_unrolled_run_bit_for_bit() {
    let n = 5;
    let mut text = yaml(n, 0.0, 1e-4, |_, _| true);
    text = text.replace(
        "qif_net_pop: {base: NodeTemplate, operators: [qif_net_op]}\n",
        "qif_net_pop: {base: NodeTemplate, operators: [qif_net_op]}\n\
         drive_op:\n  base: OperatorTemplate\n  equations: \"x' = -x/tau + r_in\"\n  \
         variables: {x: output(0.2), tau: 0.05, r_in: input(0.0)}\n\
         drive_pop: {base: NodeTemplate, operators: [drive_op]}\n",
    );
    text = text.replace("  edges:\n", "    d: drive_pop\n  edges:\n");
    for i in 0..n {
        text.push_str(&format!(
            "    - [d/drive_op/x, n{i}/qif_net_op/r_in, null, {{weight: {:e}}}]\n",
            0.3 + 0.1 * i as f64
        ));
    }
    for j in 0..n {
        text.push_str(&format!(
            "    - [n{j}/qif_net_op/r, d/drive_op/r_in, null, {{weight: 0.5}}]\n"
        ));
    }
    let points = spread_points(28);
    let (c, params) = prepared(&load(&text), &points);
    let net = crate::model::network::plan(&c).expect("a network");
    assert_eq!(net.populations.len(), 2);
    assert_eq!(net.couplings.len(), 2);
    let outputs: Vec<OutputBinding> = ["n0/qif_net_op/r", "n4/qif_net_op/v", "d/drive_op/x"]
        .iter()
        .map(|name| OutputBinding {
            key: name.to_string(),
            var: c.find_var(name).expect("output"),
        })
        .collect();
    for method in [Method::Rk4, Method::Euler] {
        for backend in backends().into_iter().filter(|b| *b != Backend::Reference) {
            let cfg = sim_config(method, 200, 1e-4, 10);
            let a = assert_loops_equal_unrolled_run(backend, &c, &cfg, &outputs, &params, points.len());
            // The driver moved away from its initial value: the coupling into it is live.
            assert!(a.trace(2, 0).iter().any(|x| (x - 0.2).abs() > 1e-3), "{method:?}");
        }
    }
}

/// Single precision: the network's `rustrates_net_rhs_f32` (weights and per-node constants
/// rounded to float once, as the unrolled code's literals are) against the reference
/// evaluator in single precision. 1e-5 (relative, absolute below 1): a few float operations
/// per value (float epsilon 6e-8 each) on values of order 1 to 10; a wrong term or slot is off
/// by far more.
#[test]
fn network_single_precision_matches_the_reference_evaluator() {
    let Some(dir) = c_scratch_dir() else { return };
    let points = spread_points(28);
    let lanes = points.len();
    let (c, params) = prepared(&load(&yaml(7, 0.0, 1e-4, |_, _| true)), &points);
    let compile = |backend| kernel_in(&c, backend, super::Precision::F32, dir.path());
    let (ck, rk) = (compile(Backend::C), compile(Backend::Reference));
    assert!(ck.is_network());
    let layout = c.layout();
    let ns = layout.states.len();
    let y: Vec<f32> = (0..ns * lanes)
        .map(|x| 0.01 + 0.003 * (x as f32 * 0.37).sin() - if x / lanes % 2 == 1 { 2.0 } else { 0.0 })
        .collect();
    let p: Vec<f32> = params.iter().map(|&x| x as f32).collect();
    let u = vec![0.0f32; layout.inputs.len() * lanes];
    let rhs_of = |k: &Kernel| eval(k, 0.0, lanes, [&y, &p, &u], &mut KernelCtx::default());
    let (cd, ca) = rhs_of(&ck);
    let (rd, ra) = rhs_of(&rk);
    for (x, w) in cd.iter().zip(&rd).chain(ca.iter().zip(&ra)) {
        assert!((x - w).abs() <= 1e-5 * w.abs().max(1.0), "{x} vs {w}");
    }
}

/// `n` nodes with the C program's weights and a delay of `delay(i, j)` seconds on every edge
/// `edges(i, j)` (from `j` to `i`), edges into each target in source order.
fn yaml_with_delays(n: usize, delay: impl Fn(usize, usize) -> f64, edges: impl Fn(usize, usize) -> bool) -> String {
    let mut s = String::from(crate::model::network::testing::OPERATOR);
    s.push_str("Net:\n  base: CircuitTemplate\n  nodes:\n");
    for i in 0..n {
        s.push_str(&format!("    n{i}: qif_net_pop\n"));
    }
    s.push_str("  edges:\n");
    for i in 0..n {
        for j in (0..n).filter(|&j| edges(i, j)) {
            s.push_str(&format!(
                "    - [n{j}/qif_net_op/r, n{i}/qif_net_op/r_in, null, {{weight: {:e}, delay: {:e}}}]\n",
                weight(n, i, j),
                delay(i, j)
            ));
        }
    }
    s
}

/// How many values of two runs differ in their bits.
fn differing_bits(a: &[f64], b: &[f64]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count()
}

fn r_outputs(c: &Circuit) -> Vec<OutputBinding> {
    vars_ending(c, "/qif_net_op/r")
        .into_iter()
        .map(|var| OutputBinding {
            key: c.var(var).name.clone(),
            var,
        })
        .collect()
}

/// The ring buffer's edge cases: delays shorter than a step (0.3 and 0.7 steps: read inside
/// the step in progress, by Hermite on the newest step or by extrapolation at later stages),
/// zero (an ordinary read), fractional (7.25 steps), and longer than the run (always the
/// initial value), in an all-to-all and a sparse ring network, with Euler, RK4 (stage reads
/// half a step ahead) and Heun. The C loops read the ring; the reference evaluator runs the
/// unrolled circuit through the solver's deque history: equal bit for bit (the ring resolves
/// the same slopes and computes the same Hermite weights, in the same order). rk45 keeps the
/// `past` hook on the C back end (no ring): equal bit for bit too. The JIT's engine coupling
/// reads the same ring (`DelayRing::tap` per term), and the hook under rk45: equal too.
#[test]
fn network_ring_reads_equal_the_unrolled_run_for_short_zero_and_long_delays() {
    let (n, dt, steps) = (7, 1e-4, 300);
    let t_end = steps as f64 * dt;
    let menu = [0.0, 0.3 * dt, 0.7 * dt, 7.25 * dt, 3.0 * dt, 2.0 * t_end];
    let delay = |i: usize, j: usize| menu[(3 * i + 5 * j) % menu.len()];
    let ring = |i: usize, j: usize| j == (i + 1) % n || (j + 2) % n == i || i == j;
    let dir = tempfile::tempdir().expect("temp dir");
    let points = spread_points(20);
    let lanes = points.len();
    let cases = [
        ("all-to-all", yaml_with_delays(n, delay, |_, _| true)),
        ("sparse", yaml_with_delays(n, delay, ring)),
    ];
    for (name, text) in cases {
        let (c, params) = prepared(&load(&text), &points);
        let rk = kernel(&c, Backend::Reference, dir.path());
        let outputs = r_outputs(&c);
        let init = default_init(&c, lanes);
        for backend in backends().into_iter().filter(|b| *b != Backend::Reference) {
            let ck = kernel(&c, backend, dir.path());
            assert!(ck.is_network(), "{name}, {backend:?}");
            // The C loops and the JIT's engine read a ring spanning the longest delay.
            let span = Some(2.0 * t_end);
            assert_eq!(ck.delay_ring_span(), span, "{name}, {backend:?}");
            for method in [
                Method::Euler,
                Method::Rk4,
                Method::Heun,
                Method::Rk45 { rtol: 1e-6, atol: 1e-9 },
            ] {
                let cfg = SimConfig::new(method, t_end, dt, Some(10.0 * dt));
                let a = simulate(&ck, &cfg, &[], &outputs, &params, &init, lanes).expect("runs");
                let b = simulate(&rk, &cfg, &[], &outputs, &params, &init, lanes).expect("runs");
                assert!(a.data.iter().all(|x| x.is_finite()), "{name} {method:?}");
                let differ = differing_bits(&a.data, &b.data);
                assert_eq!(
                    differ,
                    0,
                    "{name}, {backend:?}, {method:?}: {differ} of {} values differ",
                    a.data.len()
                );
            }
        }
    }
}

/// With delays, a lane's result does not depend on its block either: 28 points in one block
/// (each lane's history in the ring, read by the C loops and the JIT's engine) equal each point run
/// alone, bit for bit (RK4).
#[test]
fn network_delayed_lanes_equal_single_runs_bit_for_bit() {
    for backend in backends().into_iter().filter(|b| *b != Backend::Reference) {
        assert_network_lanes_equal_single_runs(backend, 6, 0.002);
    }
}

/// An Euler run of the delayed C loops (and of the JIT's population loops, the engine reading
/// the delayed terms from the ring) over `lanes` spread points equals the reference
/// evaluator's run of the same circuit bit for bit, in each of `precisions`. The step is
/// 2⁻¹³ s so that the delays (whole steps, 0 to 16), rounded to float as a single-precision run
/// rounds them, are still whole steps (with 1e-4 they become fractions of a step and take the
/// Hermite path). Bitwise because the loops add the same rows in the same order as the
/// reference, and a row read one step off changes the result by far less than a float
/// tolerance.
fn assert_delayed_columns_equal_the_reference(lanes: usize, precisions: &[super::Precision]) {
    let dir = tempfile::tempdir().expect("temp dir");
    const DT: f64 = 1.0 / 8192.0;
    let points = spread_points(lanes);
    let (c, params) = prepared(&load(&yaml(6, 0.002, DT, |_, _| true)), &points);
    let cfg = sim_config(Method::Euler, 300, DT, 10);
    let init = default_init(&c, lanes);
    let outputs = r_outputs(&c);
    for &precision in precisions {
        let compile = |backend| kernel_in(&c, backend, precision, dir.path());
        let rk = compile(Backend::Reference);
        let b = simulate(&rk, &cfg, &[], &outputs, &params, &init, lanes).expect("runs");
        for backend in backends().into_iter().filter(|b| *b != Backend::Reference) {
            let ck = compile(backend);
            assert!(ck.is_network(), "{backend:?}");
            assert!(ck.delay_ring_span().is_some(), "{backend:?}");
            let a = simulate(&ck, &cfg, &[], &outputs, &params, &init, lanes).expect("runs");
            assert!(a.data.iter().all(|x| x.is_finite()) && a.data.iter().any(|x| *x != 0.0));
            let differ = differing_bits(&a.data, &b.data);
            assert_eq!(
                differ,
                0,
                "{backend:?}, {precision:?}: {differ} of {} values differ",
                a.data.len()
            );
        }
    }
}

/// The delayed column loops in single precision (`rr_ring_columns_f`: whole-step rows
/// converted to float per lane, zero delays read now), 28 lanes (a chunk, a vector of 16
/// floats, the rest lane by lane).
#[test]
fn network_delayed_columns_in_single_precision_match_the_reference_evaluator() {
    assert_delayed_columns_equal_the_reference(28, &[super::Precision::F32]);
}

/// Two threads split a 16-point sweep into blocks of 8 lanes, which the delayed column loop
/// runs at that width (`rr_column_rows` specialised for half a chunk), in both precisions.
#[test]
fn network_delayed_columns_of_eight_lanes_equal_the_reference_evaluator_bit_for_bit() {
    assert_delayed_columns_equal_the_reference(8, &[super::Precision::F64, super::Precision::F32]);
}
