//! C source generation for a lowered circuit.
//!
//! Every non-leaf expression node becomes one `const` local (SSA style), so shared
//! sub-expressions of the DAG are computed once and the text stays linear in the arena size.
//! `Select` therefore evaluates both branches; that is harmless for pure expressions and lets
//! the compiler vectorise it as a blend. `Past`/`Randn` go through the callbacks in the
//! ctx, which also makes them unconditional (documented on `CKernel`).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::kernel::mathfns::{self, PowPlan};
use crate::model::{BinOp, Circuit, Expr, ExprId, Func, Layout, VarKind};

/// Generated source plus what the Rust side needs to drive it.
pub(crate) struct Source {
    pub text: String,
    /// The circuit reads `Past` or `Randn`: the fused stepper must not be used.
    pub uses_callbacks: bool,
    /// Number of step-invariant values the fused stepper precomputes per lane.
    pub hoisted: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    F64,
    F32,
}

impl Ty {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::F64 => "double",
            Ty::F32 => "float",
        }
    }
    /// libm suffix: `exp` / `expf`.
    fn sfx(self) -> &'static str {
        match self {
            Ty::F64 => "",
            Ty::F32 => "f",
        }
    }
}

/// A C literal that parses back to exactly `c` (in the target precision). Rust's `{:e}`
/// prints the shortest digits that round-trip, and C compilers round decimal literals
/// correctly.
pub(crate) fn lit(c: f64, ty: Ty) -> String {
    // In single precision, round once, from the f64 value, as `c as f32` does.
    let (value, nan, huge, digits) = match ty {
        Ty::F64 => (c, "((double)NAN)", "HUGE_VAL", format!("({c:e})")),
        Ty::F32 => {
            let f = c as f32;
            (f64::from(f), "NAN", "HUGE_VALF", format!("({f:e}f)"))
        }
    };
    if value.is_nan() {
        nan.into()
    } else if value.is_infinite() {
        if value > 0.0 {
            huge.into()
        } else {
            format!("(-{huge})")
        }
    } else {
        digits
    }
}

/// Something the fused stepper computes once per call instead of once per step.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Hoist {
    Value(ExprId),
    /// `1 / value`: division by a step-invariant divisor becomes a multiplication.
    Recip(ExprId),
}

/// See [`Emitter::remap`].
pub(crate) type Remap<'a> = dyn Fn(ExprId, &Expr) -> Option<String> + 'a;

pub(crate) struct Emitter<'c> {
    c: &'c Circuit,
    layout: &'c Layout,
    ty: Ty,
    /// Per expression: name of the local holding its value, once emitted.
    temps: HashMap<ExprId, String>,
    /// Per algebraic slot: its local exists.
    assigned: Vec<bool>,
    pub(crate) out: String,
    /// When set, step-invariant sub-expressions are read from the rows `Hk[l]`.
    hoist: Option<&'c mut HoistPlan>,
    uses_callbacks: bool,
    pow_temps: usize,
    /// Overrides the text of variables and constants (the network loops read a node's copy
    /// of a template variable, or its value of a per-node constant), and names the noise
    /// source of a `randn()` (the node's own).
    pub(crate) remap: Option<&'c Remap<'c>>,
}

pub(crate) struct HoistPlan {
    invariant: Vec<Option<bool>>,
    constant: Vec<Option<bool>>,
    items: Vec<Hoist>,
    index: HashMap<Hoist, usize>,
    /// Multiply by a hoisted reciprocal instead of dividing (not bit-identical to `rhs`).
    recip: bool,
}

