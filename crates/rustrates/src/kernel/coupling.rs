//! Couplings run by the engine, for the back ends without loops of their own (reference, JIT).
//!
//! A coupling kept by lowering (`model::Coupling`, `lowered`) is a matrix product over the
//! stage's states. Instead of compiling one term per entry (10⁶ at N = 1000: minutes of
//! Cranelift, gigabytes of expression trees), the kernel's circuit reads each target's sum
//! from an extra input slot (`target#coupled`, appended after the other inputs so no slot
//! moves), and [`EngineCouplings::apply`] fills those slots from `y`, `p` and `u` before the
//! compiled right-hand side runs: one Rust loop for every back end, entries outer and lanes
//! innermost (the weight is loaded once per entry, the lanes are contiguous), over chunks of
//! 8 lanes whose partial sums stay in registers, four rows at a time when every row reads the
//! same sources (each loaded source vector then serves four rows, as the C loops' dense
//! product does eight). The product is most of a JIT sweep's time (83 % of an N = 1000
//! sweep's CPU samples); blocking it so took about half of that time out.
//!
//! The sums are those of the written-out form, in its order: `ext + w₁x₁ + w₂x₂ + …` from
//! `ext`, or `ext + s·(w₁x₁ + w₂x₂ + …)` for a scaled block, each operation rounded in the
//! kernel's precision — so results equal the edge list's bit for bit. Only state sources
//! without delays are run this way (a computed source is only known inside the kernel, a
//! delayed one needs the history); any other coupling is written out (`expand_couplings`).
//!
//! For the JIT, [`prepare_edge_sums`] does the same for sums already written out in the
//! equations (a YAML edge list): `model::network::plan` reads them back as couplings, each
//! row's terms in the sum's order, and the engine runs those as it runs a kept block, so an
//! edge list's node equations compile as population loops too (`jit/loops.rs`). Such sums
//! may read the past: on the fixed-step solvers the engine reads the run's delay ring
//! (`kernel::ring`, the history the C loops read: one rule resolved per term, a whole step's
//! read a row of values for all lanes); otherwise (rk45) it asks the solver's `past` hook per
//! delayed term and lane. Both give the reference evaluator's values bit for bit.

use std::cell::RefCell;
use std::thread::LocalKey;

use super::precision::Real;
use super::ring::{DelayRing, Tap};
use super::KernelCtx;

use crate::model::network;
use crate::model::{Circuit, Expr, Scale, VarId, VarKind};

/// A precision the couplings run in: the kernel's arithmetic, and this precision's
/// per-thread buffer for the inputs with the sums written in.
pub(crate) trait Lane: Real + 'static {
    fn inputs_buffer() -> &'static LocalKey<RefCell<Vec<Self>>>;
}

thread_local! {
    static INPUTS_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    static INPUTS_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Lane for f64 {
    fn inputs_buffer() -> &'static LocalKey<RefCell<Vec<Self>>> {
        &INPUTS_F64
    }
}

impl Lane for f32 {
    fn inputs_buffer() -> &'static LocalKey<RefCell<Vec<Self>>> {
        &INPUTS_F32
    }
}

/// The couplings of one kernel, as slots of its buffers.
#[derive(Debug)]
pub(crate) struct EngineCouplings {
    blocks: Vec<Block>,
    /// The delays of the constant-delay terms ([`Read::Past`]), in their `term` order: what
    /// the run's delay ring decides whole or fractional once (`Kernel::delay_ring_terms`).
    delay_terms: Vec<f64>,
    /// The per-lane terms ([`Read::PastPerLane`]) in their `term` order: (length, velocity
    /// slot), as `Kernel::delay_ring_lane_terms` gives them to the ring.
    lane_terms: Vec<(f64, u32)>,
}

#[derive(Debug)]
struct Block {
    /// Per target row: the input slot of its external input and the input slot its sum goes to.
    rows: Vec<(u32, u32)>,
    row_starts: Vec<usize>,
    /// Per entry: the state slot of its source.
    sources: Vec<u32>,
    /// The circuit's weights, shared (not copied).
    weights: std::sync::Arc<[f64]>,
    scale: Option<ScaleSlot>,
    /// Every row reads the same sources in the same order (those of row 0): rows can then
    /// share each loaded source vector.
    dense: bool,
    /// Per entry, how it reads its source, when some entry reads the past (empty otherwise:
    /// every entry reads the current state).
    reads: Vec<Read>,
}

