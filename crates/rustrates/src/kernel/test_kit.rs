//! The cross-back-end test kit: a kernel test is written once and run on every back end
//! (reference, JIT, C). It holds the back-end list, the kernel options of a test, the
//! evaluation and stepping harness, and the circuits and lane data the kernel tests share.
//!
//! The C back end needs a system compiler. Without one it is skipped, loudly: every test
//! that would have run it says so on stderr, and under CI (`CI` set, where gcc is
//! installed) a missing compiler fails the test instead.

use super::precision::Real;
use super::{Backend, Kernel, KernelCtx, KernelOptions, Precision, StepsArgs, Tableau};
use crate::model::{Assign, BinOp, Circuit, Expr, ExprId, Func, Layout, Ode, Var, VarId, VarKind};
use std::sync::RwLock;

/// Tests that read `$CC` (every C compile does) hold it shared; the one that changes it
/// holds it exclusively.
pub(crate) static ENV: RwLock<()> = RwLock::new(());

pub(crate) fn env_read() -> std::sync::RwLockReadGuard<'static, ()> {
    ENV.read().unwrap_or_else(|e| e.into_inner())
}

/// [`Kit::backends`] for a test that holds no kit.
pub(crate) fn backends() -> Vec<Backend> {
    let _env = env_read();
    let mut out = vec![Backend::Reference, Backend::Jit];
    out.extend(c_if_available());
    out
}

/// Whether a test of the C back end alone can run: false, with the loud note of
/// [`backends`] (a failure under CI), when no compiler runs.
pub(crate) fn c_available() -> bool {
    let _env = env_read();
    c_if_available().is_some()
}

/// C, unless no compiler runs: then `None` and a loud note (a failure under CI). The caller
/// holds [`ENV`] shared (taking it again here could deadlock behind a waiting writer).
fn c_if_available() -> Option<Backend> {
    if super::c::compiler_available() {
        return Some(Backend::C);
    }
    let msg = "test kit: no C compiler runs (`$CC`, else `cc`): the C back end is SKIPPED in this test";
    assert!(std::env::var_os("CI").is_none(), "{msg}; CI installs gcc");
    eprintln!("{msg}");
    None
}

/// Lanes `which` of `block`, a run of `lanes` lanes of `k` from the default initial state
/// with the parameter columns `params`, each equal that lane's point run alone, bit for bit:
/// a lane's result does not depend on the block it runs in.
pub(crate) fn assert_lanes_equal_single_runs(
    block: &crate::solve::Trajectories,
    k: &Kernel,
    c: &Circuit,
    (cfg, outputs): (&crate::solve::SimConfig, &[crate::solve::OutputBinding]),
    params: &[f64],
    which: impl IntoIterator<Item = usize>,
) {
    let lanes = block.lanes;
    let np = params.len() / lanes;
    for l in which {
        let one: Vec<f64> = (0..np).map(|s| params[s * lanes + l]).collect();
        let init = crate::solve::default_init(c, 1);
        let single = crate::solve::simulate(k, cfg, &[], outputs, &one, &init, 1).expect("runs");
        for o in 0..outputs.len() {
            let (a, b) = (block.trace(o, l), single.trace(o, 0));
            assert_eq!(a.len(), b.len(), "lane {l} output {o}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_eq!(x.to_bits(), y.to_bits(), "lane {l} output {o} sample {i}: {x} vs {y}");
            }
        }
    }
}

/// A test's kernels: C libraries are cached in a directory of the test's own, and `$CC` is
/// held shared while the kit lives (see [`ENV`]).
pub(crate) struct Kit {
    dir: tempfile::TempDir,
    _env: std::sync::RwLockReadGuard<'static, ()>,
}

impl Kit {
    pub(crate) fn new() -> Kit {
        Kit {
            dir: tempfile::tempdir().expect("temp dir"),
            _env: env_read(),
        }
    }
    pub(crate) fn options(&self, backend: Backend, precision: Precision) -> KernelOptions {
        KernelOptions {
            backend,
            precision,
            cache_dir: Some(self.dir.path().to_path_buf()),
            ..KernelOptions::default()
        }
    }
    /// Every back end a test written once runs on: reference, JIT and, where a C compiler
    /// runs, C.
    pub(crate) fn backends(&self) -> Vec<Backend> {
        let mut out = vec![Backend::Reference, Backend::Jit];
        out.extend(c_if_available());
        out
    }
    /// The back ends with a fused stepper (`Kernel::steps`), which are also the compiled
    /// ones checked against the reference evaluator: JIT and C.
    pub(crate) fn compiled_backends(&self) -> Vec<Backend> {
        let mut out = vec![Backend::Jit];
        out.extend(c_if_available());
        out
    }
    /// Compiles `c` for `backend`, which must be the back end used (no fallback).
    pub(crate) fn kernel(&self, c: &Circuit, backend: Backend, precision: Precision) -> Kernel {
        let k = Kernel::compile(c, &self.options(backend, precision))
            .unwrap_or_else(|e| panic!("{} compiles on {backend:?}: {e}", c.name));
        assert_eq!(k.backend(), backend);
        k
    }
}