impl HoistPlan {
    fn new(c: &Circuit, recip: bool) -> Self {
        HoistPlan {
            invariant: vec![None; c.exprs.len()],
            constant: vec![None; c.exprs.len()],
            items: Vec::new(),
            index: HashMap::new(),
            recip,
        }
    }
    /// Depends only on constants, parameters and inputs (held constant by the stepper).
    fn is_invariant(&mut self, c: &Circuit, id: ExprId) -> bool {
        let leaf = |e: &Expr| match e {
            Expr::Var(v) => {
                let kind = c.vars.get(v.0 as usize).map(|v| v.kind);
                matches!(kind, Some(VarKind::Param | VarKind::Input))
            }
            _ => matches!(e, Expr::Const(_)),
        };
        Self::depends_only_on(&mut self.invariant, c, id, &leaf)
    }
    /// Depends on constants only: left inline for the C compiler to fold (hoisting it would
    /// hide `x / 1.0` and friends behind a load).
    fn is_constant(&mut self, c: &Circuit, id: ExprId) -> bool {
        Self::depends_only_on(&mut self.constant, c, id, &|e: &Expr| matches!(e, Expr::Const(_)))
    }
    /// Whether every leaf of `id` (constant, variable, time, `past`, `randn`) passes `leaf`,
    /// memoised per expression in `memo`.
    fn depends_only_on(memo: &mut [Option<bool>], c: &Circuit, id: ExprId, leaf: &dyn Fn(&Expr) -> bool) -> bool {
        let Some(slot) = memo.get(id.0 as usize).copied() else {
            return false;
        };
        if let Some(v) = slot {
            return v;
        }
        let mut all = |ids: &[ExprId]| ids.iter().all(|a| Self::depends_only_on(memo, c, *a, leaf));
        let expr = c.expr(id);
        let v = match expr {
            Expr::Const(_) | Expr::Var(_) | Expr::Time | Expr::Past(..) | Expr::Randn => leaf(expr),
            Expr::Neg(a) => all(&[*a]),
            Expr::Binary(_, a, b) => all(&[*a, *b]),
            Expr::Call(_, args) => all(args),
            Expr::Select(x, a, b) => all(&[*x, *a, *b]),
        };
        memo[id.0 as usize] = Some(v);
        v
    }
    /// Worth computing once per call: step-invariant but not a compile-time constant.
    fn hoistable(&mut self, c: &Circuit, id: ExprId) -> bool {
        self.is_invariant(c, id) && !self.is_constant(c, id)
    }
    fn slot(&mut self, h: Hoist) -> usize {
        if let Some(&k) = self.index.get(&h) {
            return k;
        }
        self.items.push(h);
        self.index.insert(h, self.items.len() - 1);
        self.items.len() - 1
    }
}

impl<'c> Emitter<'c> {
    pub(crate) fn new(c: &'c Circuit, layout: &'c Layout, ty: Ty, hoist: Option<&'c mut HoistPlan>) -> Self {
        Emitter {
            c,
            layout,
            ty,
            temps: HashMap::new(),
            assigned: vec![false; layout.algebraics.len()],
            out: String::new(),
            hoist,
            uses_callbacks: false,
            pow_temps: 0,
            remap: None,
        }
    }

    pub(crate) fn line(&mut self, s: &str) {
        self.out.push_str("    ");
        self.out.push_str(s);
        self.out.push('\n');
    }

    /// Loads of every state, parameter and input of lane `l` into locals (the compiler drops
    /// the unused ones).
    fn loads(&mut self, y: &str) {
        let t = self.ty.name();
        for k in 0..self.layout.states.len() {
            self.line(&format!("const {t} y{k} = {y}{k}[l];"));
        }
        self.loads_params_inputs();
    }

    fn loads_params_inputs(&mut self) {
        let t = self.ty.name();
        for k in 0..self.layout.params.len() {
            self.line(&format!("const {t} p{k} = P{k}[l];"));
        }
        for k in 0..self.layout.inputs.len() {
            self.line(&format!("const {t} u{k} = U{k}[l];"));
        }
    }

    /// Assignments in evaluation order, each kept in a local and optionally stored to `A`.
    fn assigns(&mut self, store: bool) {
        let t = self.ty.name();
        for asg in &self.c.assigns {
            let slot = self.layout.slot[asg.var.0 as usize];
            let v = self.expr(asg.rhs);
            self.line(&format!("const {t} a{slot} = {v};"));
            if let Some(done) = self.assigned.get_mut(slot as usize) {
                *done = true;
            }
            if store {
                self.line(&format!("A{slot}[l] = a{slot};"));
            }
        }
    }

