//! `connectivity:` blocks (edges as matrices): the same network written as an edge list, as an
//! inline matrix and as a `.npy` file gives the same sweep bit for bit on every back end; a
//! G × eta sweep of the matrix form equals a transcription of `shared/bench/network_grid.c`;
//! bad matrices are reported at their line and column.

use std::path::Path;

use indexmap::IndexMap;
use rustrates::kernel::precision::Real;
use rustrates::kernel::{Backend, Kernel, KernelCtx, KernelOptions};
use rustrates::model::load_circuit;
use rustrates::model::network::{plan, Scale};
use rustrates::model::passes::{expand_couplings, lower_edges, lower_edges_keeping_couplings, specialize_params};
use rustrates::model::test_models::network_grid::{self, OPERATOR};
use rustrates::model::test_models::{npy_bytes, npy_file_bytes, var_ids_named, yaml_matrix};
use rustrates::solve::{Method, SimConfig};
use rustrates::sweep::{Grid, MemorySink, ParamMap, SweepResult, SweepSpec};
use rustrates::template::LoadOptions;

use crate::support::{backends, bits, c_available, load_net};

mod delays;

const DT: f64 = 1e-4;

/// `network_grid.c`'s `W[i][j]` (from `j` to `i`); with `sparse`, every third entry is 0 so
/// the matrix forms must leave those edges out as the edge list does, and rows 7 and `n - 1`
/// are all 0 (a target with no term keeps its external input alone: a row inside the block
/// and its last, where a row-start walk could read its neighbour's entries or past the end).
fn weight(n: usize, i: usize, j: usize, sparse: bool) -> f64 {
    if sparse && ((i + 2 * j).is_multiple_of(3) || i == 7 || i == n - 1) {
        return 0.0;
    }
    network_grid::weight(n, i, j)
}

/// `network_grid.c`'s delays, whole steps.
fn delay(dmax: f64, i: usize, j: usize) -> f64 {
    network_grid::delay_steps(dmax, DT, i, j) as f64 * DT
}

fn header(n: usize) -> String {
    let mut s = String::from(OPERATOR);
    s.push_str("Net:\n  base: CircuitTemplate\n  nodes:\n");
    for i in 0..n {
        s.push_str(&format!("    n{i}: qif_net_pop\n"));
    }
    s
}

fn node_list(n: usize) -> String {
    (0..n).map(|i| format!("n{i}")).collect::<Vec<_>>().join(", ")
}

/// Edges written one by one, targets outer (as the bench writes them): a target's terms are
/// in source order either way, which is all the sum's rounding depends on.
fn edge_list(n: usize, sparse: bool, dmax: f64) -> String {
    let mut s = header(n);
    s.push_str("  edges:\n");
    for i in 0..n {
        for j in 0..n {
            let w = weight(n, i, j, sparse);
            if w == 0.0 {
                continue;
            }
            let d = if dmax > 0.0 {
                format!(", delay: {:?}", delay(dmax, i, j))
            } else {
                String::new()
            };
            s.push_str(&format!(
                "    - [n{j}/qif_net_op/r, n{i}/qif_net_op/r_in, null, {{weight: {w:?}{d}}}]\n"
            ));
        }
    }
    s
}

fn matrix_block(n: usize, weight: &str, delay: Option<&str>) -> String {
    let mut s = header(n);
    s.push_str(&format!(
        "  connectivity:\n    - source: qif_net_op/r\n      target: qif_net_op/r_in\n      source_nodes: [{}]\n      weight: {weight}\n",
        node_list(n)
    ));
    if let Some(d) = delay {
        s.push_str(&format!("      delay: {d}\n"));
    }
    s
}

/// `w.npy` and `d.npy`: the weights (every third 0 if `sparse`) and delays of `network_grid.c`.
fn write_weights_and_delays(dir: &Path, n: usize, sparse: bool, dmax: f64) {
    write_npy(&dir.join("w.npy"), n, |i, j| weight(n, i, j, sparse));
    write_npy(&dir.join("d.npy"), n, |i, j| delay(dmax, i, j));
}

/// The grid of `G` and `eta` values (Cartesian, G fastest, in the sweeps here).
fn g_eta_grid(g: &[f64], eta: &[f64]) -> IndexMap<String, Vec<f64>> {
    [("G".to_string(), g.to_vec()), ("eta".to_string(), eta.to_vec())]
        .into_iter()
        .collect()
}