/// `dy` and `a` of one evaluation in the precision `R` (both prefilled with NaN, so a value
/// the kernel does not write shows).
pub(crate) fn eval<R: Real>(
    k: &Kernel,
    t: f64,
    lanes: usize,
    [y, p, u]: [&[R]; 3],
    ctx: &mut KernelCtx,
) -> (Vec<R>, Vec<R>) {
    let layout = k.layout();
    let mut dy = vec![R::NAN; layout.states.len() * lanes];
    let mut a = vec![R::NAN; layout.algebraics.len() * lanes];
    R::rhs(k, t, lanes, y, p, u, &mut dy, &mut a, ctx);
    (dy, a)
}

pub(crate) fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Equal (NaN equals NaN), or within `rel` of the larger magnitude plus `abs`.
pub(crate) fn close(got: f64, want: f64, rel: f64, abs: f64) -> bool {
    got == want || (got.is_nan() && want.is_nan()) || (got - want).abs() <= rel * got.abs().max(want.abs()) + abs
}

/// Bit-equal, NaN equal to any NaN.
pub(crate) fn same_bits(got: f64, want: f64) -> bool {
    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan())
}

/// The solver's fixed-step methods.
pub(crate) fn tableaux() -> [Tableau; 3] {
    [Tableau::euler(), Tableau::heun(), Tableau::rk4()]
}

/// `y + dt·Σ c_m·k_m` with the solver's arithmetic (`solve::fixed::combine`).
fn combine_like_solver(y: &[f64], dt: f64, coeffs: &[(usize, f64)], ks: &[Vec<f64>]) -> Vec<f64> {
    match coeffs {
        [] => y.to_vec(),
        [(m, c)] => y.iter().zip(&ks[*m]).map(|(y, k)| y + dt * (c * k)).collect(),
        [(m0, c0), rest @ ..] => {
            let mut acc: Vec<f64> = ks[*m0].iter().map(|k| c0 * k).collect();
            for (m, c) in rest {
                for (a, k) in acc.iter_mut().zip(&ks[*m]) {
                    // Written out as the solver writes it (no compound assignment).
                    #[allow(clippy::assign_op_pattern)]
                    {
                        *a = *a + c * k;
                    }
                }
            }
            y.iter().zip(&acc).map(|(y, a)| y + dt * a).collect()
        }
    }
}

/// `nsteps` steps of `dt` from `t0` by `tab` on a block of `lanes` lanes of `k`: what a
/// fused stepper ([`fused`]) and its second method ([`step_with_rhs`]) both run.
#[derive(Clone, Copy)]
pub(crate) struct StepRun<'a> {
    pub(crate) k: &'a Kernel,
    pub(crate) tab: &'a Tableau,
    pub(crate) lanes: usize,
    pub(crate) nsteps: usize,
    pub(crate) t0: f64,
    pub(crate) dt: f64,
}

impl<'a> StepRun<'a> {
    pub(crate) fn new(k: &'a Kernel, tab: &'a Tableau, lanes: usize, nsteps: usize, t0: f64, dt: f64) -> Self {
        StepRun {
            k,
            tab,
            lanes,
            nsteps,
            t0,
            dt,
        }
    }
}

/// The second method a fused stepper is checked against: explicit Runge–Kutta through the
/// (separately tested) rhs, with the solver's arithmetic.
pub(crate) fn step_with_rhs(run: StepRun, y: &mut Vec<f64>, [p, u]: [&[f64]; 2]) {
    let StepRun {
        k,
        tab,
        lanes,
        nsteps,
        t0,
        dt,
    } = run;
    let stages = tab.b.len();
    for s in 0..nsteps {
        let t = t0 + s as f64 * dt;
        let mut ks: Vec<Vec<f64>> = Vec::new();
        for st in 0..stages {
            let ytmp = combine_like_solver(y, dt, &tab.nonzero_row(st), &ks);
            let (dy, _) = eval(k, t + tab.c[st] * dt, lanes, [&ytmp, p, u], &mut KernelCtx::default());
            ks.push(dy);
        }
        *y = combine_like_solver(y, dt, &tab.nonzero_weights(), &ks);
    }
}

/// One call of the fused stepper; what `Kernel::steps` returns (false: declined).
pub(crate) fn fused(run: StepRun, y: &mut [f64], [p, u]: [&[f64]; 2], ctx: &mut KernelCtx) -> bool {
    let mut a = vec![0.0; run.k.layout().algebraics.len() * run.lanes];
    let mut work = Vec::new();
    run.k.steps(StepsArgs {
        lanes: run.lanes,
        nsteps: run.nsteps,
        t0: run.t0,
        dt: run.dt,
        tableau: run.tab,
        y,
        p,
        u,
        a: &mut a,
        work: &mut work,
        ctx,
        samples: None,
    })
}

pub(crate) fn add_var(c: &mut Circuit, name: &str, kind: VarKind, value: f64) -> VarId {
    c.add_var(Var {
        name: name.into(),
        kind,
        value,
        node: None,
        external_input: None,
        span: None,
    })
}