    /// Derivatives, each passed to `sink(slot, value)` which returns the statement.
    fn odes(&mut self, sink: impl Fn(u32, &str) -> String) {
        for ode in &self.c.odes {
            let slot = self.layout.slot[ode.var.0 as usize];
            let v = self.expr(ode.rhs);
            let s = sink(slot, &v);
            self.line(&s);
        }
    }

    fn nan(&self) -> String {
        lit(f64::NAN, self.ty)
    }

    fn var(&self, id: crate::model::VarId) -> String {
        let Some(var) = self.c.vars.get(id.0 as usize) else {
            return self.nan();
        };
        let slot = self.layout.slot.get(id.0 as usize).copied().unwrap_or(u32::MAX);
        if slot == u32::MAX {
            // A state without an ODE: validation rejects this; keep the C well-formed.
            return self.nan();
        }
        match var.kind {
            VarKind::State => format!("y{slot}"),
            VarKind::Param => format!("p{slot}"),
            VarKind::Input => format!("u{slot}"),
            VarKind::Algebraic => {
                if self.assigned.get(slot as usize).copied().unwrap_or(false) {
                    format!("a{slot}")
                } else {
                    // Read before its assignment: validation rejects this too.
                    self.nan()
                }
            }
        }
    }

    /// The operand text for `id`, emitting locals for it and its children as needed.
    pub(crate) fn expr(&mut self, id: ExprId) -> String {
        if let Some(name) = self.temps.get(&id) {
            return name.clone();
        }
        let Some(e) = self.c.exprs.get(id.0 as usize) else {
            return self.nan();
        };
        if let (Some(remap), Expr::Const(_) | Expr::Var(_)) = (self.remap, e) {
            if let Some(text) = remap(id, e) {
                return text;
            }
        }
        match e {
            Expr::Const(c) => return lit(*c, self.ty),
            Expr::Var(v) => return self.var(*v),
            _ => {}
        }
        let c = self.c;
        if let Some(plan) = self.hoist.as_deref_mut() {
            if plan.hoistable(c, id) {
                let k = plan.slot(Hoist::Value(id));
                let name = format!("H{k}[l]");
                self.temps.insert(id, name.clone());
                return name;
            }
        }
        let ty = self.ty;
        let sfx = ty.sfx();
        let one = lit(1.0, ty);
        let zero = lit(0.0, ty);
        let value = match e.clone() {
            Expr::Const(_) | Expr::Var(_) => unreachable!("handled above"),
            Expr::Time => match ty {
                Ty::F64 => "t".to_string(),
                Ty::F32 => "((float)t)".to_string(),
            },
            Expr::Neg(a) => format!("(-{})", self.expr(a)),
            Expr::Binary(op, a, b) => self.binary(op, a, b),
            Expr::Call(f, args) => {
                let v: Vec<String> = args.iter().map(|a| self.expr(*a)).collect();
                let arg = |i: usize| v.get(i).cloned().unwrap_or_else(|| lit(f64::NAN, ty));
                let x = arg(0);
                let name = |n: &str| format!("{n}{sfx}({x})");
                match f {
                    Func::Sin => name("sin"),
                    Func::Cos => name("cos"),
                    Func::Tan => name("tan"),
                    Func::Sinh => name("sinh"),
                    Func::Cosh => name("cosh"),
                    Func::Tanh => name("tanh"),
                    Func::Arcsin => name("asin"),
                    Func::Arccos => name("acos"),
                    Func::Arctan => name("atan"),
                    Func::Arctan2 => format!("atan2{sfx}({x}, {})", arg(1)),
                    Func::Exp => name("exp"),
                    Func::Log => name("log"),
                    Func::Sqrt => name("sqrt"),
                    Func::Abs => name("fabs"),
                    Func::Sigmoid => format!("({one}/({one}+exp{sfx}(-{x})))"),
                    Func::Max => format!("rr_max{sfx}({x}, {})", arg(1)),
                    Func::Min => format!("rr_min{sfx}({x}, {})", arg(1)),
                    Func::Heaviside => format!("rr_heaviside{sfx}({x})"),
                    Func::Floor => name("floor"),
                    Func::Ceil => name("ceil"),
                    Func::Sign => format!("rr_sign{sfx}({x})"),
                }
            }
            Expr::Select(cond, a, b) => {
                let (x, y, z) = (self.expr(cond), self.expr(a), self.expr(b));
                format!("({x} != {zero} ? {y} : {z})")
            }
            Expr::Past(var, delay) => {
                self.uses_callbacks = true;
                let d = self.expr(delay);
                let delayed = match ty {
                    Ty::F64 => format!("rr_past(ctx, {}u, l, t, {d})", var.0),
                    Ty::F32 => format!("((float)rr_past(ctx, {}u, l, t, (double){d}))", var.0),
                };
                // As the reference evaluator: a delay ≤ 0 (or NaN) reads the current value.
                format!("({d} > {zero} ? {delayed} : {})", self.var(var))
            }
            Expr::Randn => {
                self.uses_callbacks = true;
                // The noise source: this expression's id, or in a network's population loop
                // the current node's (the remap names it).
                let source = self
                    .remap
                    .and_then(|r| r(id, e))
                    .unwrap_or_else(|| format!("{}u", id.0));
                match ty {
                    Ty::F64 => format!("rr_randn(ctx, {source}, l)"),
                    Ty::F32 => format!("((float)rr_randn(ctx, {source}, l))"),
                }
            }
        };
        let name = format!("e{}", id.0);
        self.line(&format!("const {} {name} = {value};", ty.name()));
        self.temps.insert(id, name.clone());
        name
    }