/// A temporary folder holding `w.npy`: `network_grid.c`'s dense `n × n` weights.
fn dir_with_dense_weights(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write_npy(&dir.path().join("w.npy"), n, |i, j| weight(n, i, j, false));
    dir
}

/// A `.npy` file (format 1.0, C order) of the `n × n` matrix `f(i, j)`.
fn write_npy(path: &Path, n: usize, f: impl Fn(usize, usize) -> f64) {
    let values: Vec<f64> = (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| f(i, j))
        .collect();
    std::fs::write(path, npy_bytes(n, n, &values, false)).expect("write .npy");
}

/// A G × eta sweep (G fastest, as `network_grid.c`'s grid), every node's r at every step;
/// G is every node's `G`.
fn sweep(dir: &Path, file: &str, yaml: &str, n: usize, backend: Backend, steps: usize) -> SweepResult {
    let nodes: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let map = ParamMap::new()
        .nodes("G", &["qif_net_op/G"], &nodes)
        .nodes("eta", &["qif_net_op/eta"], &nodes);
    let values = g_eta_grid(&[0.0, 1.0, 2.0], &[-6.0, -4.0]);
    sweep_with(dir, file, yaml, &values, map, backend, Method::Euler, steps)
}

/// One sweep of the circuit `Net` in `yaml` (written as `file` in `dir`) over the grid
/// `values`, r of every node sampled every step, one thread, in memory.
#[allow(clippy::too_many_arguments)]
fn sweep_with(
    dir: &Path,
    file: &str,
    yaml: &str,
    values: &IndexMap<String, Vec<f64>>,
    map: ParamMap,
    backend: Backend,
    method: Method,
    steps: usize,
) -> SweepResult {
    let circuit = load_net(dir, file, yaml);
    let grid = Grid::from_values(values, true).expect("grid");
    let sim = SimConfig {
        simulation_time: steps as f64 * DT,
        dt: DT,
        sampling_step: Some(DT),
        method,
        cutoff: 0.0,
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = vec![("r".into(), "all/qif_net_op/r".into())];
    spec.backend = backend;
    spec.threads = Some(1);
    let mut sink = MemorySink::new();
    rustrates::sweep::run(&spec, &circuit, &mut sink).unwrap_or_else(|e| panic!("{file}: {e}"));
    sink.into_result().expect("result")
}

#[test]
fn matrix_forms_run_the_edge_list_bit_for_bit() {
    let dir = tempfile::tempdir().expect("temp dir");
    // N = 5 with delays (history reads), N = 20 sparse (left-out zeros, population loops in C).
    for (n, sparse, dmax) in [(5, false, 0.002), (20, true, 0.0)] {
        let w = |i, j| weight(n, i, j, sparse);
        let d = |i, j| if dmax > 0.0 { delay(dmax, i, j) } else { 0.0 };
        write_npy(&dir.path().join(format!("w{n}.npy")), n, w);
        write_npy(&dir.path().join(format!("d{n}.npy")), n, d);
        let inline_delay = yaml_matrix(n, d);
        let forms = [
            ("edges", edge_list(n, sparse, dmax)),
            (
                "inline",
                matrix_block(n, &yaml_matrix(n, w), (dmax > 0.0).then_some(inline_delay.as_str())),
            ),
            (
                "npy",
                matrix_block(
                    n,
                    &format!("w{n}.npy"),
                    (dmax > 0.0).then_some(format!("d{n}.npy").as_str()),
                ),
            ),
            // A scale of 1 (not swept: a constant) multiplies exactly.
            (
                "scaled",
                matrix_block(
                    n,
                    &format!("w{n}.npy"),
                    (dmax > 0.0).then_some(format!("d{n}.npy").as_str()),
                ) + "      name: C\n      scale: 1.0\n",
            ),
        ];
        for backend in backends() {
            let results: Vec<(&str, SweepResult)> = forms
                .iter()
                .map(|(name, yaml)| {
                    (
                        *name,
                        sweep(dir.path(), &format!("{name}{n}.yaml"), yaml, n, backend, 200),
                    )
                })
                .collect();
            let reference = bits(&results[0].1);
            assert!(results[0].1.traces.as_ref().unwrap().iter().all(|x| x.is_finite()));
            for (name, r) in &results[1..] {
                assert_eq!(r.columns, results[0].1.columns, "{name}, N = {n}, {backend:?}");
                assert!(
                    bits(r) == reference,
                    "{name} differs from the edge list: N = {n}, {backend:?}"
                );
            }
        }
    }
}

/// Every node's `G` and `eta`, and the block's scale when it has one: what a sweep over
/// them leaves per lane.
fn per_lane(c: &rustrates::model::Circuit) -> Vec<rustrates::model::VarId> {
    var_ids_named(c, |name| {
        name.ends_with("/G") || name.ends_with("/eta") || name == "C/scale"
    })
}

/// `compiled` compiled by the C back end (into a cache of its own, so it is compiled here), or
/// `None` without a C compiler (said on stderr; a failure under CI).
fn c_kernel(compiled: &rustrates::model::Circuit) -> Option<Kernel> {
    if !c_available() {
        return None;
    }
    let cache = tempfile::tempdir().expect("temp dir");
    let options = KernelOptions {
        backend: Backend::C,
        cache_dir: Some(cache.path().to_path_buf()),
        ..KernelOptions::default()
    };
    Some(Kernel::compile(compiled, &options).expect("compiles"))
}

#[test]
fn a_block_is_one_coupling_in_the_ir_and_plans_as_its_expansion() {
    let dir = tempfile::tempdir().expect("temp dir");
    // N = 5 with delays, N = 20 sparse, N = 20 dense and scaled.
    for (n, sparse, dmax, scaled) in [(5, false, 0.002, false), (20, true, 0.0, false), (20, false, 0.0, true)] {
        write_weights_and_delays(dir.path(), n, sparse, dmax);
        let mut yaml = matrix_block(n, "w.npy", (dmax > 0.0).then_some("d.npy"));
        if scaled {
            yaml += "      name: C\n      scale: 1.5\n";
        }
        let c = load_net(dir.path(), &format!("node{n}.yaml"), &yaml);
        let list = load_net(dir.path(), &format!("list{n}.yaml"), &edge_list(n, sparse, dmax));
        let case = format!("N = {n}, sparse {sparse}, delays {}, scaled {scaled}", dmax > 0.0);
        // One node: no edge, no parameter per entry; the edge list has one weight (and one
        // delay) parameter per edge, otherwise the same variables.
        assert!(c.edges.is_empty(), "{case}");
        assert_eq!(c.couplings.len(), 1, "{case}");
        let cp = &c.couplings[0];
        assert_eq!(cp.len(), list.edges.len(), "{case}: one entry per edge");
        assert_eq!(cp.is_dense(), !sparse, "{case}");
        let per_edge = if dmax > 0.0 { 2 } else { 1 };
        assert_eq!(
            c.vars.len() + per_edge * list.edges.len(),
            list.vars.len() + usize::from(scaled),
            "{case}"
        );
        // The entries are the edge list's weights and delays, row by row in source order.
        for (i, t) in cp.targets.iter().enumerate() {
            let into: Vec<_> = list.edges.iter().filter(|e| e.target == *t).collect();
            let row: Vec<_> = cp.row(i).collect();
            assert_eq!(row.len(), into.len(), "{case}: row {i}");
            for ((e, j), edge) in row.into_iter().zip(into) {
                assert_eq!(cp.sources[j], edge.source, "{case}: row {i}");
                let value = |k: &str| list.var(edge.param(k).expect(k)).value;
                assert_eq!(cp.weights[e].to_bits(), value("weight").to_bits(), "{case}: row {i}");
                if dmax > 0.0 {
                    assert_eq!(cp.delay(e), Some(value("delay")), "{case}: row {i}");
                }
            }
        }
        // Lowering keeps it; the network plan read from the node equals the plan parsed from
        // the sums written out (the form the other back ends run), field for field.
        let kept = lower_edges_keeping_couplings(&c);
        assert_eq!(kept.couplings.len(), 1, "{case}");
        assert!(kept.couplings[0].lowered);
        let compiled = specialize_params(&kept, &per_lane(&kept));
        let from_node = plan(&compiled);
        let from_sums = plan(&expand_couplings(&compiled));
        assert!(from_sums.is_ok(), "{case}: {from_sums:?}");
        assert_eq!(from_node, from_sums, "{case}");
        assert_eq!(expand_couplings(&kept).layout(), kept.layout(), "{case}: same buffers");
        if let Some(kernel) = c_kernel(&compiled) {
            assert!(kernel.is_network(), "{case}: the C loops run the node");
        }
        // Reference and JIT: the engine runs a coupling of states without delays before the
        // compiled right-hand side; one evaluation equals the written-out sums bit for bit.
        for backend in [Backend::Reference, Backend::Jit] {
            let options = KernelOptions {
                backend,
                ..KernelOptions::default()
            };
            let node = Kernel::compile(&compiled, &options).expect("compiles");
            let written = Kernel::compile(&expand_couplings(&compiled), &options).expect("compiles");
            // With delays the block is written out; the JIT then reads the written-out sums
            // back as couplings (as it does an edge list's, delayed terms through the `past`
            // hook); the reference evaluator sums them itself.
            assert_eq!(
                node.runs_couplings(),
                dmax == 0.0 || backend == Backend::Jit,
                "{case}, {backend:?}"
            );
            assert_eq!(written.runs_couplings(), backend == Backend::Jit, "{case}, {backend:?}");
            let (dy_node, a_node) = evaluate(&node);
            let (dy_written, a_written) = evaluate(&written);
            assert!(dy_node == dy_written, "{case}, {backend:?}: derivatives differ");
            assert!(a_node == a_written, "{case}, {backend:?}: algebraics differ");
            // Single precision: every operation of the sum rounded to f32 in both forms.
            let options = KernelOptions {
                backend,
                precision: rustrates::kernel::Precision::F32,
                ..KernelOptions::default()
            };
            let node = Kernel::compile(&compiled, &options).expect("compiles");
            let written = Kernel::compile(&expand_couplings(&compiled), &options).expect("compiles");
            assert!(
                evaluate_in::<f32>(&node) == evaluate_in::<f32>(&written),
                "{case}, {backend:?}, f32: evaluations differ"
            );
        }
    }
}

/// One evaluation of `kernel` in precision `R` over 11 lanes at states, parameters and inputs
/// that differ per lane: the derivatives and the algebraics, as the bits of each value widened
/// to `f64` (exact, so equal bits are equal values of `R`).
fn evaluate_in<R: Real>(kernel: &Kernel) -> (Vec<u64>, Vec<u64>) {
    // A chunk of 8 lanes (the engine coupling's register path) and 3 more (its lane-by-lane path).
    let lanes = 11;
    let l = kernel.layout();
    let c = kernel.circuit();
    let spread = |k: usize, lane: usize| 1.0 + 0.01 * ((k * 7 + lane * 3) % 11) as f64;
    // `1e-4 · k` per slot: no two input slots alike though every default is 0 (an empty row's
    // sum slot must not happen to hold its external input's values), nor states or parameters
    // (with equal slots, `v^2` by `pow` and by a product happened to agree).
    let per_lane = |vars: &[rustrates::model::VarId]| -> Vec<R> {
        vars.iter()
            .enumerate()
            .flat_map(|(k, v)| {
                (0..lanes)
                    .map(move |lane| R::of(c.var(*v).value * spread(k, lane) + 0.001 * lane as f64 + 1e-4 * k as f64))
            })
            .collect()
    };
    let (y, p, u) = (per_lane(&l.states), per_lane(&l.params), per_lane(&l.inputs));
    let mut dy = vec![R::ZERO; l.states.len() * lanes];
    let mut a = vec![R::ZERO; l.algebraics.len() * lanes];
    R::rhs(
        kernel,
        0.0,
        lanes,
        &y,
        &p,
        &u,
        &mut dy,
        &mut a,
        &mut KernelCtx::default(),
    );
    let bits = |v: &[R]| v.iter().map(|x| x.wide().to_bits()).collect();
    (bits(&dy), bits(&a))
}

/// [`evaluate_in`] in double precision.
fn evaluate(kernel: &Kernel) -> (Vec<u64>, Vec<u64>) {
    evaluate_in::<f64>(kernel)
}

#[test]
fn a_block_sharing_a_target_with_an_edge_is_written_out_in_the_edge_lists_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 6;
    let extra = "    - [n0/qif_net_op/r, n1/qif_net_op/r_in, null, {weight: 0.37}]\n";
    // A circuit's edges come before its blocks, so the extra edge is first in the list too.
    let list = edge_list(n, true, 0.0).replacen("  edges:\n", &format!("  edges:\n{extra}"), 1);
    let block = matrix_block(n, &yaml_matrix(n, |i, j| weight(n, i, j, true)), None) + "  edges:\n" + extra;
    let c = load_net(dir.path(), "shared.yaml", &block);
    assert_eq!(c.couplings.len(), 1);
    assert!(
        lower_edges_keeping_couplings(&c).couplings.is_empty(),
        "n1's input is fed twice: the block is written out"
    );
    for backend in backends() {
        let want = sweep(dir.path(), "list.yaml", &list, n, backend, 200);
        let got = sweep(dir.path(), "block.yaml", &block, n, backend, 200);
        assert!(bits(&got) == bits(&want), "{backend:?}: differs from the edge list");
    }
}

