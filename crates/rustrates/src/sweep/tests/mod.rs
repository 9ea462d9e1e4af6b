//! Sweep tests by concern (the driver, single runs, gamma delays); here what they share, also
//! with the results file's tests: the fake circuit and solver, small models, single runs.

use std::sync::atomic::{AtomicBool, Ordering};

use super::block::Lanes;
use super::plan::build_plan;
use super::*;
use crate::kernel::{Backend, Kernel, KernelOptions};
use crate::model::test_models;
use crate::model::{BinOp, ExprId};
use crate::model::{Circuit, VarKind};
use crate::model::{Expr, Ode, Var};
use crate::solve::Method;
use crate::solve::{self, Block, InputBinding, OutputBinding, PointStatus, SampleSink, Signal, SimConfig};
use indexmap::IndexMap;

mod driver;
mod gamma;
mod single_runs;

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
        cutoff: 0.5,
        ..SimConfig::new(Method::Euler, 2.0, 0.05, Some(0.1))
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

/// `spec` swept over `circuit` into memory: the result.
pub(crate) fn in_memory(spec: &SweepSpec, circuit: &Circuit) -> SweepResult {
    in_memory_with(spec, circuit, RunControl::default()).0
}

/// [`in_memory`] under `ctrl`, with the run's summary.
pub(crate) fn in_memory_with(spec: &SweepSpec, circuit: &Circuit, ctrl: RunControl<'_>) -> (SweepResult, SweepSummary) {
    let mut sink = MemorySink::new();
    let summary = run_with(spec, circuit, &mut sink, ctrl).unwrap();
    (sink.into_result().unwrap(), summary)
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

// ---- With the real solver (solve::run_block) ----

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
        cutoff: 0.1,
        ..SimConfig::new(Method::Euler, 0.5, 1e-4, Some(1e-3))
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.inputs = vec![("PC/qif_op/I_ext".into(), Signal::Constant(1.0))];
    spec.outputs = vec![("r".into(), "all/qif_op/r".into())];
    spec.backend = Backend::Reference;
    (spec.block_size, spec.threads) = (4, Some(2));
    spec
}