    fn binary(&mut self, op: BinOp, a: ExprId, b: ExprId) -> String {
        let ty = self.ty;
        if op == BinOp::Pow {
            // An exponent the remap replaces (a per-node constant of a network) is not this
            // constant in every node: no repeated squaring by its node-0 value.
            let remapped = |e: &Expr| self.remap.is_some_and(|r| r(b, e).is_some());
            if let Some(Expr::Const(n)) = self.c.exprs.get(b.0 as usize).filter(|e| !remapped(e)) {
                match mathfns::pow_plan(*n) {
                    PowPlan::Integer(n) => {
                        let x = self.expr(a);
                        return self.int_pow(&x, n);
                    }
                    PowPlan::Sqrt => {
                        let x = self.expr(a);
                        return format!("sqrt{}({x})", ty.sfx());
                    }
                    PowPlan::Call => {}
                }
            }
        }
        if op == BinOp::Div {
            let c = self.c;
            if let Some(plan) = self.hoist.as_deref_mut() {
                if plan.recip && plan.hoistable(c, b) {
                    let k = plan.slot(Hoist::Recip(b));
                    let x = self.expr(a);
                    return format!("({x} * H{k}[l])");
                }
            }
        }
        let x = self.expr(a);
        let y = self.expr(b);
        let (one, zero) = (lit(1.0, ty), lit(0.0, ty));
        let cmp = |o: &str| format!("(({x} {o} {y}) ? {one} : {zero})");
        match op {
            BinOp::Add => format!("({x} + {y})"),
            BinOp::Sub => format!("({x} - {y})"),
            BinOp::Mul => format!("({x} * {y})"),
            BinOp::Div => format!("({x} / {y})"),
            BinOp::Pow => format!("rr_pow{}({x}, {y})", ty.sfx()),
            BinOp::Lt => cmp("<"),
            BinOp::Le => cmp("<="),
            BinOp::Gt => cmp(">"),
            BinOp::Ge => cmp(">="),
            BinOp::Eq => cmp("=="),
            BinOp::Ne => cmp("!="),
        }
    }

