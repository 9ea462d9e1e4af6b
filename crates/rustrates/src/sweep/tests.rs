use std::sync::atomic::{AtomicBool, Ordering};

use super::block::Lanes;
use super::plan::build_plan;
use super::*;
use crate::kernel::{Backend, Kernel, KernelOptions};
use crate::model::{Circuit, VarKind};
use crate::model::{Expr, Ode, Var};
use crate::solve::Method;
use crate::solve::{self, Block, InputBinding, OutputBinding, PointStatus, SampleSink, Signal, SimConfig};
use indexmap::IndexMap;

/// Two nodes `A`, `B` with operator `op`: state `x`, parameter `eta`; `A` also has an
/// input `inp`. The right-hand sides are irrelevant: [`fake_solver`] stands in for the
/// solver with the closed form x(t) = x0 + eta·t.
pub(crate) fn fake_circuit() -> Circuit {
    let mut c = Circuit {
        name: "Toy".into(),
        ..Circuit::default()
    };
    c.nodes = vec!["A".into(), "B".into()];
    c.node_operators = vec![("A".into(), vec!["op".into()]), ("B".into(), vec!["op".into()])];
    let zero = c.add_expr(Expr::Const(0.0));
    for (node, x0, eta) in [("A", 0.5, 1.0), ("B", 0.25, 2.0)] {
        let mk = |name: &str, kind, value| Var {
            name: format!("{node}/op/{name}"),
            kind,
            value,
            node: Some(node.into()),
            external_input: None,
            span: None,
        };
        let x = c.add_var(mk("x", VarKind::State, x0));
        c.add_var(mk("eta", VarKind::Param, eta));
        if node == "A" {
            c.add_var(mk("inp", VarKind::Input, 0.0));
        }
        c.odes.push(Ode {
            var: x,
            rhs: zero,
            span: None,
        });
    }
    c
}

/// x(t) = x0 + eta·t per lane, sampled like the solver (k·dts, t ≥ cutoff); a lane with
/// eta > 100 turns NaN from its first sample after t = 0.5 (status NonFinite there).
pub(crate) fn fake_solver(c: Circuit) -> Box<BlockSolver<'static>> {
    Box::new(
        move |kernel: &Kernel,
              cfg: &SimConfig,
              _inputs: &[InputBinding],
              outputs: &[OutputBinding],
              block: Block<'_>,
              sink: &mut dyn SampleSink| {
            let layout = kernel.layout();
            let lanes = block.lanes;
            let dts = cfg.sampling_step.unwrap_or(cfg.dt);
            let n = (cfg.simulation_time / dts).round() as usize;
            let eta = |o: &OutputBinding, lane: usize| {
                let name = c.var(o.var).name.replace("/x", "/eta");
                let id = c.find_var(&name).expect("every node has eta");
                block.params[layout.slot[id.0 as usize] as usize * lanes + lane]
            };
            let x0 = |o: &OutputBinding, lane: usize| block.init[layout.slot[o.var.0 as usize] as usize * lanes + lane];
            let mut status = vec![PointStatus::Ok; lanes];
            let mut values = vec![0.0; outputs.len() * lanes];
            let mut index = 0;
            for k in 0..n {
                let t = k as f64 * dts;
                for (oi, o) in outputs.iter().enumerate() {
                    for lane in 0..lanes {
                        let e = eta(o, lane);
                        let bad = e > 100.0 && t > 0.5;
                        if bad && status[lane] == PointStatus::Ok {
                            status[lane] = PointStatus::NonFinite { t };
                        }
                        values[oi * lanes + lane] = if bad { f64::NAN } else { x0(o, lane) + e * t };
                    }
                }
                if t >= cfg.cutoff {
                    sink.samples(index, t, lanes, &values);
                    index += 1;
                }
            }
            Ok(status)
        },
    )
}