/// `network_grid.c`'s loop for one point: r of every node after every step, `[step][node]`;
/// with `dmax > 0` it reads r of the step `s − round(D/dt)` (the initial value before 0).
fn transcription(n: usize, g: f64, eta: f64, steps: usize, dmax: f64) -> Vec<Vec<f64>> {
    let steps_of = |i, j| {
        if dmax > 0.0 {
            network_grid::delay_steps(dmax, DT, i, j)
        } else {
            0
        }
    };
    transcription_with(n, g, eta, steps, steps_of)
}

/// [`transcription`] with the delay of each entry given in whole steps.
#[allow(clippy::needless_range_loop)]
fn transcription_with(
    n: usize,
    g: f64,
    eta: f64,
    steps: usize,
    delay_steps: impl Fn(usize, usize) -> usize,
) -> Vec<Vec<f64>> {
    let pi = std::f64::consts::PI;
    let (mut r, mut v) = (vec![0.01; n], vec![-2.0; n]);
    let mut hist = vec![r.clone()];
    for s in 0..steps {
        let mut rin = vec![0.0; n];
        for i in 0..n {
            let mut acc = 0.0;
            for j in 0..n {
                let d = delay_steps(i, j);
                acc += weight(n, i, j, false) * s.checked_sub(d).map_or(0.01, |k| hist[k][j]);
            }
            rin[i] = g * acc;
        }
        for i in 0..n {
            let (a, b) = (r[i], v[i]);
            r[i] = a + DT * (1.0 / pi + 2.0 * a * b);
            v[i] = b + DT * (b * b + eta + rin[i] - (pi * a) * (pi * a));
        }
        hist.push(r.clone());
    }
    hist
}