    /// `x^n` by repeated squaring (x·x, not `pow`): exact for n = 2 and within a few ulps
    /// otherwise, and vectorisable.
    fn int_pow(&mut self, x: &str, n: i32) -> String {
        let ty = self.ty;
        if n == 0 {
            return lit(1.0, ty);
        }
        // Squares go to temporaries (each used by the next square and maybe a product).
        let v = mathfns::pow_by_squaring_steps(x.to_string(), n.unsigned_abs(), |step| match step {
            mathfns::PowStep::Square(b) => {
                self.pow_temps += 1;
                let name = format!("pw{}", self.pow_temps);
                self.line(&format!("const {} {name} = {b} * {b};", ty.name()));
                name
            }
            mathfns::PowStep::Times(a, b) => format!("({a} * {b})"),
        });
        if n < 0 {
            format!("({} / {v})", lit(1.0, ty))
        } else {
            v
        }
    }
}

pub(crate) const PRELUDE: &str = r#"#include <math.h>
#include <stddef.h>

typedef double (*rr_past_fn)(void*, unsigned, size_t, double, double);
typedef double (*rr_randn_fn)(void*, unsigned, size_t);
/* Set right after loading to rustrates' trampolines (kernel::mathfns), which answer NaN when
   the solver installed no hook. */
static rr_past_fn rr_past_hook = 0;
static rr_randn_fn rr_randn_hook = 0;
void rustrates_set_hooks(rr_past_fn past, rr_randn_fn randn) { rr_past_hook = past; rr_randn_hook = randn; }

static inline double rr_past(void* ctx, unsigned var, size_t lane, double t, double delay) {
    return rr_past_hook ? rr_past_hook(ctx, var, lane, t, delay) : (double)NAN;
}
static inline double rr_randn(void* ctx, unsigned source, size_t lane) {
    return rr_randn_hook ? rr_randn_hook(ctx, source, lane) : (double)NAN;
}
/* x^y by rustrates' one rule (kernel::mathfns::pow_plan): an integer exponent up to 64 in
   size multiplied out by squaring (1 / x^|n| when negative), 1/2 as sqrt, else pow. */
#define RR_POW_BY_RULE(name, T, SFX)                                   \
    static inline T name(T x, T y) {                                   \
        if (fabs##SFX(y) <= (T)64 && y == floor##SFX(y)) {             \
            int n = (int)y;                                            \
            unsigned e = n < 0 ? (unsigned)(-n) : (unsigned)n;         \
            if (e == 0) return (T)1;                                   \
            T base = x, acc = (T)0;                                    \
            int have = 0;                                              \
            for (;;) {                                                 \
                if (e & 1u) { acc = have ? acc * base : base; have = 1; } \
                e >>= 1;                                               \
                if (e == 0) break;                                     \
                base = base * base;                                    \
            }                                                          \
            return n < 0 ? (T)1 / acc : acc;                           \
        }                                                              \
        if (y == (T)0.5) return sqrt##SFX(x);                          \
        return pow##SFX(x, y);                                         \
    }
RR_POW_BY_RULE(rr_pow, double, )
RR_POW_BY_RULE(rr_powf, float, f)
/* numpy's maximum/minimum (as kernel::mathfns): NaN in either gives NaN, max(-0,+0) = +0,
   min(-0,+0) = -0. Branch-free enough to vectorise as blends. */
static inline double rr_max(double a, double b) {
    return (a != a || b != b) ? a + b : (a == b ? (signbit(a) ? b : a) : (a > b ? a : b));
}
static inline double rr_min(double a, double b) {
    return (a != a || b != b) ? a + b : (a == b ? (signbit(a) ? a : b) : (a < b ? a : b));
}
static inline float rr_maxf(float a, float b) {
    return (a != a || b != b) ? a + b : (a == b ? (signbit(a) ? b : a) : (a > b ? a : b));
}
static inline float rr_minf(float a, float b) {
    return (a != a || b != b) ? a + b : (a == b ? (signbit(a) ? a : b) : (a < b ? a : b));
}
/* numpy heaviside(x, 0.5) and sign: NaN stays NaN, zero keeps its value. */
static inline double rr_heaviside(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? 0.0 : (x == 0.0 ? 0.5 : x)); }
static inline float rr_heavisidef(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? 0.0f : (x == 0.0f ? 0.5f : x)); }
static inline double rr_sign(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : x); }
static inline float rr_signf(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); }
/* A Runge-Kutta combination of stage slopes, for every fixed-step stepper: S = sum over
   m < count of C[m] K[m] (in m order, zero coefficients skipped), then OUT = Y + dt * S. S and
   OUT may be one array (a stage's state), as may Y and OUT (the step's update). */