pub(crate) fn fake_spec(etas: &[f64], x0s: &[f64]) -> SweepSpec {
    let values: IndexMap<String, Vec<f64>> = [("eta".to_string(), etas.to_vec()), ("x0".to_string(), x0s.to_vec())]
        .into_iter()
        .collect();
    let grid = Grid::from_values(&values, true).expect("permuted grids have no length constraint");
    let map = ParamMap::new()
        .nodes("eta", &["eta"], &["A"])
        .nodes("x0", &["op/x"], &["B"]);
    let sim = SimConfig {
        simulation_time: 2.0,
        dt: 0.05,
        sampling_step: Some(0.1),
        method: Method::Euler,
        cutoff: 0.5,
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = vec![("x".into(), "all/op/x".into())];
    spec.backend = Backend::Reference;
    spec
}

pub(crate) fn run_fake(
    spec: &SweepSpec,
    sink: &mut dyn SweepSink,
    ctrl: RunControl<'_>,
) -> Result<SweepSummary, SweepError> {
    let c = fake_circuit();
    let solver = fake_solver(c.clone());
    run_with(
        spec,
        &c,
        sink,
        RunControl {
            solver: Some(&solver),
            ..ctrl
        },
    )
}

fn memory(spec: &SweepSpec) -> SweepResult {
    let mut sink = MemorySink::new();
    run_fake(spec, &mut sink, RunControl::default()).unwrap();
    sink.into_result().unwrap()
}

/// Bitwise equality, NaN included.
pub(crate) fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

pub(crate) fn same_result(a: &SweepResult, b: &SweepResult) -> bool {
    let opt = |x: &Option<Vec<f64>>, y: &Option<Vec<f64>>| match (x, y) {
        (Some(x), Some(y)) => same(x, y),
        (None, None) => true,
        _ => false,
    };
    let sums = match (&a.summaries, &b.summaries) {
        (Some(x), Some(y)) => x.stats == y.stats && x.values.iter().zip(&y.values).all(|(p, q)| same(p, q)),
        (None, None) => true,
        _ => false,
    };
    let status = a.status.len() == b.status.len()
        && a.status.iter().zip(&b.status).all(|(x, y)| match (x, y) {
            (PointStatus::Ok, PointStatus::Ok) => true,
            (PointStatus::NonFinite { t: s }, PointStatus::NonFinite { t }) => s == t,
            (PointStatus::StepTooSmall { t: s }, PointStatus::StepTooSmall { t }) => s == t,
            (PointStatus::Failed, PointStatus::Failed) => true,
            _ => false,
        });
    a.circuit_name == b.circuit_name
        && a.labels == b.labels
        && a.grid_keys == b.grid_keys
        && a.grid_values.iter().zip(&b.grid_values).all(|(x, y)| same(x, y))
        && same(&a.time, &b.time)
        && a.columns == b.columns
        && opt(&a.traces, &b.traces)
        && sums
        && status
}

#[test]
fn run_memory_sink_places_every_point_and_column() {
    let mut spec = fake_spec(&[1.0, -2.0, 3.5], &[0.0, 10.0, 20.0, 30.0]);
    (spec.chunk_size, spec.block_size, spec.threads) = (5, 2, Some(2));
    let r = memory(&spec);
    assert_eq!(
        r.columns,
        vec![("A".to_string(), "x".to_string()), ("B".to_string(), "x".to_string())]
    );
    assert_eq!(r.time.len(), 15, "t = 0.5 … 1.9");
    assert_eq!(r.time[0], 0.5);
    assert_eq!(r.labels[11], "Toy_11");
    for p in 0..12 {
        let (eta, x0) = (r.grid_values[0][p], r.grid_values[1][p]);
        let a = r.trace(p, 0).unwrap();
        let b = r.trace(p, 1).unwrap();
        for (i, &t) in r.time.iter().enumerate() {
            assert_eq!(a[i], 0.5 + eta * t, "point {p} A at {t}");
            assert_eq!(b[i], x0 + 2.0 * t, "point {p} B at {t}");
        }
    }
    let cols = r.dataframe_columns();
    assert_eq!(cols.len(), 24);
    assert_eq!(cols[3], ("Toy_1".to_string(), "B".to_string(), "x".to_string()));
}

#[test]
fn run_chunks_blocks_threads_do_not_change_results() {
    let mut a = fake_spec(&[1.0, 2.0, 3.0, 4.0, 5.0], &[0.0, 1.0, 2.0]);
    a.summaries = Statistic::ALL.to_vec();
    let mut b = a.clone();
    (a.chunk_size, a.block_size, a.threads) = (0, 64, Some(1));
    (b.chunk_size, b.block_size, b.threads) = (4, 3, Some(2));
    assert!(same_result(&memory(&a), &memory(&b)));
}

#[test]
fn run_summaries_equal_statistics_of_traces() {
    let mut spec = fake_spec(&[1.0, -3.0], &[0.0, 5.0]);
    spec.summaries = Statistic::ALL.to_vec();
    let r = memory(&spec);
    let n = r.time.len();
    for p in 0..4 {
        for c in 0..2 {
            let x = r.trace(p, c).unwrap();
            let mean = x.iter().sum::<f64>() / n as f64;
            let std = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            let min = x.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            // Naive DFT as the second method for the spectrum.
            let (mut fbest, mut pbest) = (0.0, 0.0);
            for k in 1..=n / 2 {
                let (mut re, mut im) = (0.0, 0.0);
                for (i, v) in x.iter().enumerate() {
                    let w = -2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                    re += (v - mean) * w.cos();
                    im += (v - mean) * w.sin();
                }
                let pw = if 2 * k == n { 1.0 } else { 2.0 } * (re * re + im * im) / (n * n) as f64;
                if pw > pbest {
                    (fbest, pbest) = (k as f64 / (n as f64 * 0.1), pw);
                }
            }
            let get = |s| r.summary(s, p, c).unwrap();
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
            assert!(close(get(Statistic::Mean), mean));
            assert!(close(get(Statistic::Std), std));
            assert_eq!(get(Statistic::Min), min);
            assert_eq!(get(Statistic::Max), max);
            assert_eq!(get(Statistic::Last), x[n - 1]);
            assert_eq!(get(Statistic::Ptp), max - min);
            assert_eq!(get(Statistic::DomFreq), fbest);
            assert!(
                close(get(Statistic::DomPower), pbest),
                "{} vs {pbest}",
                get(Statistic::DomPower)
            );
        }
    }
}

#[test]
fn run_diverging_points_marked_others_intact() {
    let mut spec = fake_spec(&[1.0, 500.0, 2.0], &[0.0, 1.0]);
    spec.summaries = vec![Statistic::Mean, Statistic::Max];
    spec.block_size = 2;
    let mut sink = MemorySink::new();
    let s = run_fake(&spec, &mut sink, RunControl::default()).unwrap();
    let r = sink.into_result().unwrap();
    assert_eq!(s.points_failed, 2);
    for p in 0..6 {
        let eta = r.grid_values[0][p];
        let a = r.trace(p, 0).unwrap();
        if eta > 100.0 {
            assert_eq!(r.status[p], PointStatus::NonFinite { t: 0.6000000000000001 });
            assert!(r.summary(Statistic::Mean, p, 0).unwrap().is_nan());
            assert!(a[0] == 0.5 + eta * 0.5 && a[1].is_nan(), "{a:?}");
        } else {
            assert_eq!(r.status[p], PointStatus::Ok);
            assert_eq!(a[14], 0.5 + eta * r.time[14]);
            assert!(r.summary(Statistic::Max, p, 0).unwrap().is_finite());
        }
    }
}

#[test]
fn run_cancel_flag_stops_between_blocks() {
    let mut spec = fake_spec(&[1.0, 2.0, 3.0, 4.0], &[0.0, 1.0]);
    (spec.chunk_size, spec.block_size, spec.threads) = (2, 1, Some(1));
    let cancel = AtomicBool::new(false);
    let progress = |p: Progress| {
        if p.points_done >= 3 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let mut sink = MemorySink::new();
    let ctrl = RunControl {
        cancel: Some(&cancel),
        progress: Some(&progress),
        ..RunControl::default()
    };
    let err = run_fake(&spec, &mut sink, ctrl).unwrap_err();
    assert!(matches!(err, SweepError::Cancelled { points_done: 3 }), "{err:?}");
}

#[test]
fn run_progress_reports_only_grow_and_end_at_the_total() {
    // 2 threads and one-point blocks: many blocks finish close together, the situation in which
    // a count computed first used to reach the callback after a larger one.
    let etas: Vec<f64> = (0..60).map(f64::from).collect();
    let mut spec = fake_spec(&etas, &[0.0, 1.0]);
    (spec.chunk_size, spec.block_size, spec.threads, spec.oversubscribe) = (40, 1, Some(2), true);
    let seen = std::sync::Mutex::new(Vec::new());
    // A report that takes a while (as a slow terminal or a Python callback may) widens the
    // window: a count computed first must still not be passed by the next one.
    let progress = |p: Progress| {
        if p.points_done.is_multiple_of(2) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        seen.lock().unwrap().push(p.points_done);
    };
    let mut sink = MemorySink::new();
    let ctrl = RunControl {
        progress: Some(&progress),
        ..RunControl::default()
    };
    run_fake(&spec, &mut sink, ctrl).unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&120));
}