pub(crate) fn push_assign(c: &mut Circuit, name: &str, rhs: ExprId) -> VarId {
    let var = add_var(c, name, VarKind::Algebraic, 0.0);
    c.assigns.push(Assign { var, rhs, span: None });
    var
}

/// `var' = rhs`.
pub(crate) fn push_ode(c: &mut Circuit, var: VarId, rhs: ExprId) {
    c.odes.push(Ode { var, rhs, span: None });
}

/// The five variables of the all-operations circuit (`n/op/<name>`), named once: their
/// values in one lane ([`V`]) or their ids ([`Builder`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vars<T> {
    pub(crate) x: T,
    pub(crate) w: T,
    pub(crate) k: T,
    pub(crate) q: T,
    pub(crate) s: T,
}

impl<T> From<[T; 5]> for Vars<T> {
    /// In the order of [`Vars::NAMES`].
    fn from([x, w, k, q, s]: [T; 5]) -> Vars<T> {
        Vars { x, w, k, q, s }
    }
}

impl<T: Copy> Vars<T> {
    const NAMES: [&'static str; 5] = ["x", "w", "k", "q", "s"];

    /// The same `id` under every name: the builder of a circuit without these variables,
    /// which needs only its expression helpers.
    pub(crate) fn all(id: T) -> Vars<T> {
        Vars::from([id; 5])
    }

    fn to_array(self) -> [T; 5] {
        let Vars { x, w, k, q, s } = self;
        [x, w, k, q, s]
    }

    pub(crate) fn map<U>(self, f: impl FnMut(T) -> U) -> Vars<U> {
        Vars::from(self.to_array().map(f))
    }

    /// The one named `name` (one of [`Vars::NAMES`]).
    pub(crate) fn named(self, name: &str) -> Option<T> {
        let at = Self::NAMES.iter().position(|&n| n == name)?;
        Some(self.to_array()[at])
    }
}

/// Per-lane inputs of the all-operations circuit, as the reference closures see them
/// (`v.x` … `v.s` through [`Vars`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct V {
    pub(crate) vars: Vars<f64>,
    pub(crate) t: f64,
    pub(crate) lane: usize,
    /// Expr id of the circuit's `Randn` node (the hook's noise source).
    pub(crate) randn_src: u32,
}

impl std::ops::Deref for V {
    type Target = Vars<f64>;
    fn deref(&self) -> &Vars<f64> {
        &self.vars
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Tol {
    /// Same IEEE operations (or the same Rust libm call) in the same order: bit-equal.
    Exact,
    /// `pow` expanded into multiplications / `sqrt` versus `powf`: each differs from the
    /// exact power by at most ~1 ulp, so they differ by ≤ 2 ulp ≈ 4.4e-16 relative.
    Pow,
}

impl Tol {
    /// Whether `got` from `backend` agrees with the closure's `want`. The reference
    /// evaluator and the JIT make Rust's operations and libm calls (`Tol`). The C back end
    /// calls the C library's `pow`/`sin`/... and expands integer powers by squaring: within
    /// 1e-12 relative, the back ends' agreement bound.
    pub(crate) fn holds(self, backend: Backend, got: f64, want: f64) -> bool {
        match (backend, self) {
            (Backend::C, _) => close(got, want, 1e-12, 0.0),
            (_, Tol::Exact) => same_bits(got, want) || got == want,
            (_, Tol::Pow) => (got - want).abs() <= 1e-15 * want.abs(),
        }
    }
}

pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) build: fn(&mut Builder) -> ExprId,
    pub(crate) reference: fn(&V) -> f64,
    pub(crate) tol: Tol,
}

/// Builds a case's expression into `c`; `b.x` … `b.s` (through [`Vars`]) are the ids the
/// reference closures' `v.x` … `v.s` stand for.
pub(crate) struct Builder {
    pub(crate) c: Circuit,
    pub(crate) vars: Vars<VarId>,
    randn: Option<ExprId>,
}

impl std::ops::Deref for Builder {
    type Target = Vars<VarId>;
    fn deref(&self) -> &Vars<VarId> {
        &self.vars
    }
}