static inline void rr_rk_combine(size_t n, int count, const double* restrict C, const double* restrict K,
                                 double dt, const double* Y, double* S, double* OUT) {
    for (size_t j = 0; j < n; j++) S[j] = 0.0;
    for (int m = 0; m < count; m++) {
        const double cm = C[m];
        if (cm == 0.0) continue;
        const double* restrict Km = K + (size_t)m * n;
        for (size_t j = 0; j < n; j++) S[j] += cm * Km[j];
    }
    for (size_t j = 0; j < n; j++) OUT[j] = Y[j] + dt * S[j];
}
"#;

/// The whole translation unit: `rustrates_rhs`, `rustrates_rhs_f32`, `rustrates_steps`.
pub(crate) fn emit(c: &Circuit, recip: bool) -> Source {
    let layout = c.layout();
    let mut text = String::new();
    let _ = writeln!(text, "/* generated by rustrates {} */", env!("CARGO_PKG_VERSION"));
    text.push_str(PRELUDE);
    let ns = layout.states.len();

    let (np, ni, na) = (layout.params.len(), layout.inputs.len(), layout.algebraics.len());

    // Plain right-hand sides.
    let mut uses_callbacks = false;
    for ty in [Ty::F64, Ty::F32] {
        let t = ty.name();
        let fname = match ty {
            Ty::F64 => "rustrates_rhs",
            Ty::F32 => "rustrates_rhs_f32",
        };
        let mut pro = String::new();
        rows(&mut pro, true, t, "Y", ns);
        rows(&mut pro, true, t, "P", np);
        rows(&mut pro, true, t, "U", ni);
        rows(&mut pro, false, t, "DY", ns);
        rows(&mut pro, false, t, "A", na);
        let mut em = Emitter::new(c, &layout, ty, None);
        em.loads("Y");
        em.assigns(true);
        em.odes(|slot, v| format!("DY{slot}[l] = {v};"));
        uses_callbacks |= em.uses_callbacks;
        let body = lane_loop(&pro, &em.out);
        specialised(
            &mut text,
            fname,
            true,
            &format!(
                "double t, const {t}* restrict Y, const {t}* restrict P, const {t}* restrict U, \
                 {t}* restrict DY, {t}* restrict A, void* ctx"
            ),
            "t, Y, P, U, DY, A, ctx",
            &body,
        );
    }

    // Fused stepper: a stage function and an Euler loop that read step-invariant values
    // from H, precomputed once per call by `rr_hoist`.
    let mut plan = HoistPlan::new(c, recip);
    // Both read the state Y and the hoisted values; they differ only in what each ODE's
    // right-hand side `v` becomes.
    let mut hoisted_body = |ode: fn(u32, &str) -> String| {
        let mut em = Emitter::new(c, &layout, Ty::F64, Some(&mut plan));
        em.loads("Y");
        em.assigns(false);
        em.odes(ode);
        em.out
    };
    let stage_body = hoisted_body(|slot, v| format!("DY{slot}[l] = {v};"));
    let euler_body = hoisted_body(|slot, v| format!("Y{slot}[l] = y{slot} + dt * {v};"));
    let hoist_body = {
        let mut em = Emitter::new(c, &layout, Ty::F64, None);
        em.loads_params_inputs();
        let items = plan.items.clone();
        for (k, h) in items.iter().enumerate() {
            let v = match h {
                Hoist::Value(id) => em.expr(*id),
                Hoist::Recip(id) => {
                    let v = em.expr(*id);
                    format!("(1.0 / {v})")
                }
            };
            em.line(&format!("H{k}[l] = {v};"));
        }
        em.out
    };
    let nh = plan.items.len();
    let inputs_rows = |text: &mut String, hconst: bool| {
        rows(text, true, "double", "P", np);
        rows(text, true, "double", "U", ni);
        rows(text, hconst, "double", "H", nh);
    };

    let mut pro = String::new();
    inputs_rows(&mut pro, false);
    specialised(
        &mut text,
        "rr_hoist",
        false,
        "const double* restrict P, const double* restrict U, double* restrict H",
        "P, U, H",
        &lane_loop(&pro, &hoist_body),
    );

    let mut pro = String::new();
    rows(&mut pro, true, "double", "Y", ns);
    inputs_rows(&mut pro, true);
    rows(&mut pro, false, "double", "DY", ns);
    specialised(
        &mut text,
        "rr_stage",
        false,
        "double t, const double* restrict Y, const double* restrict P, const double* restrict U, \
         const double* restrict H, double* restrict DY, void* ctx",
        "t, Y, P, U, H, DY, ctx",
        &lane_loop(&pro, &stage_body),
    );

    let mut pro = String::new();
    rows(&mut pro, false, "double", "Y", ns);
    inputs_rows(&mut pro, true);
    let mut euler = String::new();
    indent_by(&mut euler, &euler_body, 2);
    specialised(
        &mut text,
        "rr_euler",
        false,
        "size_t s0, size_t nsteps, double t0, double dt, double* restrict Y, const double* restrict P, \
         const double* restrict U, const double* restrict H, void* ctx",
        "s0, nsteps, t0, dt, Y, P, U, H, ctx",
        &format!(
            "{pro}    for (size_t s = s0; s < s0 + nsteps; s++) {{\n        const double t = t0 + (double)s * dt;\n        \
             (void)t;\n        for (size_t l = 0; l < lanes; l++) {{\n{euler}        }}\n    }}\n"
        ),
    );

    let rk = rk_steps("rr_stage(lanes, t + TC[i] * dt, yin, P, U, H, K + (size_t)i * n, ctx)");
    let sampled = sampled_steps("rr_advance", "t0, dt, Y, P, U, ctx, stages, TA, TB, TC, W");
    let _ = write!(
        text,
        r#"
/* Steps s0 .. s0+nsteps-1 of a call; step s starts at t0 + s*dt. */
static void rr_advance(size_t lanes, size_t s0, size_t nsteps, double t0, double dt, double* restrict Y,
                       const double* restrict P, const double* restrict U, void* ctx, int stages,
                       const double* restrict TA, const double* restrict TB, const double* restrict TC,
                       double* restrict W) {{
    const double* restrict H = W;
    if (stages == 1 && TA[0] == 0.0 && TB[0] == 1.0 && TC[0] == 0.0) {{
        rr_euler(lanes, s0, nsteps, t0, dt, Y, P, U, H, ctx);
        return;
    }}
    const size_t n = (size_t){ns} * lanes;
    double* restrict K = W + (size_t){nh} * lanes;
    double* restrict YT = K + (size_t)stages * n;
{rk}}}

/* Sample k (k < count) copies the states SLOTS[..nslots] into OUT[k][o][lane] after
   first + k*every steps, so a long stretch of samples needs one call. */
void rustrates_steps(size_t lanes, size_t nsteps, double t0, double dt, double* restrict Y,
                     const double* restrict P, const double* restrict U, double* restrict A, void* ctx,
                     int stages, const double* restrict TA, const double* restrict TB,
                     const double* restrict TC, double* restrict W, const unsigned* restrict SLOTS,
                     size_t nslots, size_t first, size_t every, size_t count, double* restrict OUT) {{
    (void)A;
    rr_hoist(lanes, P, U, W);
{sampled}}}
"#
    );
    Source {
        text,
        uses_callbacks,
        hoisted: nh,
    }
}