/// How an entry of a block with delays reads its source: as the written-out term does,
/// `x`, `past(x, d)` or `past(x, length / velocity)`.
#[derive(Clone, Copy, Debug)]
enum Read {
    Current,
    /// `past` of variable `var` (its `VarId` index) with a constant delay (seconds); `term`
    /// indexes [`EngineCouplings::delay_terms`].
    Past {
        var: u32,
        delay: f64,
        term: u32,
    },
    /// `past` of `var` with the delay `length / velocity`, the velocity a parameter (slot)
    /// read per lane; `term` indexes [`EngineCouplings::lane_terms`].
    PastPerLane {
        var: u32,
        length: f64,
        velocity: u32,
        term: u32,
    },
}

#[derive(Clone, Copy, Debug)]
enum ScaleSlot {
    Param(u32),
    Const(f64),
}

impl ScaleSlot {
    /// A coupling's scale, a parameter found at its slot in the kernel's layout.
    fn of(scale: Scale, slot: impl Fn(VarId) -> u32) -> ScaleSlot {
        match scale {
            Scale::Param(p) => ScaleSlot::Param(slot(p)),
            Scale::Const(x) => ScaleSlot::Const(x),
        }
    }
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
            rows.push((ext, read_sum_from_input(&mut out, circuit, t, a)));
        }
        ends.push(rows);
    }
    let layout = out.layout();
    let slot = |v: VarId| layout.slot[v.0 as usize];
    let blocks = circuit
        .couplings
        .iter()
        .zip(ends)
        .map(|(cp, rows)| Block {
            rows: rows.into_iter().map(|(ext, sum)| (slot(ext), slot(sum))).collect(),
            row_starts: cp.row_starts.clone(),
            // A dense block's rows all read the sources in order: row 0's slots, repeated.
            sources: if cp.is_dense() {
                let row: Vec<u32> = cp.sources.iter().map(|&s| slot(s)).collect();
                row.repeat(cp.targets.len())
            } else {
                (0..cp.targets.len())
                    .flat_map(|i| cp.row(i).map(|(_, j)| slot(cp.sources[j])))
                    .collect()
            },
            weights: cp.weights.shared().clone(),
            scale: cp.scale.map(|s| ScaleSlot::of(s, slot)),
            dense: cp.is_dense(),
            reads: Vec::new(),
        })
        .map(|mut b| {
            b.dense = b.dense || b.is_dense();
            b
        })
        .collect();
    Some((out, EngineCouplings::numbered(blocks)))
}

/// Makes target `t` (assigned by `out.assigns[assign]`) read its sum from a new input slot
/// (`target#coupled`, appended after the other inputs so no slot moves) and returns that
/// slot's variable. The target is then an assignment of its node like any other (it no
/// longer adds edges to an external input), which is how `network::plan` groups it with its
/// node for the JIT's population loops. Nothing reads the kernel circuit's external inputs
/// (sweeps bind inputs on the lowered circuit).
fn read_sum_from_input(out: &mut Circuit, circuit: &Circuit, t: VarId, assign: usize) -> VarId {
    let sum = out.add_var(circuit.var(t).feeding_input("#coupled"));
    let rhs = out.add_expr(Expr::Var(sum));
    out.assigns[assign].rhs = rhs;
    out.vars[t.0 as usize].external_input = None;
    sum
}