impl Builder {
    pub(crate) fn e(&mut self, e: Expr) -> ExprId {
        self.c.add_expr(e)
    }
    pub(crate) fn v(&mut self, v: VarId) -> ExprId {
        self.e(Expr::Var(v))
    }
    pub(crate) fn bin(&mut self, op: BinOp, a: ExprId, b: ExprId) -> ExprId {
        self.e(Expr::Binary(op, a, b))
    }
    pub(crate) fn num(&mut self, c: f64) -> ExprId {
        self.e(Expr::Const(c))
    }
    pub(crate) fn pow_const(&mut self, v: VarId, c: f64) -> ExprId {
        let a = self.v(v);
        let b = self.num(c);
        self.bin(BinOp::Pow, a, b)
    }
    /// `c op var`.
    pub(crate) fn nv(&mut self, op: BinOp, c: f64, var: VarId) -> ExprId {
        let n = self.num(c);
        self.ev(op, n, var)
    }
    /// `var op c` (the constant's node made first, as [`Builder::nv`] makes it).
    pub(crate) fn vn(&mut self, op: BinOp, var: VarId, c: f64) -> ExprId {
        let n = self.num(c);
        let v = self.v(var);
        self.bin(op, v, n)
    }
    /// `f(a − b)`.
    pub(crate) fn call_of_difference(&mut self, f: Func, a: VarId, b: VarId) -> ExprId {
        let d = self.vv(BinOp::Sub, a, b);
        self.e(Expr::Call(f, vec![d]))
    }
    /// `e op var`.
    pub(crate) fn ev(&mut self, op: BinOp, e: ExprId, var: VarId) -> ExprId {
        let v = self.v(var);
        self.bin(op, e, v)
    }
    pub(crate) fn vv(&mut self, op: BinOp, a: VarId, b: VarId) -> ExprId {
        let a = self.v(a);
        self.ev(op, a, b)
    }
    pub(crate) fn call1(&mut self, f: Func, a: VarId) -> ExprId {
        let a = self.v(a);
        self.e(Expr::Call(f, vec![a]))
    }
    pub(crate) fn call2(&mut self, f: Func, a: VarId, b: VarId) -> ExprId {
        let a = self.v(a);
        let b = self.v(b);
        self.e(Expr::Call(f, vec![a, b]))
    }
}

pub(crate) fn past_hook(_: &mut KernelCtx, var: u32, lane: usize, t: f64, delay: f64) -> f64 {
    f64::from(var) * 1000.0 + lane as f64 + 10.0 * t - delay
}
fn randn_hook(ctx: &mut KernelCtx, source: u32, lane: usize) -> f64 {
    (ctx.first_point + lane) as f64 * 0.5 + f64::from(source) / 4.0
}
pub(crate) const FIRST_POINT: usize = 100;
/// Var id of `x` in the circuit built by `all_ops_circuit` (asserted there), for the hook
/// references.
const X_ID: u32 = 0;

/// A context whose `past` and `randn` hooks answer known functions of their arguments.
pub(crate) fn hooked_ctx() -> KernelCtx {
    KernelCtx {
        first_point: FIRST_POINT,
        past: Some(past_hook),
        randn: Some(randn_hook),
        ..KernelCtx::default()
    }
}