/// The C of explicit Runge–Kutta steps `s0 .. s0+nsteps-1` (step `s` at `t0 + s·dt`) over
/// `n` values `Y` with stage rows `K` and a stage state `YT`: per stage `i` the state it
/// reads (`yin`) and `stage`, the call writing its derivatives at `t + TC[i]·dt` into
/// `K + i·n`. One text for the scalar and the network steppers.
pub(crate) fn rk_steps(stage: &str) -> String {
    format!(
        "    for (size_t s = s0; s < s0 + nsteps; s++) {{
        const double t = t0 + (double)s * dt;
        for (int i = 0; i < stages; i++) {{
            const double* yin = Y;
            if (i > 0) {{
                rr_rk_combine(n, i, TA + (size_t)i * stages, K, dt, Y, YT, YT);
                yin = YT;
            }}
            {stage};
        }}
        /* The stage state is free now: the sum of B[m] K[m] goes there. */
        rr_rk_combine(n, stages, TB, K, dt, Y, YT, Y);
    }}
"
    )
}

/// The C of a `*_steps` entry point's body: `advance(lanes, from, count, args)` up to each
/// sample at `first + k·every` steps, the states `SLOTS` copied to `OUT[k]` there, then the
/// remaining steps. One text for the scalar and the network steppers.
pub(crate) fn sampled_steps(advance: &str, args: &str) -> String {
    format!(
        "    size_t done = 0;
    for (size_t k = 0; k < count; k++) {{
        const size_t at = first + k * every;
        if (at > done) {{
            {advance}(lanes, done, at - done, {args});
            done = at;
        }}
        for (size_t o = 0; o < nslots; o++) {{
            const double* restrict src = Y + (size_t)SLOTS[o] * lanes;
            double* restrict dst = OUT + (k * nslots + o) * lanes;
            for (size_t l = 0; l < lanes; l++) dst[l] = src[l];
        }}
    }}
    if (done < nsteps) {advance}(lanes, done, nsteps - done, {args});
"
    )
}