/// The worst relative difference of every node's r trace from the transcription of the
/// point's G and eta (the grid's first and second key).
fn worst_against_transcription(res: &SweepResult, n: usize, steps: usize, dmax: f64) -> f64 {
    worst_against(res, |p| {
        transcription(n, res.grid_values[0][p], res.grid_values[1][p], steps, dmax)
    })
}

/// The worst relative difference of every node's r trace from `want(point)` (`[step][node]`).
fn worst_against(res: &SweepResult, want: impl Fn(usize) -> Vec<Vec<f64>>) -> f64 {
    let mut worst: f64 = 0.0;
    for p in 0..res.labels.len() {
        let want = want(p);
        for (c, (node, _)) in res.columns.iter().enumerate() {
            let i: usize = node.trim_start_matches('n').parse().expect("node index");
            let got = res.trace(p, c).expect("trace");
            for (k, x) in got.iter().enumerate() {
                worst = worst.max((x - want[k][i]).abs() / want[k][i].abs().max(1e-300));
            }
        }
    }
    worst
}

/// An Euler sweep of `yaml` over the grid `values` of [`scale_map`].
fn scale_sweep(
    dir: &Path,
    file: &str,
    yaml: &str,
    values: &IndexMap<String, Vec<f64>>,
    n: usize,
    backend: Backend,
    steps: usize,
) -> SweepResult {
    sweep_with(dir, file, yaml, values, scale_map(n), backend, Method::Euler, steps)
}