/// Every `Expr` variant, every `BinOp` and every `Func`, each with an independent closure.
pub(crate) fn cases() -> Vec<Case> {
    use BinOp::*;
    macro_rules! case {
        ($name:literal, $tol:ident, |$b:ident| $build:expr, |$v:ident| $r:expr) => {
            Case {
                name: $name,
                build: |$b| $build,
                reference: |$v| $r,
                tol: Tol::$tol,
            }
        };
    }
    vec![
        case!("const", Exact, |b| b.num(2.5), |_v| 2.5),
        case!("add", Exact, |b| b.vv(Add, b.x, b.k), |v| v.x + v.k),
        // Constant subtrees are folded at compile time: same bits as evaluating them.
        case!(
            "fold_const",
            Exact,
            |b| {
                let two = b.num(2.0);
                let s2 = b.e(Expr::Call(Func::Sin, vec![two]));
                let (one, three) = (b.num(1.0), b.num(3.0));
                let third = b.bin(Div, one, three);
                let sum = b.bin(Add, s2, third);
                let x = b.v(b.x);
                b.bin(Mul, sum, x)
            },
            |v| (2f64.sin() + 1.0 / 3.0) * v.x
        ),
        case!("mul_one", Exact, |b| b.nv(Mul, 1.0, b.x), |v| v.x),
        case!("div_one", Exact, |b| b.vn(Div, b.k, 1.0), |v| v.k),
        case!(
            "select_const_cond",
            Exact,
            |b| {
                let zero = b.num(0.0);
                let (x, k) = (b.v(b.x), b.v(b.k));
                b.e(Expr::Select(zero, x, k))
            },
            |v| v.k
        ),
        case!(
            "pow_folded_exponent",
            Pow,
            |b| {
                let (one, one2) = (b.num(1.0), b.num(1.0));
                let two = b.bin(Add, one, one2);
                let w = b.v(b.w);
                b.bin(Pow, w, two)
            },
            |v| v.w.powf(2.0)
        ),
        case!("sub", Exact, |b| b.vv(Sub, b.k, b.w), |v| v.k - v.w),
        case!("mul", Exact, |b| b.vv(Mul, b.x, b.s), |v| v.x * v.s),
        case!("div", Exact, |b| b.vv(Div, b.k, b.w), |v| v.k / v.w),
        case!(
            "neg",
            Exact,
            |b| {
                let x = b.v(b.x);
                b.e(Expr::Neg(x))
            },
            |v| -v.x
        ),
        case!(
            "time",
            Exact,
            |b| {
                let t = b.e(Expr::Time);
                let x = b.v(b.x);
                b.bin(Mul, t, x)
            },
            |v| v.t * v.x
        ),
        case!("input", Exact, |b| b.v(b.s), |v| v.s),
        // A subexpression read twice (computed once by the compiled back ends).
        case!(
            "shared",
            Exact,
            |b| {
                let s = b.vv(Mul, b.x, b.w);
                let sq = b.bin(Mul, s, s);
                b.bin(Add, s, sq)
            },
            |v| v.x * v.w + (v.x * v.w) * (v.x * v.w)
        ),
        case!("pow0", Exact, |b| b.pow_const(b.k, 0.0), |v| v.k.powf(0.0)),
        case!("pow1", Exact, |b| b.pow_const(b.k, 1.0), |v| v.k.powf(1.0)),
        case!("pow2", Pow, |b| b.pow_const(b.k, 2.0), |v| v.k.powf(2.0)),
        case!("pow3", Pow, |b| b.pow_const(b.s, 3.0), |v| v.s.powf(3.0)),
        case!("pow4", Pow, |b| b.pow_const(b.s, 4.0), |v| v.s.powf(4.0)),
        // An integer power every back end squares out (`mathfns::pow_plan`), against `powf`.
        case!("pow7", Pow, |b| b.pow_const(b.w, 7.0), |v| v.w.powf(7.0)),
        case!("pow_m1", Pow, |b| b.pow_const(b.w, -1.0), |v| v.w.powf(-1.0)),
        case!(
            "pow_neg2",
            Pow,
            |b| {
                let w = b.v(b.w);
                let two = b.num(2.0);
                let m2 = b.e(Expr::Neg(two));
                b.bin(Pow, w, m2)
            },
            |v| v.w.powf(-2.0)
        ),
        case!("pow_half", Pow, |b| b.pow_const(b.w, 0.5), |v| v.w.powf(0.5)),
        case!("pow_general_const", Exact, |b| b.pow_const(b.w, 1.7), |v| v.w.powf(1.7)),
        case!("pow_general_var", Exact, |b| b.vv(Pow, b.w, b.k), |v| v.w.powf(v.k)),
        case!("lt", Exact, |b| b.vv(Lt, b.x, b.q), |v| f64::from(u8::from(v.x < v.q))),
        case!("le", Exact, |b| b.vv(Le, b.x, b.q), |v| f64::from(u8::from(v.x <= v.q))),
        case!("gt", Exact, |b| b.vv(Gt, b.x, b.q), |v| f64::from(u8::from(v.x > v.q))),
        case!("ge", Exact, |b| b.vv(Ge, b.x, b.q), |v| f64::from(u8::from(v.x >= v.q))),
        case!("eq", Exact, |b| b.vv(Eq, b.x, b.q), |v| f64::from(u8::from(v.x == v.q))),
        case!("ne", Exact, |b| b.vv(Ne, b.x, b.q), |v| f64::from(u8::from(v.x != v.q))),
        case!(
            "select_value",
            Exact,
            |b| {
                let c = b.vv(Sub, b.x, b.q);
                let (k, s) = (b.v(b.k), b.v(b.s));
                b.e(Expr::Select(c, k, s))
            },
            |v| if v.x - v.q != 0.0 { v.k } else { v.s }
        ),
        case!(
            "select_compare",
            Exact,
            |b| {
                let c = b.vv(Gt, b.x, b.q);
                let w = b.v(b.w);
                let nw = b.e(Expr::Neg(w));
                b.e(Expr::Select(c, w, nw))
            },
            |v| if v.x > v.q { v.w } else { -v.w }
        ),
        case!("sin", Exact, |b| b.call1(Func::Sin, b.k), |v| v.k.sin()),
        case!("cos", Exact, |b| b.call1(Func::Cos, b.k), |v| v.k.cos()),
        case!("tan", Exact, |b| b.call1(Func::Tan, b.x), |v| v.x.tan()),
        case!("sinh", Exact, |b| b.call1(Func::Sinh, b.k), |v| v.k.sinh()),
        case!("cosh", Exact, |b| b.call1(Func::Cosh, b.k), |v| v.k.cosh()),
        case!("tanh", Exact, |b| b.call1(Func::Tanh, b.k), |v| v.k.tanh()),
        case!("arcsin", Exact, |b| b.call1(Func::Arcsin, b.x), |v| v.x.asin()),
        case!("arccos", Exact, |b| b.call1(Func::Arccos, b.x), |v| v.x.acos()),
        case!("arctan", Exact, |b| b.call1(Func::Arctan, b.k), |v| v.k.atan()),
        case!("arctan2", Exact, |b| b.call2(Func::Arctan2, b.k, b.s), |v| v
            .k
            .atan2(v.s)),
        case!("exp", Exact, |b| b.call1(Func::Exp, b.k), |v| v.k.exp()),
        case!("log", Exact, |b| b.call1(Func::Log, b.w), |v| v.w.ln()),
        case!("sqrt", Exact, |b| b.call1(Func::Sqrt, b.w), |v| v.w.sqrt()),
        case!("abs", Exact, |b| b.call1(Func::Abs, b.k), |v| v.k.abs()),
        case!("sigmoid", Exact, |b| b.call1(Func::Sigmoid, b.k), |v| 1.0
            / (1.0 + (-v.k).exp())),
        case!("max", Exact, |b| b.call2(Func::Max, b.x, b.q), |v| v.x.max(v.q)),
        case!("min", Exact, |b| b.call2(Func::Min, b.x, b.q), |v| v.x.min(v.q)),
        case!(
            "heaviside",
            Exact,
            |b| b.call_of_difference(Func::Heaviside, b.x, b.q),
            |v| by_sign(v.x - v.q, [0.0, 0.5, 1.0])
        ),
        case!("floor", Exact, |b| b.call1(Func::Floor, b.k), |v| v.k.floor()),
        case!("ceil", Exact, |b| b.call1(Func::Ceil, b.k), |v| v.k.ceil()),
        case!("sign", Exact, |b| b.call_of_difference(Func::Sign, b.x, b.q), |v| {
            by_sign(v.x - v.q, [-1.0, 0.0, 1.0])
        }),
        case!(
            "past",
            Exact,
            |b| {
                let d = b.v(b.w);
                b.e(Expr::Past(b.x, d))
            },
            |v| f64::from(X_ID) * 1000.0 + v.lane as f64 + 10.0 * v.t - v.w
        ),
        case!(
            "past_negative_delay_is_current",
            Exact,
            |b| {
                let w = b.v(b.w);
                let d = b.e(Expr::Neg(w));
                b.e(Expr::Past(b.x, d))
            },
            |v| v.x
        ),
        case!(
            "past_zero_delay_is_current",
            Exact,
            |b| {
                let d = b.num(0.0);
                b.e(Expr::Past(b.k, d))
            },
            |v| v.k
        ),
        case!(
            "randn",
            Exact,
            |b| {
                let r = b.e(Expr::Randn);
                b.randn = Some(r);
                r
            },
            |v| (FIRST_POINT + v.lane) as f64 * 0.5 + f64::from(v.randn_src) / 4.0
        ),
    ]
}