#[test]
fn run_unknown_output_input_and_shard_are_errors() {
    let mut spec = fake_spec(&[1.0], &[0.0]);
    spec.outputs = vec![("x".into(), "A/op/xx".into())];
    let err = run_fake(&spec, &mut MemorySink::new(), RunControl::default()).unwrap_err();
    assert!(
        matches!(&err, SweepError::UnknownOutput { suggestion: Some(s), .. } if s == "A/op/x"),
        "{err:?}"
    );
    let mut spec = fake_spec(&[1.0], &[0.0]);
    spec.inputs = vec![("A/op/eta".into(), Signal::Constant(1.0))];
    let err = run_fake(&spec, &mut MemorySink::new(), RunControl::default()).unwrap_err();
    assert!(
        matches!(
            err,
            SweepError::NotAnInput {
                kind: VarKind::Param,
                ..
            }
        ),
        "{err:?}"
    );
    let spec = fake_spec(&[1.0], &[0.0]);
    let ctrl = RunControl {
        shard: Some(Shard { index: 2, count: 2 }),
        ..RunControl::default()
    };
    let err = run_fake(&spec, &mut MemorySink::new(), ctrl).unwrap_err();
    assert!(matches!(err, SweepError::BadShard { index: 2, count: 2 }));
}

// ---- With the real solver (solve::run_block) ----

use crate::model::{BinOp, ExprId};

fn one_node(name: &str, vars: &[(&str, VarKind, f64)]) -> Circuit {
    let mut c = Circuit {
        name: name.into(),
        ..Circuit::default()
    };
    c.nodes = vec!["n".into()];
    c.node_operators = vec![("n".into(), vec!["op".into()])];
    for &(v, kind, value) in vars {
        c.add_var(Var {
            name: format!("n/op/{v}"),
            kind,
            value,
            node: Some("n".into()),
            external_input: None,
            span: None,
        });
    }
    c
}

fn var_expr(c: &mut Circuit, name: &str) -> ExprId {
    let id = c.find_var(&format!("n/op/{name}")).unwrap();
    c.add_expr(Expr::Var(id))
}

/// x' = a·x², x(0) = 1: x = 1/(1 − a t), infinite at t = 1/a.
fn blowup() -> Circuit {
    let mut c = one_node("Blow", &[("x", VarKind::State, 1.0), ("a", VarKind::Param, 1.0)]);
    let (x, a) = (var_expr(&mut c, "x"), var_expr(&mut c, "a"));
    let xx = c.add_expr(Expr::Binary(BinOp::Mul, x, x));
    let rhs = c.add_expr(Expr::Binary(BinOp::Mul, a, xx));
    let var = c.find_var("n/op/x").unwrap();
    c.odes.push(Ode { var, rhs, span: None });
    c
}

/// x' = (inp − x)/tau, a low-pass of the input.
fn lowpass() -> Circuit {
    let mut c = one_node(
        "Low",
        &[
            ("x", VarKind::State, 0.0),
            ("inp", VarKind::Input, 0.0),
            ("tau", VarKind::Param, 0.1),
        ],
    );
    let (x, u, tau) = (var_expr(&mut c, "x"), var_expr(&mut c, "inp"), var_expr(&mut c, "tau"));
    let d = c.add_expr(Expr::Binary(BinOp::Sub, u, x));
    let rhs = c.add_expr(Expr::Binary(BinOp::Div, d, tau));
    let var = c.find_var("n/op/x").unwrap();
    c.odes.push(Ode { var, rhs, span: None });
    c
}

pub(crate) fn reference_qif() -> Circuit {
    let opts = crate::template::LoadOptions::default();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/models/reference_qif.yaml/pc_iin"
    );
    crate::model::load_circuit(path, &opts)
        .map_err(|e| format!("{e:?}"))
        .unwrap()
        .circuit
}

struct Collect {
    rows: Vec<Vec<f64>>,
}
impl SampleSink for Collect {
    fn samples(&mut self, _index: usize, _t: f64, _lanes: usize, values: &[f64]) {
        self.rows.push(values.to_vec());
    }
}

/// One point run on its own through `solve::run_block` (one lane): `[time][output]`,
/// with `set` giving (variable name, value) overrides of parameters or initial values.
fn single_run(circuit: &Circuit, spec: &SweepSpec, point: usize, set: &[(&str, f64)]) -> (Vec<Vec<f64>>, PointStatus) {
    let lowered = if circuit.edges.is_empty() {
        circuit.clone()
    } else {
        crate::model::passes::lower_edges(circuit)
    };
    let kernel = Kernel::compile(
        &lowered,
        &KernelOptions {
            backend: spec.backend,
            ..KernelOptions::default()
        },
    )
    .unwrap();
    let layout = lowered.layout();
    let mut params: Vec<f64> = layout.params.iter().map(|&id| lowered.var(id).value).collect();
    let mut init: Vec<f64> = layout.states.iter().map(|&id| lowered.var(id).value).collect();
    for &(name, value) in set {
        let id = lowered.find_var(name).unwrap();
        let slot = layout.slot[id.0 as usize] as usize;
        match lowered.var(id).kind {
            VarKind::State => init[slot] = value,
            _ => params[slot] = value,
        }
    }
    let inputs: Vec<InputBinding> = spec
        .inputs
        .iter()
        .map(|(n, s)| InputBinding {
            var: lowered
                .find_var(n)
                .map(|id| lowered.var(id).external_input.unwrap_or(id))
                .unwrap(),
            signal: s.clone(),
        })
        .collect();
    let outputs: Vec<OutputBinding> = spec
        .outputs
        .iter()
        .flat_map(|(k, p)| match p.strip_prefix("all/") {
            Some(rest) => lowered
                .nodes
                .iter()
                .filter_map(|n| lowered.find_var(&format!("{n}/{rest}")))
                .map(|var| OutputBinding { key: k.clone(), var })
                .collect::<Vec<_>>(),
            None => vec![OutputBinding {
                key: k.clone(),
                var: lowered.find_var(p).unwrap(),
            }],
        })
        .collect();
    let mut sink = Collect { rows: Vec::new() };
    let block = Block {
        first_point: point,
        lanes: 1,
        params: &params,
        init: &init,
    };
    let status = solve::run_block(&kernel, &spec.sim, &inputs, &outputs, block, &mut sink).unwrap();
    (sink.rows, status[0])
}

