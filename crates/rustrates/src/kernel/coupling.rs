//! Couplings run by the engine, for the back ends without loops of their own (reference, JIT).
//!
//! A coupling kept by lowering (`model::Coupling`, `lowered`) is a matrix product over the
//! stage's states. Instead of compiling one term per entry (10⁶ at N = 1000: minutes of
//! Cranelift, gigabytes of expression trees), the kernel's circuit reads each target's sum
//! from an extra input slot (`target#coupled`, appended after the other inputs so no slot
//! moves), and [`EngineCouplings::apply`] fills those slots from `y`, `p` and `u` before the
//! compiled right-hand side runs: one Rust loop for every back end, entries outer and lanes
//! innermost (the weight is loaded once per entry, the lanes are contiguous).
//!
//! The sums are those of the written-out form, in its order: `ext + w₁x₁ + w₂x₂ + …` from
//! `ext`, or `ext + s·(w₁x₁ + w₂x₂ + …)` for a scaled block, each operation rounded in the
//! kernel's precision — so results equal the edge list's bit for bit. Only state sources
//! without delays are run this way (a computed source is only known inside the kernel, a
//! delayed one needs the history); any other coupling is written out (`expand_couplings`).

use std::cell::RefCell;

use crate::model::{Circuit, Expr, Scale, Var, VarKind};

/// The arithmetic a coupling needs, in the kernel's precision.
pub(crate) trait Lane: Copy + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> {
    fn of(x: f64) -> Self;
}

impl Lane for f64 {
    fn of(x: f64) -> Self {
        x
    }
}

impl Lane for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
}

/// The couplings of one kernel, as slots of its buffers.
#[derive(Debug)]
pub(crate) struct EngineCouplings {
    blocks: Vec<Block>,
}

#[derive(Debug)]
struct Block {
    /// Per target row: the input slot of its external input and the input slot its sum goes to.
    rows: Vec<(u32, u32)>,
    row_starts: Vec<usize>,
    /// Per entry: the state slot of its source.
    sources: Vec<u32>,
    weights: Vec<f64>,
    scale: Option<ScaleSlot>,
}

#[derive(Clone, Copy, Debug)]
enum ScaleSlot {
    Param(u32),
    Const(f64),
}

/// The circuit the kernel compiles (each kept coupling's targets reading an extra input) and
/// the couplings to run before it; `None` when some coupling cannot be run this way (a
/// source that is not a state, delays), and the caller writes the couplings out instead.
pub(crate) fn prepare(circuit: &Circuit) -> Option<(Circuit, EngineCouplings)> {
    let runnable = circuit.couplings.iter().all(|cp| {
        cp.lowered && cp.delays.is_none() && cp.sources.iter().all(|s| circuit.var(*s).kind == VarKind::State)
    });
    if circuit.couplings.is_empty() || !runnable {
        return None;
    }
    let mut out = circuit.clone();
    out.couplings.clear();
    let assign_of: std::collections::HashMap<_, _> =
        circuit.assigns.iter().enumerate().map(|(i, a)| (a.var, i)).collect();
    // Per block and row: (external input, extra input).
    let mut ends = Vec::with_capacity(circuit.couplings.len());
    for cp in &circuit.couplings {
        let mut rows = Vec::with_capacity(cp.targets.len());
        for &t in &cp.targets {
            let tv = circuit.var(t);
            let ext = tv.external_input?;
            let a = *assign_of.get(&t)?;
            // Lowering leaves the external input alone in a kept target's assignment.
            if circuit.expr(circuit.assigns[a].rhs) != &Expr::Var(ext) {
                return None;
            }
            let sum = out.add_var(Var {
                name: format!("{}#coupled", tv.name),
                kind: VarKind::Input,
                value: 0.0,
                node: tv.node.clone(),
                external_input: None,
                span: tv.span,
            });
            let rhs = out.add_expr(Expr::Var(sum));
            out.assigns[a].rhs = rhs;
            // The target is now an assignment of its node like any other (it no longer adds
            // edges to an external input), which is how `network::plan` groups it with its
            // node for the JIT's population loops. Nothing reads the kernel circuit's
            // external inputs (sweeps bind inputs on the lowered circuit).
            out.vars[t.0 as usize].external_input = None;
            rows.push((ext, sum));
        }
        ends.push(rows);
    }
    let layout = out.layout();
    let slot = |v: crate::model::VarId| layout.slot[v.0 as usize];
    let blocks = circuit
        .couplings
        .iter()
        .zip(ends)
        .map(|(cp, rows)| Block {
            rows: rows.into_iter().map(|(ext, sum)| (slot(ext), slot(sum))).collect(),
            row_starts: cp.row_starts.clone(),
            sources: (0..cp.targets.len())
                .flat_map(|i| cp.row(i).map(|(_, j)| slot(cp.sources[j])))
                .collect(),
            weights: cp.weights.clone(),
            scale: cp.scale.map(|s| match s {
                Scale::Param(p) => ScaleSlot::Param(slot(p)),
                Scale::Const(x) => ScaleSlot::Const(x),
            }),
        })
        .collect();
    Some((out, EngineCouplings { blocks }))
}