/// `below`, `at` or `above` as `d` is below, at or above 0: the step functions' definitions,
/// written independently of `mathfns`, for the finite differences of [`lane_values`] (NaN and
/// signed zeros are `special_values_match_shared_definitions_bitwise`'s).
fn by_sign(d: f64, [below, at, above]: [f64; 3]) -> f64 {
    if d > 0.0 {
        above
    } else if d == 0.0 {
        at
    } else {
        below
    }
}

/// A circuit named `name` with nothing in it yet.
pub(crate) fn empty_circuit(name: &str) -> Circuit {
    Circuit {
        name: name.into(),
        ..Circuit::default()
    }
}

/// One algebraic per case, then `chain = a_add * a_sin` (an algebraic read back), and
/// ODEs `x' = a_add + a_sin`, `w' = (-w*k + s) + a_randn` (noise reaches a derivative).
pub(crate) fn all_ops_circuit() -> (Circuit, Vec<Case>) {
    let mut c = empty_circuit("AllOps");
    let vars = Vars {
        x: add_var(&mut c, "n/op/x", VarKind::State, 0.1),
        w: add_var(&mut c, "n/op/w", VarKind::State, 1.0),
        k: add_var(&mut c, "n/op/k", VarKind::Param, 0.5),
        q: add_var(&mut c, "n/op/q", VarKind::Param, 0.0),
        s: add_var(&mut c, "n/op/s", VarKind::Input, 0.0),
    };
    assert_eq!(vars.x.0, X_ID);
    let Vars { x, w, k, s, .. } = vars;
    let mut b = Builder { c, vars, randn: None };
    let cases = cases();
    let mut alg = Vec::new();
    for case in &cases {
        let rhs = (case.build)(&mut b);
        alg.push(push_assign(&mut b.c, &format!("n/op/{}", case.name), rhs));
    }
    assert!(b.randn.is_some());
    let find = |name: &str| alg[cases.iter().position(|c| c.name == name).expect("case exists")];
    let (a_add, a_sin, a_randn) = (find("add"), find("sin"), find("randn"));
    let chain = b.vv(BinOp::Mul, a_add, a_sin);
    push_assign(&mut b.c, "n/op/chain", chain);
    let dx = b.vv(BinOp::Add, a_add, a_sin);
    push_ode(&mut b.c, x, dx);
    let wv = b.v(w);
    let nw = b.e(Expr::Neg(wv));
    let nwk = b.ev(BinOp::Mul, nw, k);
    let drift = b.ev(BinOp::Add, nwk, s);
    let dw = b.ev(BinOp::Add, drift, a_randn);
    push_ode(&mut b.c, w, dw);
    (b.c, cases)
}