/// For the JIT: the edge sums still written out in `circuit`'s assignments (a YAML edge list,
/// or blocks lowering wrote out) run by the engine as [`prepare`] runs kept blocks, when
/// [`network::plan`] reads every one of them as a coupling of states. The plan's rows keep
/// each sum's terms in its order (`ext + w₁x₁ + …`, or `ext + s·(…)`), so the engine's loop
/// rounds exactly as the written-out sum. A term that reads the past (a constant delay, or
/// `length / velocity` per lane) asks the solver's `past` hook per lane, as the written-out
/// term does (the rewritten circuit keeps the `past` expressions in its arena, so the solver
/// still records those histories). `None` when the circuit is not a network, has no such
/// sums, or some sum reads a computed variable (the sums then stay written out). `net` is
/// `circuit`'s plan (the caller keeps it for the population loops when this returns `None`).
pub(crate) fn prepare_edge_sums(circuit: &Circuit, net: &network::Network) -> Option<(Circuit, EngineCouplings)> {
    let runnable = |cp: &network::Coupling| cp.source_kind == VarKind::State;
    if net.couplings.is_empty() || !net.couplings.iter().all(runnable) {
        return None;
    }
    let layout = circuit.layout();
    let assign_of: std::collections::HashMap<_, _> =
        circuit.assigns.iter().enumerate().map(|(i, a)| (a.var, i)).collect();
    let mut out = circuit.clone();
    // Per coupling and row: (external input, extra input).
    let mut ends = Vec::with_capacity(net.couplings.len());
    for cp in &net.couplings {
        let pop = &net.populations[cp.pop];
        let (target, external) = (pop.locals[cp.target], pop.locals[cp.external]);
        if target.kind != VarKind::Algebraic || external.kind != VarKind::Input {
            return None;
        }
        let mut rows = Vec::with_capacity(cp.len());
        for i in 0..cp.len() {
            let t = *layout.algebraics.get(target.slot(i))?;
            let ext = *layout.inputs.get(external.slot(i))?;
            let a = *assign_of.get(&t)?;
            rows.push((ext, read_sum_from_input(&mut out, circuit, t, a)));
        }
        ends.push(rows);
    }
    // The extra inputs come after the others: the sources' state slots do not move.
    let layout = out.layout();
    let slot = |v: VarId| layout.slot[v.0 as usize];
    let blocks = net
        .couplings
        .iter()
        .zip(ends)
        .map(|(cp, rows)| {
            let mut b = Block {
                rows: rows.into_iter().map(|(ext, sum)| (slot(ext), slot(sum))).collect(),
                row_starts: cp.rows.iter().map(|&r| r as usize).collect(),
                sources: cp.sources.clone(),
                weights: cp.weights.as_slice().into(),
                scale: cp.scale.map(|s| ScaleSlot::of(s, slot)),
                dense: false,
                reads: Vec::new(),
            };
            if cp.has_delays() {
                b.reads = (0..cp.sources.len())
                    .map(|k| match (cp.delayed[k], cp.velocities[k]) {
                        (None, _) => Read::Current,
                        (Some(var), None) => Read::Past {
                            var: var.0,
                            delay: cp.delays[k],
                            term: 0,
                        },
                        (Some(var), Some(velocity)) => Read::PastPerLane {
                            var: var.0,
                            length: cp.delays[k],
                            velocity: slot(velocity),
                            term: 0,
                        },
                    })
                    .collect();
            }
            b.dense = b.reads.is_empty() && b.is_dense();
            b
        })
        .collect();
    Some((out, EngineCouplings::numbered(blocks)))
}

impl EngineCouplings {
    /// `blocks` with their delayed terms numbered in order (block, then entry) and listed.
    fn numbered(mut blocks: Vec<Block>) -> EngineCouplings {
        let (mut delay_terms, mut lane_terms) = (Vec::new(), Vec::new());
        for read in blocks.iter_mut().flat_map(|b| b.reads.iter_mut()) {
            match read {
                Read::Current => {}
                Read::Past { delay, term, .. } => {
                    *term = u32::try_from(delay_terms.len()).expect("fewer than 2³² terms");
                    delay_terms.push(*delay);
                }
                Read::PastPerLane {
                    length, velocity, term, ..
                } => {
                    *term = u32::try_from(lane_terms.len()).expect("fewer than 2³² terms");
                    lane_terms.push((*length, *velocity));
                }
            }
        }
        EngineCouplings {
            blocks,
            delay_terms,
            lane_terms,
        }
    }

    /// Both sets of couplings, `self`'s first (each fills its own slots: the order is free).
    pub(crate) fn and(mut self, other: EngineCouplings) -> EngineCouplings {
        self.blocks.extend(other.blocks);
        EngineCouplings::numbered(self.blocks)
    }