thread_local! {
    static INPUTS_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    static INPUTS_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl EngineCouplings {
    /// `u` with every coupling's sums written into their input slots (a copy in a per-thread
    /// buffer), passed to `f`.
    pub(crate) fn with_inputs<R>(
        &self,
        lanes: usize,
        y: &[f64],
        p: &[f64],
        u: &[f64],
        f: impl FnOnce(&[f64]) -> R,
    ) -> R {
        INPUTS_F64.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            buf.extend_from_slice(u);
            self.apply(lanes, y, p, &mut buf);
            f(&buf)
        })
    }

    /// [`Self::with_inputs`] in single precision.
    pub(crate) fn with_inputs_f32<R>(
        &self,
        lanes: usize,
        y: &[f32],
        p: &[f32],
        u: &[f32],
        f: impl FnOnce(&[f32]) -> R,
    ) -> R {
        INPUTS_F32.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            buf.extend_from_slice(u);
            self.apply(lanes, y, p, &mut buf);
            f(&buf)
        })
    }

    /// Writes every target's sum into its input slot of `u`.
    pub(crate) fn apply<T: Lane>(&self, lanes: usize, y: &[T], p: &[T], u: &mut [T]) {
        fn lanes_of<T>(buf: &[T], slot: u32, lanes: usize) -> &[T] {
            let at = slot as usize * lanes;
            &buf[at..at + lanes]
        }
        let mut acc: Vec<T> = Vec::with_capacity(lanes);
        for b in &self.blocks {
            for (i, &(ext, sum)) in b.rows.iter().enumerate() {
                let entries = b.row_starts[i]..b.row_starts[i + 1];
                acc.clear();
                // Unscaled, the sum starts from the external input; scaled, from the first
                // term (the scale multiplies the terms alone).
                let first = match b.scale {
                    None => {
                        acc.extend_from_slice(lanes_of(u, ext, lanes));
                        entries.start
                    }
                    Some(_) => {
                        let w = T::of(b.weights[entries.start]);
                        acc.extend(lanes_of(y, b.sources[entries.start], lanes).iter().map(|&x| w * x));
                        entries.start + 1
                    }
                };
                for e in first..entries.end {
                    let w = T::of(b.weights[e]);
                    for (a, &x) in acc.iter_mut().zip(lanes_of(y, b.sources[e], lanes)) {
                        *a = *a + w * x;
                    }
                }
                if let Some(scale) = b.scale {
                    let external = lanes_of(u, ext, lanes);
                    for (l, a) in acc.iter_mut().enumerate() {
                        let s = match scale {
                            ScaleSlot::Param(slot) => p[slot as usize * lanes + l],
                            ScaleSlot::Const(x) => T::of(x),
                        };
                        *a = external[l] + s * *a;
                    }
                }
                let at = sum as usize * lanes;
                u[at..at + lanes].copy_from_slice(&acc);
            }
        }
    }
}