/// Deterministic, varied lane values: x in (-0.9, 0.9), w in (0.2, 2.6), k in (-3, 3),
/// s in (-2, 2), q equal to x on every third lane (to exercise ==, heaviside(0), sign(0)).
pub(crate) fn lane_values(c: &Circuit, lanes: usize, t: f64) -> Vec<V> {
    let randn_src = c
        .exprs
        .iter()
        .position(|e| matches!(e, Expr::Randn))
        .map_or(u32::MAX, |i| i as u32);
    (0..lanes)
        .map(|l| {
            let f = |m: f64| ((l as f64 + 1.0) * m).fract();
            let x = if l % 7 == 3 {
                0.0
            } else {
                -0.9 + 1.8 * f(0.618_033_988_7)
            };
            let q = if l % 3 == 0 { x } else { -0.9 + 1.8 * f(0.414_213_562_3) };
            V {
                vars: Vars {
                    x,
                    w: 0.2 + 2.4 * f(0.732_050_807_5),
                    k: -3.0 + 6.0 * f(0.236_067_977_5),
                    q,
                    s: -2.0 + 4.0 * f(0.645_751_311_1),
                },
                t,
                lane: l,
                randn_src,
            }
        })
        .collect()
}

/// `[y, p, u]` of the all-operations circuit for the lanes `vals`, in its layout.
pub(crate) fn buffers(c: &Circuit, layout: &Layout, vals: &[V]) -> [Vec<f64>; 3] {
    let lanes = vals.len();
    let pick = |id: VarId, v: &V| {
        let name = &c.var(id).name;
        name.strip_prefix("n/op/")
            .and_then(|n| v.vars.named(n))
            .unwrap_or_else(|| panic!("no test value for {name}"))
    };
    let fill = |ids: &[VarId]| {
        let mut out = vec![0.0; ids.len() * lanes];
        for (slot, &id) in ids.iter().enumerate() {
            for (l, v) in vals.iter().enumerate() {
                out[slot * lanes + l] = pick(id, v);
            }
        }
        out
    };
    [fill(&layout.states), fill(&layout.params), fill(&layout.inputs)]
}

/// The two-population QIF reference circuit of `shared/bench/README.md`, lowered as the
/// model passes lower it (every constant a per-lane parameter, edges as an algebraic
/// `r_in` with weight parameters, `I_ext` an input). `specialize`: parameters a sweep does
/// not vary become constants (what a sweep that specialises its kernel would compile).
pub(crate) fn qif_reference_circuit(specialize: bool) -> Circuit {
    let mut c = empty_circuit("qif_ref");
    let mut pops = Vec::new();
    for (node, eta) in [("PC", -5.0), ("IIN", -5.0)] {
        let v = |n: &str| format!("{node}/qif_op/{n}");
        let r = add_var(&mut c, &v("r"), VarKind::State, 0.01);
        let vv = add_var(&mut c, &v("v"), VarKind::State, -2.0);
        let tau = add_var(&mut c, &v("tau"), VarKind::Param, 1.0);
        let delta = add_var(&mut c, &v("Delta"), VarKind::Param, 1.0);
        let eta = add_var(&mut c, &v("eta"), VarKind::Param, eta);
        let iext = add_var(&mut c, &v("I_ext"), VarKind::Input, 0.0);
        let r_in = add_var(&mut c, &v("r_in"), VarKind::Algebraic, 0.0);
        pops.push((r, vv, tau, delta, eta, iext, r_in));
    }
    let w_pp = add_var(&mut c, "edge:PC->PC:0/weight", VarKind::Param, 15.0);
    let w_pi = add_var(&mut c, "edge:PC->IIN:0/weight", VarKind::Param, 10.0);
    let w_ip = add_var(&mut c, "edge:IIN->PC:0/weight", VarKind::Param, -10.0);
    let mut b = Builder {
        c,
        vars: Vars::all(w_pp),
        randn: None,
    };
    let (r_pc, r_iin) = (pops[0].0, pops[1].0);
    // r_in(PC) = w_pp r_PC + w_ip r_IIN; r_in(IIN) = w_pi r_PC
    let pv = |b: &mut Builder, var: VarId| {
        if specialize {
            b.num(b.c.var(var).value)
        } else {
            b.v(var)
        }
    };
    let w1 = pv(&mut b, w_pp);
    let t1 = b.ev(BinOp::Mul, w1, r_pc);
    let w2 = pv(&mut b, w_ip);
    let t2 = b.ev(BinOp::Mul, w2, r_iin);
    let rin_pc = b.bin(BinOp::Add, t1, t2);
    b.c.assigns.push(Assign {
        var: pops[0].6,
        rhs: rin_pc,
        span: None,
    });
    let w3 = pv(&mut b, w_pi);
    let rin_iin = b.ev(BinOp::Mul, w3, r_pc);
    b.c.assigns.push(Assign {
        var: pops[1].6,
        rhs: rin_iin,
        span: None,
    });
    for &(r, v, tau, delta, eta, iext, r_in) in &pops {
        let pi = b.num(std::f64::consts::PI);
        // r' = (Delta/(pi*tau) + 2*r*v) / tau
        let tauv = pv(&mut b, tau);
        let pitau = b.bin(BinOp::Mul, pi, tauv);
        let dl = pv(&mut b, delta);
        let q = b.bin(BinOp::Div, dl, pitau);
        let two = b.num(2.0);
        let rv = b.v(r);
        let r2 = b.bin(BinOp::Mul, two, rv);
        let r2v = b.ev(BinOp::Mul, r2, v);
        let num = b.bin(BinOp::Add, q, r2v);
        let dr = b.bin(BinOp::Div, num, tauv);
        push_ode(&mut b.c, r, dr);
        // v' = (v^2 + eta + I_ext + tau*r_in - (pi*tau*r)^2) / tau
        let v2 = b.pow_const(v, 2.0);
        let s1 = b.ev(BinOp::Add, v2, eta);
        let s2 = b.ev(BinOp::Add, s1, iext);
        let tri = b.ev(BinOp::Mul, tauv, r_in);
        let s3 = b.bin(BinOp::Add, s2, tri);
        let ptr_ = b.bin(BinOp::Mul, pitau, rv);
        let two2 = b.num(2.0);
        let sq = b.bin(BinOp::Pow, ptr_, two2);
        let s4 = b.bin(BinOp::Sub, s3, sq);
        let dv = b.bin(BinOp::Div, s4, tauv);
        push_ode(&mut b.c, v, dv);
    }
    b.c
}