    /// The largest constant delay of the delayed terms, the span of the ring they read on the
    /// fixed-step solvers (`None`: no delayed term; per-lane delays widen it in
    /// `DelayRing::new`), as the C loops' `ring_span`. Every `past` of a kernel with engine
    /// couplings is one of these terms (`network::plan` rejects `past` in node equations).
    /// With the environment variable `RUSTRATES_JIT_PAST_HOOK=1`, `None`: the terms read
    /// through the hook as before the ring (same values), so a benchmark times both with one
    /// binary.
    pub(crate) fn ring_span(&self) -> Option<f64> {
        if std::env::var_os("RUSTRATES_JIT_PAST_HOOK").is_some_and(|v| v == "1") {
            return None;
        }
        let lane_terms = self.lane_terms.iter().map(|_| 0.0);
        self.delay_terms.iter().copied().chain(lane_terms).reduce(f64::max)
    }

    /// See [`EngineCouplings::delay_terms`].
    pub(crate) fn ring_terms(&self) -> &[f64] {
        &self.delay_terms
    }

    /// See [`EngineCouplings::lane_terms`].
    pub(crate) fn ring_lane_terms(&self) -> &[(f64, u32)] {
        &self.lane_terms
    }

    /// The run's delay ring when it was made for these terms and lanes (`None`: read the
    /// history through the `past` hook).
    fn ring_of<'a>(&self, ctx: &'a KernelCtx, lanes: usize) -> Option<&'a DelayRing> {
        let terms = (self.delay_terms.len(), self.lane_terms.len());
        ctx.ring.as_ref().filter(|r| r.lanes() == lanes && r.terms() == terms)
    }

    /// `u` with every coupling's sums written into their input slots (a copy in a per-thread
    /// buffer), passed to `f`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn with_inputs<T: Lane, R>(
        &self,
        t: f64,
        lanes: usize,
        y: &[T],
        p: &[T],
        u: &[T],
        ctx: &mut KernelCtx,
        f: impl FnOnce(&[T], &mut KernelCtx) -> R,
    ) -> R {
        T::inputs_buffer().with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            buf.extend_from_slice(u);
            self.apply(lanes, y, p, &mut buf);
            let delayed = self.blocks.iter().filter(|b| !b.reads.is_empty());
            if let Some(ring) = self.ring_of(ctx, lanes) {
                for b in delayed {
                    b.rows_from_ring(t, lanes, y, p, &mut buf, ring);
                }
            } else {
                for b in delayed {
                    b.rows_with_history(t, lanes, y, p, &mut buf, ctx);
                }
            }
            f(&buf, ctx)
        })
    }

    /// Writes every sum of the blocks without delays into its input slot of `u`.
    pub(crate) fn apply<T: Lane>(&self, lanes: usize, y: &[T], p: &[T], u: &mut [T]) {
        // The build targets baseline x86-64 (two doubles a vector, sixteen registers); where
        // the CPU has AVX2 the same code runs compiled for it (four a vector, so a group's
        // accumulators stay in registers). Same operations per lane, same results.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `apply_avx2` needs AVX2 and nothing else; the CPU has it (checked just
            // above).
            unsafe { self.apply_avx2(lanes, y, p, u) };
            return;
        }
        self.apply_any(lanes, y, p, u);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn apply_avx2<T: Lane>(&self, lanes: usize, y: &[T], p: &[T], u: &mut [T]) {
        self.apply_any(lanes, y, p, u);
    }

    /// Whole chunks of [`CHUNK`] lanes with the partial sums in registers (a dense block
    /// [`GROUP`] rows at a time, each loaded source vector serving every row of the group),
    /// then the remaining lanes one row at a time. Rows are outer, so a row's weights are
    /// read from memory once for all chunks (an N = 1000 block's are 8 MB). Every lane of a
    /// row adds its terms in entry order whichever path takes it.
    #[inline(always)]
    fn apply_any<T: Lane>(&self, lanes: usize, y: &[T], p: &[T], u: &mut [T]) {
        let whole = lanes / CHUNK * CHUNK;
        for b in self.blocks.iter().filter(|b| b.reads.is_empty()) {
            let n = b.rows.len();
            let mut i = 0;
            if b.dense {
                while i + GROUP <= n {
                    for l0 in (0..whole).step_by(CHUNK) {
                        b.rows_chunk::<T, GROUP>(i, l0, lanes, y, p, u);
                    }
                    i += GROUP;
                }
            }
            for i in i..n {
                for l0 in (0..whole).step_by(CHUNK) {
                    b.rows_chunk::<T, 1>(i, l0, lanes, y, p, u);
                }
            }
            if whole < lanes {
                for i in 0..n {
                    b.row_lanes(i, whole..lanes, lanes, y, p, u);
                }
            }
        }
    }
}