/// `param_map` naming a connectivity's scale (`C/scale`) as G, and every node's eta.
fn scale_map(n: usize) -> ParamMap {
    let nodes: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    ParamMap::new()
        .nodes("eta", &["qif_net_op/eta"], &nodes)
        .paths("G", &["C/scale"])
}

fn trace_bits(res: &SweepResult, point: usize) -> Vec<u64> {
    (0..res.columns.len())
        .flat_map(|c| res.trace(point, c).expect("trace"))
        .map(f64::to_bits)
        .collect()
}

/// Lanes are single runs: point `p` of `res` (a G × eta sweep of `yaml` over [`scale_map`])
/// run alone gives the same bits.
fn assert_point_is_its_single_run(
    dir: &Path,
    yaml: &str,
    res: &SweepResult,
    p: usize,
    n: usize,
    backend: Backend,
    steps: usize,
) {
    let one = g_eta_grid(&[res.grid_values[0][p]], &[res.grid_values[1][p]]);
    let alone = scale_sweep(dir, "one.yaml", yaml, &one, n, backend, steps);
    assert!(
        trace_bits(res, p) == trace_bits(&alone, 0),
        "{backend:?}: point {p} in a sweep differs from its single run"
    );
}

#[test]
fn global_coupling_scale_sweeps_per_lane_as_the_c_program() {
    let (n, steps) = (20, 300);
    let dir = dir_with_dense_weights(n);
    // The nodes' own G stays 1; the block's scale is the global coupling.
    let yaml = matrix_block(n, "w.npy", None) + "      name: C\n      scale: 1.0\n";
    let values = g_eta_grid(&[0.0, 0.5, 1.0, 2.0], &[-6.0, -5.0, -4.0]);
    for backend in backends() {
        let res = scale_sweep(dir.path(), "net.yaml", &yaml, &values, n, backend, steps);
        let worst = worst_against_transcription(&res, n, steps, 0.0);
        // As in the test below: the same operations, a few ulps apart at most.
        assert!(worst <= 1e-12, "{backend:?}: relative difference {worst:e}");
        for p in [0, 5, 11] {
            assert_point_is_its_single_run(dir.path(), &yaml, &res, p, n, backend, steps);
        }
    }
    // The C back end runs it as loops with the weights shared by every lane: the scale is the
    // coupling's only per-lane value.
    let low = lower_edges(&load_net(dir.path(), "net.yaml", &yaml));
    let scale = low.find_var("C/scale").expect("the scale parameter");
    let net = plan(&specialize_params(&low, &[scale])).expect("a network");
    assert_eq!(net.couplings.len(), 1);
    assert_eq!(net.couplings[0].scale, Some(Scale::Param(scale)));
    assert!(net.couplings[0].dense);
    if let Some(kernel) = c_kernel(&specialize_params(&low, &[scale])) {
        assert!(
            kernel.is_network(),
            "the C back end compiled the scaled coupling as loops"
        );
    }
}