/// Per-lane buffers of the QIF circuit: defaults, with (eta_PC, eta_IIN) on the √N × √N
/// grid of `linspace(-5, 5, √N)` in PyRates' `permute_grid=True` order (lane `l` is grid
/// point `first + l`), I_ext(PC) = 1.
pub(crate) fn qif_buffers(c: &Circuit, layout: &Layout, lanes: usize, first: usize, n: usize) -> [Vec<f64>; 3] {
    let e = |i: usize| {
        if n == 1 {
            -5.0
        } else {
            -5.0 + 10.0 * i as f64 / (n - 1) as f64
        }
    };
    let fill = |ids: &[VarId]| {
        let mut out = vec![0.0; ids.len() * lanes];
        for (slot, &id) in ids.iter().enumerate() {
            let var = c.var(id);
            for l in 0..lanes {
                let k = first + l;
                out[slot * lanes + l] = match var.name.as_str() {
                    "PC/qif_op/eta" => e(k % n),
                    "IIN/qif_op/eta" => e(k / n),
                    "PC/qif_op/I_ext" => 1.0,
                    _ => var.value,
                };
            }
        }
        out
    };
    [fill(&layout.states), fill(&layout.params), fill(&layout.inputs)]
}

/// Per-lane data for any circuit: each parameter and initial state its default scaled
/// by a lane-dependent factor in [0.8, 1.2] (0 stays 0, so add a small offset), inputs
/// their defaults. Mixed signs and magnitudes, all lanes different.
pub(crate) fn generic_buffers(c: &Circuit, layout: &Layout, lanes: usize) -> [Vec<f64>; 3] {
    let fill = |ids: &[VarId], salt: usize| {
        let mut out = vec![0.0; ids.len() * lanes];
        for (slot, &id) in ids.iter().enumerate() {
            let v = c.var(id).value;
            for l in 0..lanes {
                let f = (((l + 1) * (slot + 3 + salt)) as f64 * 0.618_033_988_7).fract();
                out[slot * lanes + l] = v * (0.8 + 0.4 * f) + 0.01 * (f - 0.5);
            }
        }
        out
    };
    [
        fill(&layout.states, 0),
        fill(&layout.params, 1),
        fill(&layout.inputs, 2),
    ]
}

/// The test models, the QIF reference circuit, the all-operations circuit and the built-in
/// templates of every kind (lowered), for checks of one back end against another.
pub(crate) fn circuits_for_cross_check() -> Vec<(String, Circuit)> {
    use crate::model::test_models;
    let mut out = vec![
        ("all_ops".to_string(), all_ops_circuit().0),
        ("qif_reference_ir".to_string(), qif_reference_circuit(false)),
        ("exponential_decay".to_string(), test_models::exponential_decay().0),
        ("harmonic_oscillator".to_string(), test_models::harmonic_oscillator().0),
        ("mpr_single".to_string(), test_models::mpr_single().0),
        ("reference_circuit".to_string(), test_models::reference_circuit().0),
    ];
    for path in [
        "model_templates.montbrio.simple_montbrio.Net3",
        "model_templates.neural_mass_models.qif.qif",
        "model_templates.neural_mass_models.qif.qif_sfa",
        "model_templates.neural_mass_models.jansenrit.JRC",
        "model_templates.neural_mass_models.jansenrit.JRC_2delaycoupled",
        "model_templates.neural_mass_models.wilsoncowan.WC",
        "model_templates.oscillators.kuramoto.kmo_2coupled",
        "model_templates.oscillators.vanderpol.vdp",
    ] {
        let loaded = crate::model::load_circuit(path, &crate::template::LoadOptions::default())
            .unwrap_or_else(|e| panic!("built-in template {path} loads: {e}"));
        out.push((path.to_string(), crate::model::passes::lower_edges(&loaded.circuit)));
    }
    out
}

/// The cross-check circuits a fused stepper takes (no `Past`, no `Randn`).
pub(crate) fn stepper_circuits() -> Vec<(String, Circuit)> {
    circuits_for_cross_check()
        .into_iter()
        .filter(|(_, c)| !c.exprs.iter().any(|e| matches!(e, Expr::Past(..) | Expr::Randn)))
        .collect()
}