/// Lanes per chunk whose partial sums a coupling keeps in registers: with AVX2, a group of
/// [`GROUP`] rows of 8 doubles is eight of the sixteen vector registers.
const CHUNK: usize = 8;
/// Rows of a dense block summed together over a chunk of lanes.
const GROUP: usize = 4;

/// `past(var, delay)` in `lane` through the solver's hook, in precision `T` (`current` when the
/// delay is not positive, NaN without a hook), as the reference evaluator reads it.
fn past<T: Lane>(ctx: &mut KernelCtx, var: u32, lane: usize, t: f64, delay: T, current: T) -> T {
    if delay > T::ZERO {
        match ctx.past {
            Some(hook) => T::of(hook(ctx, var, lane, t, delay.wide())),
            None => T::NAN,
        }
    } else {
        current
    }
}

fn lanes_of<T>(buf: &[T], slot: u32, lanes: usize) -> &[T] {
    let at = slot as usize * lanes;
    &buf[at..at + lanes]
}

impl Block {
    fn is_dense(&self) -> bool {
        let width = self.row_starts.get(1).copied().unwrap_or(0) - self.row_starts[0];
        let first = &self.sources[..width];
        self.row_starts
            .windows(2)
            .all(|r| r[1] - r[0] == width && &self.sources[r[0]..r[1]] == first)
    }

    /// The scale at `lane`.
    #[inline(always)]
    fn scale_at<T: Lane>(&self, p: &[T], lanes: usize, lane: usize) -> Option<T> {
        self.scale.map(|s| match s {
            ScaleSlot::Param(slot) => p[slot as usize * lanes + lane],
            ScaleSlot::Const(x) => T::of(x),
        })
    }

    /// Rows `i0 .. i0 + R` (the same sources when `R > 1`: a dense block) over lanes
    /// `l0 .. l0 + CHUNK`.
    #[inline(always)]
    fn rows_chunk<T: Lane, const R: usize>(&self, i0: usize, l0: usize, lanes: usize, y: &[T], p: &[T], u: &mut [T]) {
        let starts: [usize; R] = std::array::from_fn(|r| self.row_starts[i0 + r]);
        let len = self.row_starts[i0 + 1] - starts[0];
        if len == 0 {
            // No terms: lowering writes such a target as its external input alone.
            for &(ext, sum) in &self.rows[i0..i0 + R] {
                let from = ext as usize * lanes + l0;
                u.copy_within(from..from + CHUNK, sum as usize * lanes + l0);
            }
            return;
        }
        let source = |k: usize| -> &[T; CHUNK] {
            let at = self.sources[starts[0] + k] as usize * lanes + l0;
            y[at..at + CHUNK].try_into().expect("a chunk of lanes")
        };
        // Unscaled, the sum starts from the external input; scaled, from the first term
        // (the scale multiplies the terms alone).
        let (mut acc, first) = match self.scale {
            None => {
                let acc: [[T; CHUNK]; R] = std::array::from_fn(|r| {
                    let at = self.rows[i0 + r].0 as usize * lanes + l0;
                    u[at..at + CHUNK].try_into().expect("a chunk of lanes")
                });
                (acc, 0)
            }
            Some(_) => {
                let x = source(0);
                let acc: [[T; CHUNK]; R] = std::array::from_fn(|r| {
                    let w = T::of(self.weights[starts[r]]);
                    std::array::from_fn(|l| w * x[l])
                });
                (acc, 1)
            }
        };
        let weights: [&[f64]; R] = std::array::from_fn(|r| &self.weights[starts[r]..starts[r] + len]);
        for k in first..len {
            let x = source(k);
            for (a, w) in acc.iter_mut().zip(&weights) {
                let w = T::of(w[k]);
                for (a, &x) in a.iter_mut().zip(x) {
                    *a = *a + w * x;
                }
            }
        }
        for (r, a) in acc.iter_mut().enumerate() {
            let (ext, sum) = self.rows[i0 + r];
            if self.scale.is_some() {
                for (l, a) in a.iter_mut().enumerate() {
                    let s = self.scale_at(p, lanes, l0 + l).expect("a scaled block");
                    *a = u[ext as usize * lanes + l0 + l] + s * *a;
                }
            }
            let at = sum as usize * lanes + l0;
            u[at..at + CHUNK].copy_from_slice(a);
        }
    }