/// Block width for which every function has a copy with constant strides: with the row
/// stride known, the compiler proves rows disjoint and the trip count exact, and vectorises
/// without runtime alias checks (which otherwise can make it give up on wide loops).
pub(crate) const BLOCK: usize = 64;

/// `body` (which uses `lanes`) as an always-inlined function plus a wrapper `name` that calls
/// it with the constant [`BLOCK`] when `lanes` equals it.
fn specialised(text: &mut String, name: &str, public: bool, params: &str, args: &str, body: &str) {
    let _ = writeln!(
        text,
        "\nstatic inline __attribute__((always_inline)) void {name}_body(size_t lanes, {params}) {{\n{body}}}"
    );
    let vis = if public { "" } else { "static " };
    let _ = writeln!(
        text,
        "{vis}void {name}(size_t lanes, {params}) {{\n    if (lanes == {BLOCK}) {name}_body({BLOCK}, {args});\n    \
         else {name}_body(lanes, {args});\n}}"
    );
}

/// Row declarations, then `for (l < lanes) { body }`.
fn lane_loop(prologue: &str, body: &str) -> String {
    let mut s = String::from(prologue);
    s.push_str("    for (size_t l = 0; l < lanes; l++) {\n");
    indent_by(&mut s, body, 2);
    s.push_str("    }\n");
    s
}

/// `const double* restrict Y0 = Y + 0*lanes;` ... for `n` rows of array `name`.
fn rows(text: &mut String, constant: bool, ty: &str, name: &str, n: usize) {
    let q = if constant { "const " } else { "" };
    for k in 0..n {
        let _ = writeln!(text, "    {q}{ty}* restrict {name}{k} = {name} + (size_t){k} * lanes;");
    }
}

pub(crate) fn indent_by(text: &mut String, body: &str, levels: usize) {
    for line in body.lines() {
        for _ in 0..levels {
            text.push_str("    ");
        }
        text.push_str(line);
        text.push('\n');
    }
}