pub(crate) fn qif_spec(n: usize) -> SweepSpec {
    let etas: Vec<f64> = (0..n).map(|i| -5.0 + 10.0 * i as f64 / (n - 1) as f64).collect();
    let values: IndexMap<String, Vec<f64>> = [("eta_pc".to_string(), etas.clone()), ("eta_iin".to_string(), etas)]
        .into_iter()
        .collect();
    let grid = Grid::from_values(&values, true).unwrap();
    let map = ParamMap::new()
        .nodes("eta_pc", &["qif_op/eta"], &["PC"])
        .nodes("eta_iin", &["eta"], &["IIN"]);
    let sim = SimConfig {
        simulation_time: 0.5,
        dt: 1e-4,
        sampling_step: Some(1e-3),
        method: Method::Euler,
        cutoff: 0.1,
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.inputs = vec![("PC/qif_op/I_ext".into(), Signal::Constant(1.0))];
    spec.outputs = vec![("r".into(), "all/qif_op/r".into())];
    spec.backend = Backend::Reference;
    (spec.block_size, spec.threads) = (4, Some(2));
    spec
}

#[test]
fn sweep_qif_traces_equal_single_runs_bit_for_bit() {
    for backend in [Backend::Reference, Backend::Jit, Backend::C] {
        qif_traces_equal_single_runs(backend);
    }
}

fn qif_traces_equal_single_runs(backend: Backend) {
    let c = reference_qif();
    let mut spec = qif_spec(3);
    spec.backend = backend;
    let mut sink = MemorySink::new();
    run(&spec, &c, &mut sink).unwrap();
    let r = sink.into_result().unwrap();
    assert_eq!(
        r.columns,
        vec![
            ("PC".to_string(), "r".to_string()),
            ("IIN".to_string(), "r".to_string())
        ]
    );
    assert_eq!(r.time.len(), 400);
    for p in 0..9 {
        let (e_pc, e_iin) = (r.grid_values[0][p], r.grid_values[1][p]);
        let (rows, status) = single_run(&c, &spec, p, &[("PC/qif_op/eta", e_pc), ("IIN/qif_op/eta", e_iin)]);
        assert_eq!(status, PointStatus::Ok);
        assert_eq!(rows.len(), r.time.len());
        for col in 0..2 {
            let tr = r.trace(p, col).unwrap();
            let single: Vec<f64> = rows.iter().map(|row| row[col]).collect();
            assert!(same(&tr, &single), "point {p} column {col}");
        }
    }
}

#[test]
fn sweep_edge_weight_equals_single_runs_with_weight_in_yaml() {
    let base = reference_qif();
    let values: IndexMap<String, Vec<f64>> = [("w".to_string(), vec![5.0, 15.0, 25.0])].into_iter().collect();
    let mut spec = qif_spec(2);
    spec.param_grid = Grid::from_values(&values, false).unwrap();
    spec.param_map = ParamMap::new().edges("w", &["weight"], &[("PC", "PC", None)]);
    let mut sink = MemorySink::new();
    run(&spec, &base, &mut sink).unwrap();
    let r = sink.into_result().unwrap();
    let yaml_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models/reference_qif.yaml");
    let yaml = std::fs::read_to_string(yaml_path).unwrap();
    assert!(yaml.contains("[PC/qif_op/r, PC/qif_op/r_in, null, {weight: 15.0}]"));
    for (p, w) in [5.0, 15.0, 25.0].iter().enumerate() {
        // The template with that weight written into the YAML, loaded and run alone.
        let edited = yaml.replace(
            "[PC/qif_op/r, PC/qif_op/r_in, null, {weight: 15.0}]",
            &format!("[PC/qif_op/r, PC/qif_op/r_in, null, {{weight: {w:?}}}]"),
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edited.yaml");
        std::fs::write(&file, edited).unwrap();
        let opts = crate::template::LoadOptions::default();
        let c = crate::model::load_circuit(&format!("{}/pc_iin", file.display()), &opts)
            .map_err(|e| format!("{e:?}"))
            .unwrap()
            .circuit;
        let (rows, _) = single_run(&c, &spec, p, &[]);
        for col in 0..2 {
            let single: Vec<f64> = rows.iter().map(|row| row[col]).collect();
            assert!(same(&r.trace(p, col).unwrap(), &single), "weight {w} column {col}");
        }
    }
}

#[test]
fn sweep_sine_input_dominant_frequency_within_one_bin() {
    // A 7 Hz sine of amplitude 2 drives the input; the input itself is an output. The
    // post-cutoff window is 1.5 s at dts = 1 ms: bins are 1/1.5 Hz apart.
    let c = lowpass();
    let (t_end, dt, f, amp) = (2.0, 1e-3, 7.0, 2.0);
    let steps = (t_end / dt) as usize;
    let sine: Vec<f64> = (0..steps)
        .map(|i| amp * (2.0 * std::f64::consts::PI * f * i as f64 * dt).sin())
        .collect();
    let values: IndexMap<String, Vec<f64>> = [("tau".to_string(), vec![0.05, 0.5])].into_iter().collect();
    let grid = Grid::from_values(&values, false).unwrap();
    let map = ParamMap::new().nodes("tau", &["tau"], &["n"]);
    let sim = SimConfig {
        simulation_time: t_end,
        dt,
        sampling_step: Some(dt),
        method: Method::Rk4,
        cutoff: 0.5,
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.inputs = vec![("n/op/inp".into(), Signal::Shared(sine.into()))];
    spec.outputs = vec![("u".into(), "n/op/inp".into()), ("x".into(), "n/op/x".into())];
    spec.backend = Backend::Reference;
    spec.keep_traces = false;
    spec.summaries = vec![Statistic::DomFreq, Statistic::DomPower, Statistic::Std];
    let mut sink = MemorySink::new();
    run(&spec, &c, &mut sink).unwrap();
    let r = sink.into_result().unwrap();
    let bin = 1.0 / 1.5;
    for p in 0..2 {
        for col in 0..2 {
            let freq = r.summary(Statistic::DomFreq, p, col).unwrap();
            assert!((freq - f).abs() <= bin, "point {p} column {col}: {freq} Hz");
        }
        // The input's sine sits on a bin (7 Hz × 1.5 s = 10.5 cycles: half a bin off, so
        // leakage takes part of the power); its std is A/√2 to sampling accuracy.
        let std = r.summary(Statistic::Std, p, 0).unwrap();
        assert!((std - amp / 2f64.sqrt()).abs() < 0.01 * amp, "{std}");
    }
    // The slower low-pass (tau = 0.5) attenuates the sine more than the fast one.
    assert!(r.summary(Statistic::Std, 1, 1).unwrap() < r.summary(Statistic::Std, 0, 1).unwrap());
}

#[test]
fn sweep_diverging_points_marked_exactly_others_equal_single_runs() {
    let c = blowup();
    // x = 1/(1 − a t) blows up at t = 1/a: a = 4 and 20 diverge within T = 1, 0.1 and 0.5 do not.
    let values: IndexMap<String, Vec<f64>> = [("a".to_string(), vec![0.1, 4.0, 0.5, 20.0])].into_iter().collect();
    let grid = Grid::from_values(&values, false).unwrap();
    let map = ParamMap::new().nodes("a", &["a"], &["n"]);
    let sim = SimConfig {
        simulation_time: 1.0,
        dt: 1e-3,
        sampling_step: Some(1e-2),
        method: Method::Euler,
        cutoff: 0.0,
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = vec![("x".into(), "n/op/x".into())];
    spec.backend = Backend::Reference;
    spec.summaries = vec![Statistic::Mean, Statistic::Last];
    spec.block_size = 4;
    let mut sink = MemorySink::new();
    let s = run(&spec, &c, &mut sink).unwrap();
    let r = sink.into_result().unwrap();
    assert_eq!(s.points_failed, 2);
    for p in 0..4 {
        let a = r.grid_values[0][p];
        let tr = r.trace(p, 0).unwrap();
        if a > 1.0 {
            let PointStatus::NonFinite { t } = r.status[p] else {
                panic!("point {p}: {:?}", r.status[p])
            };
            assert!(t > 1.0 / a - 0.05 && t <= 1.0, "a = {a}: diverged at {t}");
            assert!(tr.last().unwrap().is_nan() && r.summary(Statistic::Mean, p, 0).unwrap().is_nan());
        } else {
            assert_eq!(r.status[p], PointStatus::Ok);
            let (rows, _) = single_run(&c, &spec, p, &[("n/op/a", a)]);
            let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
            assert!(same(&tr, &single), "point {p}");
            // Euler on x' = a x² stays below the exact 1/(1 − a t) and within 1 %.
            let exact = 1.0 / (1.0 - a * 0.99);
            assert!((tr[99] - exact).abs() < 0.01 * exact, "{} vs {exact}", tr[99]);
        }
    }
}

#[test]
fn sweep_edge_delay_equals_single_runs_with_delay_in_yaml() {
    // The reference circuit with a delay on IIN -> PC, swept; each point must equal the
    // template with that delay written into the YAML, run alone.
    let yaml_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models/reference_qif.yaml");
    let yaml = std::fs::read_to_string(yaml_path).unwrap();
    let line = "[IIN/qif_op/r, PC/qif_op/r_in, null, {weight: -10.0}]";
    assert!(yaml.contains(line));
    let with_delay = |d: f64| {
        yaml.replace(
            line,
            &format!("[IIN/qif_op/r, PC/qif_op/r_in, null, {{weight: -10.0, delay: {d:?}}}]"),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let load = |text: String, name: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let opts = crate::template::LoadOptions::default();
        crate::model::load_circuit(&format!("{}/pc_iin", file.display()), &opts)
            .map_err(|e| format!("{e:?}"))
            .unwrap()
            .circuit
    };
    let base = load(with_delay(0.01), "base.yaml");
    let delays = [0.002, 0.01, 0.03];
    let values: IndexMap<String, Vec<f64>> = [("d".to_string(), delays.to_vec())].into_iter().collect();
    let mut spec = qif_spec(2);
    spec.param_grid = Grid::from_values(&values, false).unwrap();
    spec.param_map = ParamMap::new().edges("d", &["delay"], &[("IIN", "PC", Some(0))]);
    let mut sink = MemorySink::new();
    run(&spec, &base, &mut sink).unwrap();
    let r = sink.into_result().unwrap();
    let mut differ = false;
    for (p, &d) in delays.iter().enumerate() {
        let c = load(with_delay(d), &format!("d{p}.yaml"));
        let (rows, _) = single_run(&c, &spec, p, &[]);
        for col in 0..2 {
            let single: Vec<f64> = rows.iter().map(|row| row[col]).collect();
            assert!(same(&r.trace(p, col).unwrap(), &single), "delay {d} column {col}");
        }
        differ |= p > 0 && !same(&r.trace(p, 0).unwrap(), &r.trace(0, 0).unwrap());
    }
    assert!(differ, "the delay changes the traces");
}

/// A source relaxing to 1 feeds a low-pass through a gamma-distributed edge (template
/// delay 0.15, spread 0.1: n = round(2.25) = 2 stages).
fn gamma_yaml(delay: f64, spread: f64) -> String {
    format!(
        r#"
P:
  base: OperatorTemplate
  equations: "r' = (u - r) / 0.05 + r_in"
  variables: {{r: output(0.0), u: 1.0, r_in: input(0.0)}}
Q:
  base: OperatorTemplate
  equations: "y' = (r_in - y) / 0.02"
  variables: {{y: output(0.0), r_in: input(0.0)}}
Src: {{base: NodeTemplate, operators: [P]}}
Dst: {{base: NodeTemplate, operators: [Q]}}
Net:
  base: CircuitTemplate
  nodes: {{a: Src, b: Dst}}
  edges:
    - [a/P/r, b/Q/r_in, null, {{weight: 2.0, delay: {delay:?}, spread: {spread:?}}}]
"#
    )
}

fn load_yaml(dir: &std::path::Path, name: &str, text: String) -> Circuit {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let opts = crate::template::LoadOptions::default();
    crate::model::load_circuit(&format!("{}/Net", file.display()), &opts)
        .map_err(|e| format!("{e:?}"))
        .unwrap()
        .circuit
}

/// Issue 14 item 7: a flat sum as deep as the parser accepts goes through every stage in a
/// debug build: template, model passes and dropping the trees on an 8 MiB stack (a main
/// thread's, where the CLI and Python load templates), each back end's compile on its own
/// thread ([`COMPILE_STACK`]), the run; and one term more is a positioned error. Reference: x' = Σ a_k is a
/// constant, so Euler gives x(t) = t·Σ a_k (up to the rounding of the sum and of the
/// steps: 1e-12 relative).
#[test]
fn parse_equation_flat_sum_at_the_height_limit_compiles_in_a_small_stack() {
    let terms = crate::syntax::parser::MAX_TREE_HEIGHT;
    let sum: Vec<String> = (0..terms).map(|i| format!("a{}", i % 3)).collect();
    let yaml = |sum: &str| {
        format!(
                "Op:\n  base: OperatorTemplate\n  equations: \"d/dt * x = {sum}\"\n  variables:\n    x: output(0.0)\n    a0: 1.0\n    a1: 2.0\n    a2: 3.0\nN: {{base: NodeTemplate, operators: [Op]}}\nNet: {{base: CircuitTemplate, nodes: {{p: N}}}}\n"
            )
    };
    let text = yaml(&sum.join(" + "));
    let rate: f64 = (0..terms).map(|i| [1.0, 2.0, 3.0][i % 3]).sum();
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let dir = tempfile::tempdir().unwrap();
            let circuit = load_yaml(dir.path(), "deep.yaml", text);
            for backend in [Backend::Reference, Backend::Jit, Backend::C] {
                let grid = Grid::from_rows(Vec::new(), &[Vec::new()]).unwrap();
                let sim = SimConfig {
                    simulation_time: 0.01,
                    dt: 1e-3,
                    sampling_step: None,
                    method: Method::Euler,
                    cutoff: 0.0,
                };
                let mut spec = SweepSpec::new(grid, ParamMap::new(), sim);
                spec.outputs = vec![("x".into(), "p/Op/x".into())];
                spec.backend = backend;
                let mut sink = MemorySink::new();
                run(&spec, &circuit, &mut sink).unwrap();
                let r = sink.into_result().unwrap();
                let traces = r.traces.unwrap();
                for (k, (&t, &x)) in r.time.iter().zip(&traces).enumerate() {
                    assert!(
                        (x - rate * t).abs() <= 1e-12 * rate * t.max(1e-3),
                        "{backend:?} sample {k}: {x} vs {}",
                        rate * t
                    );
                }
            }
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    let dir = tempfile::tempdir().unwrap();
    let one_more: Vec<String> = (0..=terms).map(|i| format!("a{}", i % 3)).collect();
    std::fs::write(dir.path().join("deeper.yaml"), yaml(&one_more.join(" + "))).unwrap();
    let opts = crate::template::LoadOptions::default();
    let Err(err) = crate::model::load_circuit(&format!("{}/Net", dir.path().join("deeper.yaml").display()), &opts)
    else {
        panic!("one term more is refused");
    };
    let codes: Vec<&str> = err.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["eq/too-deep"]);
    let d = err.diagnostics.iter().next().unwrap();
    let (line, col) = err.sources.line_col(d.span.unwrap());
    // The `+` that makes the tree one level too deep, the `terms`-th: `  equations: "d/dt *
    // x = ` is 25 columns, then `aK + ` per term.
    assert_eq!((line, col), (3, 25 + 5 * (terms - 1) + 4), "{}", d.message);
}

fn gamma_spec(delays: &[f64], spreads: &[f64], backend: Backend) -> SweepSpec {
    let values: IndexMap<String, Vec<f64>> = [("d".to_string(), delays.to_vec()), ("s".to_string(), spreads.to_vec())]
        .into_iter()
        .collect();
    let grid = Grid::from_values(&values, false).unwrap();
    let map =
        ParamMap::new()
            .edges("d", &["delay"], &[("a", "b", Some(0))])
            .edges("s", &["spread"], &[("a", "b", Some(0))]);
    let sim = SimConfig {
        simulation_time: 1.0,
        dt: 1e-3,
        sampling_step: Some(1e-2),
        method: Method::Rk4,
        cutoff: 0.0,
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = vec![("y".into(), "b/Q/y".into())];
    spec.backend = backend;
    spec.summaries = vec![Statistic::Mean, Statistic::Last];
    (spec.block_size, spec.chunk_size, spec.threads) = (4, 4, Some(2));
    spec
}

/// Issue 14 item 5: a swept delay or spread that is negative or NaN would act as no
/// delay; it is refused, naming the key and the point, before anything compiles. 0 (no
/// delay) stays valid.
#[test]
fn sweep_negative_or_nan_delay_is_an_error_naming_key_and_point() {
    let dir = tempfile::tempdir().unwrap();
    let circuit = load_yaml(dir.path(), "g.yaml", gamma_yaml(0.2, 0.1));
    for (delays, spreads, key, point) in [
        (vec![0.2, -0.1], vec![0.1, 0.1], "d", 1),
        (vec![0.2, f64::NAN], vec![0.1, 0.1], "d", 1),
        (vec![0.2, 0.2], vec![-0.1, 0.1], "s", 0),
    ] {
        let spec = gamma_spec(&delays, &spreads, Backend::Reference);
        let mut sink = MemorySink::new();
        let err = run(&spec, &circuit, &mut sink).unwrap_err();
        let SweepError::Settings(problems) = &err else {
            panic!("{err}")
        };
        assert_eq!(problems[0].setting, checks::Setting::GridKey(key.into()), "{err}");
        assert!(problems[0].message.contains(&format!("point {point}")), "{err}");
        assert!(sink.into_result().is_none(), "nothing ran");
        assert!(matches!(check(&spec, &circuit), Err(SweepError::Settings(_))));
    }
    let spec = gamma_spec(&[0.0, 0.2], &[0.1, 0.1], Backend::Reference);
    check(&spec, &circuit).unwrap();
}

#[test]
fn sweep_gamma_delays_with_different_chain_lengths_equal_single_runs() {
    // n = round((d/s)²): 1, 4, 2 (the template's), 9, 4, 6, 1 (spread 0.3: 0.44 → 0, kept
    // at 1), 4 — five distinct chains, interleaved so that chunks of 4 and blocks mix them.
    let delays = [0.1, 0.2, 0.14, 0.3, 0.2, 0.25, 0.2, 0.4];
    let spreads = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.2];
    let dir = tempfile::tempdir().unwrap();
    let base = load_yaml(dir.path(), "base.yaml", gamma_yaml(0.15, 0.1));
    for backend in [Backend::Reference, Backend::Jit] {
        let spec = gamma_spec(&delays, &spreads, backend);
        let plan = build_plan(&spec, &base, None).unwrap();
        assert_eq!(plan.groups.len(), 5, "one kernel per distinct chain length");
        // Groups: the template's n = 2 first, then by first appearance n = 1, 4, 9, 6; each
        // block holds one group's points of a chunk.
        assert!(plan.gather);
        assert_eq!(
            plan.blocks(0..4, 4),
            vec![
                Lanes::Gathered(vec![2]),
                Lanes::Gathered(vec![0]),
                Lanes::Gathered(vec![1]),
                Lanes::Gathered(vec![3])
            ]
        );
        assert_eq!(
            plan.blocks(4..8, 4),
            vec![
                Lanes::Gathered(vec![6]),
                Lanes::Gathered(vec![4, 7]),
                Lanes::Gathered(vec![5])
            ]
        );
        let mut sink = MemorySink::new();
        run(&spec, &base, &mut sink).unwrap();
        let r = sink.into_result().unwrap();
        // Summaries only: blocks deliver through the sink instead of its trace array.
        let mut lean = spec.clone();
        lean.keep_traces = false;
        let mut sink = MemorySink::new();
        run(&lean, &base, &mut sink).unwrap();
        let lean = sink.into_result().unwrap();
        for (p, (&d, &s)) in delays.iter().zip(&spreads).enumerate() {
            let c = load_yaml(dir.path(), &format!("p{p}.yaml"), gamma_yaml(d, s));
            let (rows, status) = single_run(&c, &spec, p, &[]);
            assert_eq!((status, r.status[p]), (PointStatus::Ok, PointStatus::Ok));
            let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
            let tr = r.trace(p, 0).unwrap();
            assert!(same(&tr, &single), "{backend:?} point {p}: delay {d} spread {s}");
            let last = single.last().copied().unwrap();
            assert_eq!(r.summary(Statistic::Last, p, 0).unwrap().to_bits(), last.to_bits());
            assert_eq!(lean.summary(Statistic::Last, p, 0).unwrap().to_bits(), last.to_bits());
            // The mean of the single run's trace, up to summation order (relative 1e-12
            // is ~1e4 ulp for 100 samples); another point's or statistic's value would
            // be off by far more.
            let mean = single.iter().sum::<f64>() / single.len() as f64;
            for res in [&r, &lean] {
                let m = res.summary(Statistic::Mean, p, 0).unwrap();
                assert!((m - mean).abs() <= 1e-12 * mean.abs(), "point {p}: mean {m} vs {mean}");
            }
        }
        // The chain length matters: same delay 0.2, n = 4 vs n = 1 differ.
        assert!(!same(&r.trace(1, 0).unwrap(), &r.trace(6, 0).unwrap()));
    }
}

#[test]
fn sweep_gamma_delays_with_one_chain_length_compile_one_kernel() {
    // (d/s)² = 4, 4.04, 3.96, 4.41: all round to the template's 4 stages.
    let dir = tempfile::tempdir().unwrap();
    let base = load_yaml(dir.path(), "base.yaml", gamma_yaml(0.2, 0.1));
    let spec = gamma_spec(&[0.2, 0.201, 0.199, 0.21], &[0.1; 4], Backend::Reference);
    let plan = build_plan(&spec, &base, None).unwrap();
    assert_eq!(plan.groups.len(), 1);
    assert!(plan.group_of.is_none());
    assert_eq!(plan.blocks(0..4, 4), vec![Lanes::Run(0, 4)]);
    // A common length other than the template's (9, 9.3 → 9): still one kernel.
    let spec = gamma_spec(&[0.3, 0.305], &[0.1; 2], Backend::Reference);
    let plan = build_plan(&spec, &base, None).unwrap();
    assert_eq!(plan.groups.len(), 1);
    let mut sink = MemorySink::new();
    run(&spec, &base, &mut sink).unwrap();
    let r = sink.into_result().unwrap();
    let c = load_yaml(dir.path(), "p1.yaml", gamma_yaml(0.305, 0.1));
    let (rows, _) = single_run(&c, &spec, 1, &[]);
    let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
    assert!(same(&r.trace(1, 0).unwrap(), &single));
}

#[test]
fn sweep_gamma_source_initial_value_starts_the_chain_like_single_runs() {
    // The chain's stages start at the source's initial value: sweeping that value must
    // move them too, as writing it into the YAML does.
    let dir = tempfile::tempdir().unwrap();
    let yaml = |r0: f64| gamma_yaml(0.2, 0.1).replace("r: output(0.0)", &format!("r: output({r0:?})"));
    let base = load_yaml(dir.path(), "base.yaml", yaml(0.0));
    let values: IndexMap<String, Vec<f64>> = [("r0".to_string(), vec![0.0, 3.0])].into_iter().collect();
    let mut spec = gamma_spec(&[0.2], &[0.1], Backend::Reference);
    spec.param_grid = Grid::from_values(&values, false).unwrap();
    spec.param_map = ParamMap::new().nodes("r0", &["P/r"], &["a"]);
    let mut sink = MemorySink::new();
    run(&spec, &base, &mut sink).unwrap();
    let r = sink.into_result().unwrap();
    for (p, r0) in [0.0, 3.0].into_iter().enumerate() {
        let c = load_yaml(dir.path(), &format!("p{p}.yaml"), yaml(r0));
        let (rows, _) = single_run(&c, &spec, p, &[]);
        let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
        assert!(same(&r.trace(p, 0).unwrap(), &single), "r0 = {r0}");
    }
    assert!(!same(&r.trace(0, 0).unwrap(), &r.trace(1, 0).unwrap()));
}

#[cfg(feature = "hdf5")]
#[test]
fn sweep_gamma_chain_groups_through_part_files_equal_memory_result() {
    // Chunks of 4 mix chain lengths 1, 4, 2, 9 | 4, 6, 1, 4; the file path delivers blocks
    // through the sink (no shared trace array) and must give the in-memory result.
    let delays = [0.1, 0.2, 0.14, 0.3, 0.2, 0.25, 0.2, 0.4];
    let spreads = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.2];
    let dir = tempfile::tempdir().unwrap();
    let text = gamma_yaml(0.15, 0.1);
    let base = load_yaml(dir.path(), "base.yaml", text.clone());
    let spec = gamma_spec(&delays, &spreads, Backend::Reference);
    let mut sink = MemorySink::new();
    run(&spec, &base, &mut sink).unwrap();
    let mem = sink.into_result().unwrap();
    let out = dir.path().join("gamma.h5");
    let opts = crate::io::h5::FileOptions::new(&text, "base.yaml/Net");
    crate::io::h5::sweep_to_file(&spec, &base, &out, &opts, RunControl::default()).unwrap();
    let file = crate::io::h5::read_results(&out).unwrap();
    assert!(same_result(&mem, &file));
}

#[test]
fn sweep_jrc_2delaycoupled_gamma_delay_equals_single_runs_with_delay_in_yaml() {
    // The library's delay-coupled pair, the 1 → 2 delay swept at spread 1 ms:
    // n = 9, 16 (the template's), 25, 9.
    let opts = crate::template::LoadOptions::default();
    let base = crate::model::load_circuit("model_templates.neural_mass_models.jansenrit.JRC_2delaycoupled", &opts)
        .map_err(|e| format!("{e:?}"))
        .unwrap()
        .circuit;
    let yaml = include_str!("../library/model_templates/neural_mass_models/jansenrit.yaml");
    let edge = "[jrc1/pc/pro/m, jrc2/pc/rpo_e_in/m_in, null, {weight: 20.0, delay: 0.004, spread: 0.001}]";
    assert!(yaml.contains(edge));
    let delays = [0.003, 0.004, 0.005, 0.003];
    let values: IndexMap<String, Vec<f64>> = [("d".to_string(), delays.to_vec())].into_iter().collect();
    let sim = SimConfig {
        simulation_time: 0.2,
        dt: 1e-4,
        sampling_step: Some(1e-3),
        method: Method::Euler,
        cutoff: 0.0,
    };
    let mut spec = SweepSpec::new(
        Grid::from_values(&values, false).unwrap(),
        ParamMap::new().edges("d", &["delay"], &[("jrc1/pc", "jrc2/pc", Some(0))]),
        sim,
    );
    spec.outputs = vec![("v".into(), "jrc2/pc/rpo_e_in/v".into())];
    spec.backend = Backend::Reference;
    (spec.block_size, spec.threads) = (2, Some(2));
    assert_eq!(build_plan(&spec, &base, None).unwrap().groups.len(), 3);
    let mut sink = MemorySink::new();
    run(&spec, &base, &mut sink).unwrap();
    let r = sink.into_result().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (p, &d) in delays.iter().enumerate() {
        let file = dir.path().join(format!("jr{p}.yaml"));
        let edited = edge.replace("delay: 0.004", &format!("delay: {d:?}"));
        std::fs::write(&file, yaml.replace(edge, &edited)).unwrap();
        let c = crate::model::load_circuit(&format!("{}/JRC_2delaycoupled", file.display()), &opts)
            .map_err(|e| format!("{e:?}"))
            .unwrap()
            .circuit;
        let (rows, _) = single_run(&c, &spec, p, &[]);
        let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
        assert!(same(&r.trace(p, 0).unwrap(), &single), "delay {d}");
    }
    // The delay reaches the output: 3 ms and 5 ms differ.
    assert!(!same(&r.trace(0, 0).unwrap(), &r.trace(2, 0).unwrap()));
}

#[test]
fn sweep_gamma_chains_with_per_point_input_run_consecutive_blocks_equal_single_runs() {
    // A per-point input column is addressed by `first_point + lane`: blocks stay runs of
    // consecutive points of one group, and every point still equals its single run.
    let delays = [0.2, 0.2, 0.1, 0.1, 0.3, 0.2];
    let spreads = [0.1; 6];
    let dir = tempfile::tempdir().unwrap();
    let base = load_yaml(dir.path(), "base.yaml", gamma_yaml(0.15, 0.1));
    let mut spec = gamma_spec(&delays, &spreads, Backend::Reference);
    let steps = 1000;
    let data: Vec<f64> = (0..steps * 6).map(|i| 0.5 * (i % 6) as f64).collect();
    spec.inputs = vec![(
        "a/P/r_in".into(),
        Signal::PerPoint {
            points: 6,
            data: data.into(),
        },
    )];
    (spec.block_size, spec.chunk_size) = (4, 0);
    let plan = build_plan(&spec, &base, None).unwrap();
    assert!(!plan.gather);
    assert_eq!(
        plan.blocks(0..6, 3),
        vec![Lanes::Run(0, 2), Lanes::Run(2, 2), Lanes::Run(4, 1), Lanes::Run(5, 1)]
    );
    let mut sink = MemorySink::new();
    run(&spec, &base, &mut sink).unwrap();
    let r = sink.into_result().unwrap();
    for (p, &d) in delays.iter().enumerate() {
        let c = load_yaml(dir.path(), &format!("p{p}.yaml"), gamma_yaml(d, 0.1));
        let (rows, _) = single_run(&c, &spec, p, &[]);
        let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
        assert!(same(&r.trace(p, 0).unwrap(), &single), "point {p}");
    }
    // The input columns differ per point: equal delays, different traces.
    assert!(!same(&r.trace(0, 0).unwrap(), &r.trace(1, 0).unwrap()));
}