    /// Every row of a block with delays, its terms in order with the lanes innermost; a
    /// delayed term asks the solver's `past` hook per lane, with the delay in the kernel's
    /// precision and a delay that is not positive reading the current value, as the
    /// reference evaluator does with the written-out `past`. The hook's cost dominates, so
    /// these rows take no register blocking.
    #[allow(clippy::too_many_arguments)]
    fn rows_with_history<T: Lane>(&self, t: f64, lanes: usize, y: &[T], p: &[T], u: &mut [T], ctx: &mut KernelCtx) {
        let mut acc = vec![T::ZERO; lanes];
        for (i, &(ext, sum)) in self.rows.iter().enumerate() {
            let (ext, sum) = (ext as usize * lanes, sum as usize * lanes);
            let entries = self.row_starts[i]..self.row_starts[i + 1];
            for (n, e) in entries.clone().enumerate() {
                let w = T::of(self.weights[e]);
                let at = self.sources[e] as usize * lanes;
                for (l, a) in acc.iter_mut().enumerate() {
                    let current = y[at + l];
                    let x = match self.reads[e] {
                        Read::Current => current,
                        Read::Past { var, delay, .. } => past(ctx, var, l, t, T::of(delay), current),
                        Read::PastPerLane {
                            var, length, velocity, ..
                        } => {
                            let delay = T::of(length) / p[velocity as usize * lanes + l];
                            past(ctx, var, l, t, delay, current)
                        }
                    };
                    // Unscaled, the sum starts from the external input; scaled, from the
                    // first term (the scale multiplies the terms alone).
                    *a = match (n, self.scale) {
                        (0, None) => u[ext + l] + w * x,
                        (0, Some(_)) => w * x,
                        _ => *a + w * x,
                    };
                }
            }
            for (l, a) in acc.iter().enumerate() {
                u[sum + l] = match self.scale_at(p, lanes, l) {
                    _ if entries.is_empty() => u[ext + l],
                    Some(s) => u[ext + l] + s * *a,
                    None => *a,
                };
            }
        }
    }

    /// Every row of a block with delays, the history read from the run's delay ring: per
    /// term the ring's rule resolved once for all lanes ([`DelayRing::tap`]; a whole step's
    /// read, every read of an Euler run with whole-step delays, is a row of values), each
    /// lane then its value times the weight added. The same values summed in the same order
    /// as [`Block::rows_with_history`] (whose hook reads this ring lane by lane): bit for bit.
    fn rows_from_ring<T: Lane>(&self, t: f64, lanes: usize, y: &[T], p: &[T], u: &mut [T], ring: &DelayRing) {
        // As `EngineCouplings::apply`: the same code compiled for AVX2 where the CPU has it.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `rows_from_ring_avx2` needs AVX2 and nothing else; the CPU has it
            // (checked just above).
            unsafe { self.rows_from_ring_avx2(t, lanes, y, p, u, ring) };
            return;
        }
        self.rows_from_ring_any(t, lanes, y, p, u, ring);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rows_from_ring_avx2<T: Lane>(
        &self,
        t: f64,
        lanes: usize,
        y: &[T],
        p: &[T],
        u: &mut [T],
        ring: &DelayRing,
    ) {
        self.rows_from_ring_any(t, lanes, y, p, u, ring);
    }