#[test]
fn matrix_sweep_of_g_and_eta_equals_the_c_program_transcription() {
    let (n, steps) = (20, 300);
    let dir = dir_with_dense_weights(n);
    let yaml = matrix_block(n, "w.npy", None);
    for backend in backends() {
        let res = sweep(dir.path(), "net.yaml", &yaml, n, backend, steps);
        assert_eq!(res.time.len(), steps);
        let worst = worst_against_transcription(&res, n, steps, 0.0);
        // Same operations as the C program; only the association of `G·Σ` and of the
        // equations' terms may differ, a few ulps per step over 300 steps.
        assert!(worst <= 1e-12, "{backend:?}: relative difference {worst:e}");
    }
}

/// Code, line and column of every error of loading `Net` from `yaml`.
fn errors(dir: &Path, yaml: &str) -> Vec<(String, usize, usize, String)> {
    let path = dir.join("bad.yaml");
    std::fs::write(&path, yaml).expect("write");
    let failure = match load_circuit(&format!("{}/Net", path.display()), &LoadOptions::default()) {
        Ok(_) => panic!("loads:\n{yaml}"),
        Err(f) => f,
    };
    failure
        .diagnostics
        .iter()
        .map(|d| {
            let (l, c) = d.span.map_or((0, 0), |s| failure.sources.line_col(s));
            (d.code.to_string(), l, c, d.message.clone())
        })
        .collect()
}

/// Line and column (from 1) of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in the text"));
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |k| k + 1) + 1;
    (line, col)
}

/// Loading `Net` from `yaml` fails with exactly one error (one per mistake, not one per
/// entry): `code` at the first `at`, its message containing `message`.
fn assert_one_error_at(dir: &Path, code: &str, yaml: &str, at: &str, message: &str) {
    let errs = errors(dir, yaml);
    let (l, c) = position(yaml, at);
    assert!(
        errs.iter()
            .any(|(k, el, ec, m)| k == code && (*el, *ec) == (l, c) && m.contains(message)),
        "want {code} at {l}:{c} ({message}); got {errs:?}"
    );
    assert_eq!(errs.len(), 1, "one error per mistake, not one per entry: {errs:?}");
}