    #[inline(always)]
    fn rows_from_ring_any<T: Lane>(&self, t: f64, lanes: usize, y: &[T], p: &[T], u: &mut [T], ring: &DelayRing) {
        // The step a term `k` whole steps long reads at this evaluation (`whole_step_read`),
        // from the step the evaluation starts and the term's whole steps, both decided once.
        let now = ring.step_at(t);
        let whole_read = |k: i64| (now >= 0 && k >= 0).then(|| now - k);
        let mut acc = vec![T::ZERO; lanes];
        for (i, &(ext, sum)) in self.rows.iter().enumerate() {
            let (ext, sum) = (ext as usize * lanes, sum as usize * lanes);
            let entries = self.row_starts[i]..self.row_starts[i + 1];
            if entries.is_empty() {
                u.copy_within(ext..ext + lanes, sum);
                continue;
            }
            // Unscaled, the sum starts from the external input; scaled, from the first term
            // (the scale multiplies the terms alone): from −0, as −0 + x is x for every x
            // (+0 would turn a first product of −0 into +0).
            match self.scale {
                None => acc.copy_from_slice(&u[ext..ext + lanes]),
                Some(_) => acc.fill(-T::ZERO),
            }
            for e in entries {
                let w = T::of(self.weights[e]);
                let at = self.sources[e] as usize * lanes;
                let current = &y[at..at + lanes];
                match self.reads[e] {
                    Read::Past { var, delay, term } if T::of(delay) > T::ZERO => {
                        let whole = whole_read(ring.term_whole(term as usize));
                        match ring.tap(var, t, T::of(delay).wide(), whole) {
                            Tap::Row(x) | Tap::Init(x) => {
                                for (a, &x) in acc.iter_mut().zip(x) {
                                    *a = *a + w * T::of(x);
                                }
                            }
                            tap => {
                                for (l, a) in acc.iter_mut().enumerate() {
                                    *a = *a + w * T::of(tap.at(l));
                                }
                            }
                        }
                    }
                    Read::PastPerLane {
                        var,
                        length,
                        velocity,
                        term,
                    } => {
                        let velocities = &p[velocity as usize * lanes..(velocity as usize + 1) * lanes];
                        for (l, a) in acc.iter_mut().enumerate() {
                            let delay = T::of(length) / velocities[l];
                            let x = if delay > T::ZERO {
                                let whole = whole_read(ring.lane_term_whole(term as usize, l));
                                T::of(ring.tap(var, t, delay.wide(), whole).at(l))
                            } else {
                                current[l]
                            };
                            *a = *a + w * x;
                        }
                    }
                    // The current value: no delay, or one that is not positive.
                    Read::Current | Read::Past { .. } => {
                        for (a, &x) in acc.iter_mut().zip(current) {
                            *a = *a + w * x;
                        }
                    }
                }
            }
            for (l, a) in acc.iter().enumerate() {
                u[sum + l] = match self.scale_at(p, lanes, l) {
                    Some(s) => u[ext + l] + s * *a,
                    None => *a,
                };
            }
        }
    }

    /// Row `i` over `range` of the lanes, lane by lane.
    fn row_lanes<T: Lane>(&self, i: usize, range: std::ops::Range<usize>, lanes: usize, y: &[T], p: &[T], u: &mut [T]) {
        let (ext, sum) = self.rows[i];
        let entries = self.row_starts[i]..self.row_starts[i + 1];
        if entries.is_empty() {
            for l in range {
                u[sum as usize * lanes + l] = lanes_of(u, ext, lanes)[l];
            }
            return;
        }
        for l in range {
            let x = |e: usize| lanes_of(y, self.sources[e], lanes)[l];
            let (mut acc, first) = match self.scale {
                None => (lanes_of(u, ext, lanes)[l], entries.start),
                Some(_) => (T::of(self.weights[entries.start]) * x(entries.start), entries.start + 1),
            };
            for e in first..entries.end {
                acc = acc + T::of(self.weights[e]) * x(e);
            }
            if let Some(s) = self.scale_at(p, lanes, l) {
                acc = lanes_of(u, ext, lanes)[l] + s * acc;
            }
            u[sum as usize * lanes + l] = acc;
        }
    }
}