#[test]
fn bad_matrices_are_reported_where_they_are_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 3;
    write_npy(&dir.path().join("w2.npy"), 2, |_, _| 1.0);
    write_npy(&dir.path().join("wnan.npy"), 3, |i, j| {
        if (i, j) == (2, 0) {
            f64::NAN
        } else {
            1.0
        }
    });
    // (weight, delay, where the error points, what it says)
    let invalid: [(&str, Option<&str>, &str, &str); 8] = [
        // Two rows for three target nodes; a row of the wrong length.
        (
            "[[1, 2, 3], [4, 5, 6]]",
            None,
            "[[1, 2, 3], [4, 5, 6]]",
            "has 2 rows, expected 3",
        ),
        (
            "[[1, 2, 3], [4, 5], [7, 8, 9]]",
            None,
            "[4, 5]",
            "row 1 of `weight` has 2 values",
        ),
        // NaN, as YAML and as JSON (numpy's json.dumps) write it.
        (
            "[[1, 2, 3], [4, .nan, 6], [7, 8, 9]]",
            None,
            ".nan",
            "`weight`[1][1] must be a finite number",
        ),
        ("[[1, 2, 3], [4, 5, 6], [7, NaN, 9]]", None, "NaN", "`weight`[2][1]"),
        // A negative delay.
        (
            "1.0",
            Some("[[0, 0, 0], [0, -0.001, 0], [0, 0, 0]]"),
            "-0.001",
            "`delay`[1][1] must be a finite number >= 0",
        ),
        // A .npy file of the wrong shape, one that is missing, and a NaN inside one: at the
        // file's name (with the entry).
        ("w2.npy", None, "w2.npy", "has shape [2, 2], expected [3, 3]"),
        ("nowhere.npy", None, "nowhere.npy", "cannot read"),
        ("wnan.npy", None, "wnan.npy", "[2][0] = NaN must be a finite number"),
    ];
    for (weight, delay, at, message) in invalid {
        let yaml = matrix_block(n, weight, delay);
        assert_one_error_at(dir.path(), "connectivity/invalid", &yaml, at, message);
    }
    let block = matrix_block(n, "1.0", None);
    // (code, the change, where the error points, what it says)
    let mistakes = [
        // Unknown variables: once, at the `source` / the node name, not once per entry.
        (
            "edge/unknown-source",
            ("source: qif_net_op/r\n", "source: qif_net_op/rr\n"),
            "qif_net_op/rr",
            "is not a variable",
        ),
        (
            "edge/target-not-input",
            ("target: qif_net_op/r_in", "target: qif_net_op/v"),
            "qif_net_op/v",
            "not an input",
        ),
        // An unknown key, with the likely one.
        (
            "connectivity/unknown-key",
            ("      weight:", "      weights:"),
            "weights",
            "unknown connectivity key `weights`",
        ),
    ];
    for (code, (from, to), at, message) in mistakes {
        assert_one_error_at(dir.path(), code, &block.replace(from, to), at, message);
    }
}

/// A bad value of a `.npy` file past its first 1,024 entries (where a check of the values a
/// block at a time would cross a block), and the first of two, are reported at their own entry.
#[test]
fn bad_values_past_the_first_chunk_of_a_npy_file_are_reported_at_their_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 40; // 1,600 entries
    write_npy(&dir.path().join("wlate.npy"), n, |i, j| match (i, j) {
        (37, 20) => f64::NAN,
        (39, 39) => f64::INFINITY,
        _ => 1.0,
    });
    write_npy(&dir.path().join("dlate.npy"), n, |i, j| {
        if (i, j) == (30, 5) {
            -1.0
        } else {
            0.0
        }
    });
    write_npy(&dir.path().join("dlast.npy"), n, |i, j| {
        if (i, j) == (39, 39) {
            f64::NEG_INFINITY
        } else {
            0.0
        }
    });
    let invalid = [
        (
            "wlate.npy",
            None,
            "wlate.npy",
            "`[37][20] = NaN must be a finite number",
        ),
        (
            "1.0",
            Some("dlate.npy"),
            "dlate.npy",
            "`[30][5] = -1 must be a finite number >= 0",
        ),
        (
            "1.0",
            Some("dlast.npy"),
            "dlast.npy",
            "`[39][39] = -inf must be a finite number >= 0",
        ),
    ];
    for (weight, delay, at, message) in invalid {
        assert_one_error_at(
            dir.path(),
            "connectivity/invalid",
            &matrix_block(n, weight, delay),
            at,
            message,
        );
    }
}

#[test]
fn an_equal_circuit_reuses_its_kernel_and_another_value_compiles_anew() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 6;
    let yaml = matrix_block(n, &yaml_matrix(n, |i, j| weight(n, i, j, false)), None);
    let c = load_net(dir.path(), "shared_kernel.yaml", &yaml);
    let compiled = specialize_params(&lower_edges_keeping_couplings(&c), &[]);
    let options = KernelOptions {
        backend: Backend::Jit,
        ..KernelOptions::default()
    };
    let first = Kernel::compile_shared(&compiled, &options).expect("compiles");
    let again = Kernel::compile_shared(&compiled.clone(), &options).expect("compiles");
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "the same circuit reuses the kernel"
    );
    let reference = KernelOptions {
        backend: Backend::Reference,
        ..KernelOptions::default()
    };
    let other_backend = Kernel::compile_shared(&compiled, &reference).expect("compiles");
    assert!(!std::sync::Arc::ptr_eq(&first, &other_backend));
    assert_eq!(other_backend.backend(), Backend::Reference);
    // One weight changed: a kernel of its own, whose evaluation differs.
    let mut changed = compiled.clone();
    changed.couplings[0].weights[3] *= 2.0;
    let other = Kernel::compile_shared(&changed, &options).expect("compiles");
    assert!(!std::sync::Arc::ptr_eq(&first, &other));
    assert!(evaluate(&other).1 != evaluate(&first).1, "the changed weight is used");
}

#[test]
fn a_large_network_compiles_with_the_fast_register_allocator_and_evaluates_as_the_reference() {
    let n = 500;
    let dir = dir_with_dense_weights(n);
    let c = load_net(dir.path(), "large.yaml", &matrix_block(n, "w.npy", None));
    let kept = lower_edges_keeping_couplings(&c);
    let compiled = specialize_params(&kept, &per_lane(&kept));
    let compile = |backend| {
        Kernel::compile(
            &compiled,
            &KernelOptions {
                backend,
                ..KernelOptions::default()
            },
        )
        .expect("compiles")
    };
    let (jit, reference) = (compile(Backend::Jit), compile(Backend::Reference));
    assert!(
        jit.circuit().exprs.len() > rustrates::kernel::jit::LARGE_CIRCUIT_EXPRS,
        "{} expressions: the single-pass allocator is not exercised",
        jit.circuit().exprs.len()
    );
    assert!(jit.runs_couplings() && reference.runs_couplings());
    // Register allocation changes no value: the same bits as the tree-walking evaluator.
    assert!(evaluate(&jit) == evaluate(&reference), "JIT and reference differ");
}

/// `.npy` weights of other number types and byte orders (what numpy's `astype` then `np.save`
/// write, encoded here by the standard library) load as the values written, dense and sparse;
/// a file of a type the reader does not take is one error at its name, naming the file.
#[test]
fn npy_weights_of_any_number_type_load_as_written_and_bad_ones_are_reported_at_the_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 4;
    // Small integers, exact in every type below, none zero; row 1 all zero when sparse.
    let value = |i: usize, j: usize, sparse: bool| {
        if sparse && i == 1 {
            0.0
        } else {
            (i * n + j) as f64 - 20.0
        }
    };
    for sparse in [false, true] {
        let rows: Vec<f64> = (0..n * n).map(|k| value(k / n, k % n, sparse)).collect();
        let files: [(&str, Vec<u8>); 3] = [
            ("'>f8'", rows.iter().flat_map(|x| x.to_be_bytes()).collect()),
            ("'<f4'", rows.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect()),
            ("'<i2'", rows.iter().flat_map(|&x| (x as i16).to_le_bytes()).collect()),
        ];
        for (descr, data) in files {
            let bytes = npy_file_bytes(descr, &[n, n], false, &data);
            std::fs::write(dir.path().join("w.npy"), bytes).expect("write .npy");
            let c = load_net(dir.path(), "types.yaml", &matrix_block(n, "w.npy", None));
            let cp = &c.couplings[0];
            // The kept entries in row order: every one, or all but row 1's.
            let kept: Vec<f64> = rows.iter().copied().filter(|&w| w != 0.0).collect();
            assert_eq!(&cp.weights[..], &kept[..], "{descr}, sparse {sparse}");
            assert_eq!(cp.is_dense(), !sparse, "{descr}");
        }
    }
    let complex = npy_file_bytes("'<c16'", &[n, n], false, &[0; 256]);
    std::fs::write(dir.path().join("wc.npy"), complex).expect("write .npy");
    let yaml = matrix_block(n, "wc.npy", None);
    assert_one_error_at(
        dir.path(),
        "connectivity/invalid",
        &yaml,
        "wc.npy",
        "wc.npy`: values are '<c16'",
    );
}
