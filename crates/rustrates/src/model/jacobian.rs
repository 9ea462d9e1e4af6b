//! The Jacobian of a circuit's right-hand side, ∂(dx_i/dt)/∂x_j, derived symbolically from
//! the IR (PyRates 1.2's `get_jacobian_func`, without sympy).
//!
//! Input: a lowered circuit (no edges). Output: a [`Jacobian`] — a copy of the circuit whose
//! algebraics are followed by new ones: `d(a)/d(x)` for every algebraic `a` and state `x` it
//! depends on (the chain rule through assignments, one variable per partial derivative, so
//! nothing is substituted twice and expressions do not grow), then one `jacobian[i][j]` per
//! entry that is neither zero nor a constant. Any back end compiles that circuit like a
//! right-hand side; one evaluation yields the derivatives and the whole matrix
//! ([`JacobianFn`]).
//!
//! Rules: the usual calculus for arithmetic, powers and smooth functions; `abs` gives
//! `sign(x)`, `max`/`min` the derivative of the argument they pick, `cond ? a : b` the
//! derivative of the branch taken. Functions constant almost everywhere (comparisons,
//! `heaviside`, `sign`, `floor`, `ceil`) have derivative 0, as everywhere but at their jumps.
//! Parameters, inputs and time are constants. Two things have no derivative with respect to
//! the current state, and are errors positioned at the equation that contains them: a
//! delayed read (`past(x, d)`, `x(t - d)`: the linearisation of a delay equation is not a
//! matrix) and noise (`randn()`).

use std::collections::HashMap;

use super::{Assign, BinOp, Circuit, Expr, ExprId, Func, Var, VarId, VarKind};
use crate::kernel::{Kernel, KernelCtx, KernelError, KernelOptions, RhsArgs};
use crate::syntax::{Diagnostic, Span};

/// How one entry of the matrix is obtained.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Entry {
    /// Structurally zero.
    Zero,
    /// The same at every state and parameter value.
    Const(f64),
    /// The value of the algebraic in this slot of the [`Jacobian::circuit`]'s layout.
    Algebraic(u32),
}

/// The derived Jacobian of a circuit (see the module docs).
#[derive(Clone, Debug)]
pub struct Jacobian {
    /// The circuit with the partial derivatives appended as algebraics.
    pub circuit: Circuit,
    /// The states, in layout (ODE) order: row i and column j of the matrix are `states[i]`
    /// and `states[j]`.
    pub states: Vec<VarId>,
    /// Row-major, `states.len()²` entries.
    pub entries: Vec<Entry>,
}

/// A term of the right-hand side that has no derivative with respect to the state.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "the Jacobian of `{var}` cannot be derived: {what} has no derivative with respect to the current state ({why})"
)]
pub struct JacobianError {
    /// The state or algebraic whose equation holds the term.
    pub var: String,
    /// That equation, when known.
    pub span: Option<Span>,
    pub what: &'static str,
    pub why: &'static str,
}

impl JacobianError {
    /// The error as a diagnostic at the equation, for the fronts' renderers.
    pub fn diagnostic(&self) -> Diagnostic {
        let d = Diagnostic::error("jacobian/not-differentiable", self.to_string())
            .with_help("remove the delay or noise term, or classify this circuit without the Jacobian (summaries other than `regime`)");
        match self.span {
            Some(s) => d.with_span(s),
            None => d,
        }
    }
}

/// Partial derivative of an expression: `None` is the symbolic zero.
type D = Option<ExprId>;

struct Deriver<'a> {
    c: &'a mut Circuit,
    /// State index (layout order) per variable, for states.
    state_index: Vec<Option<usize>>,
    /// ∂a/∂x_j per (algebraic, j), filled in assignment order.
    algebraic: HashMap<(VarId, usize), ExprId>,
    memo: HashMap<(ExprId, usize), D>,
    /// The variable whose equation is being differentiated (for errors).
    current: (String, Option<Span>),
}

impl Deriver<'_> {
    fn constant(&self, e: ExprId) -> Option<f64> {
        match self.c.expr(e) {
            Expr::Const(v) => Some(*v),
            _ => None,
        }
    }
    fn k(&mut self, v: f64) -> ExprId {
        self.c.add_expr(Expr::Const(v))
    }
    fn bin(&mut self, op: BinOp, a: ExprId, b: ExprId) -> ExprId {
        self.c.add_expr(Expr::Binary(op, a, b))
    }
    fn call(&mut self, f: Func, args: Vec<ExprId>) -> ExprId {
        self.c.add_expr(Expr::Call(f, args))
    }
    fn add(&mut self, a: D, b: D) -> D {
        match (a, b) {
            (None, x) | (x, None) => x,
            (Some(a), Some(b)) => Some(match (self.constant(a), self.constant(b)) {
                (Some(x), Some(y)) => self.k(x + y),
                _ => self.bin(BinOp::Add, a, b),
            }),
        }
    }
    fn neg(&mut self, a: D) -> D {
        let a = a?;
        Some(match self.constant(a) {
            Some(x) => self.k(-x),
            None => self.c.add_expr(Expr::Neg(a)),
        })
    }
    fn sub(&mut self, a: D, b: D) -> D {
        match (a, b) {
            (x, None) => x,
            (None, y) => self.neg(y),
            (Some(a), Some(b)) => Some(match (self.constant(a), self.constant(b)) {
                (Some(x), Some(y)) => self.k(x - y),
                _ => self.bin(BinOp::Sub, a, b),
            }),
        }
    }
    /// `f · d` for a factor `f` of the original expression and a derivative `d`.
    fn mul(&mut self, f: ExprId, d: D) -> D {
        let d = d?;
        Some(match (self.constant(f), self.constant(d)) {
            (Some(x), Some(y)) => self.k(x * y),
            (Some(1.0), _) => d,
            (_, Some(1.0)) => f,
            (Some(0.0), _) | (_, Some(0.0)) => return None,
            _ => self.bin(BinOp::Mul, f, d),
        })
    }
    fn div(&mut self, d: D, by: ExprId) -> D {
        let d = d?;
        Some(match (self.constant(d), self.constant(by)) {
            (Some(x), Some(y)) => self.k(x / y),
            (_, Some(1.0)) => d,
            _ => self.bin(BinOp::Div, d, by),
        })
    }

    fn error(&self, what: &'static str, why: &'static str) -> JacobianError {
        JacobianError {
            var: self.current.0.clone(),
            span: self.current.1,
            what,
            why,
        }
    }

    /// ∂e/∂x_j.
    fn derive(&mut self, e: ExprId, j: usize) -> Result<D, JacobianError> {
        if let Some(d) = self.memo.get(&(e, j)) {
            return Ok(*d);
        }
        let d = self.derive_uncached(e, j)?;
        self.memo.insert((e, j), d);
        Ok(d)
    }

    fn derive_uncached(&mut self, e: ExprId, j: usize) -> Result<D, JacobianError> {
        Ok(match self.c.expr(e).clone() {
            Expr::Const(_) | Expr::Time => None,
            Expr::Randn => return Err(self.error("randn()", "noise is not a function of the state")),
            Expr::Past(..) => {
                return Err(self.error(
                    "a delayed read (past(x, d) or x(t - d))",
                    "the linearisation of a delay equation is not a matrix",
                ))
            }
            Expr::Var(v) => match self.c.var(v).kind {
                VarKind::State => (self.state_index[v.0 as usize] == Some(j)).then(|| self.k(1.0)),
                VarKind::Algebraic => self.algebraic.get(&(v, j)).copied(),
                VarKind::Param | VarKind::Input => None,
            },
            Expr::Neg(a) => {
                let da = self.derive(a, j)?;
                self.neg(da)
            }
            Expr::Binary(op, a, b) => {
                let (da, db) = match op {
                    BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => return Ok(None),
                    _ => (self.derive(a, j)?, self.derive(b, j)?),
                };
                match op {
                    BinOp::Add => self.add(da, db),
                    BinOp::Sub => self.sub(da, db),
                    BinOp::Mul => {
                        let x = self.mul(b, da);
                        let y = self.mul(a, db);
                        self.add(x, y)
                    }
                    BinOp::Div => {
                        // (a/b)' = (a' − (a/b)·b') / b
                        let t = self.mul(e, db);
                        let num = self.sub(da, t);
                        self.div(num, b)
                    }
                    BinOp::Pow => self.derive_pow(e, a, b, da, db),
                    _ => unreachable!("comparisons returned above"),
                }
            }
            Expr::Select(cond, a, b) => {
                let (da, db) = (self.derive(a, j)?, self.derive(b, j)?);
                if da.is_none() && db.is_none() {
                    None
                } else {
                    let da = da.unwrap_or_else(|| self.k(0.0));
                    let db = db.unwrap_or_else(|| self.k(0.0));
                    Some(self.c.add_expr(Expr::Select(cond, da, db)))
                }
            }
            Expr::Call(f, args) => self.derive_call(e, f, &args, j)?,
        })
    }

    fn derive_pow(&mut self, e: ExprId, a: ExprId, b: ExprId, da: D, db: D) -> D {
        // b·a^(b−1)·a' when the exponent is constant (also for a ≤ 0, where the general form
        // would take log a); a^b·(b'·ln a + b·a'/a) otherwise.
        let power_rule = match self.constant(b) {
            Some(2.0) => {
                let two = self.k(2.0);
                let two_a = self.bin(BinOp::Mul, two, a);
                self.mul(two_a, da)
            }
            Some(n) => {
                let m = self.k(n - 1.0);
                let p = self.bin(BinOp::Pow, a, m);
                let nk = self.k(n);
                let f = self.bin(BinOp::Mul, nk, p);
                self.mul(f, da)
            }
            None => {
                let q = self.div(da, a);
                self.mul(b, q)
            }
        };
        if self.constant(b).is_some() {
            return power_rule;
        }
        let ln = self.call(Func::Log, vec![a]);
        let log_term = self.mul(ln, db);
        let sum = self.add(log_term, power_rule);
        self.mul(e, sum)
    }

    fn derive_call(&mut self, e: ExprId, f: Func, args: &[ExprId], j: usize) -> Result<D, JacobianError> {
        let x = args[0];
        if matches!(f, Func::Heaviside | Func::Floor | Func::Ceil | Func::Sign) {
            return Ok(None);
        }
        if matches!(f, Func::Arctan2 | Func::Max | Func::Min) {
            let y = args[1];
            let (dx, dy) = (self.derive(x, j)?, self.derive(y, j)?);
            return Ok(match f {
                // arctan2(x, y) = atan(x/y) (numpy's order: y-coordinate first):
                // (y·x' − x·y') / (x² + y²).
                Func::Arctan2 => {
                    let t1 = self.mul(y, dx);
                    let t2 = self.mul(x, dy);
                    let num = self.sub(t1, t2);
                    let (xx, yy) = (self.bin(BinOp::Mul, x, x), self.bin(BinOp::Mul, y, y));
                    let den = self.bin(BinOp::Add, xx, yy);
                    self.div(num, den)
                }
                _ if dx.is_none() && dy.is_none() => None,
                _ => {
                    let op = if f == Func::Max { BinOp::Ge } else { BinOp::Le };
                    let cond = self.bin(op, x, y);
                    let dx = dx.unwrap_or_else(|| self.k(0.0));
                    let dy = dy.unwrap_or_else(|| self.k(0.0));
                    Some(self.c.add_expr(Expr::Select(cond, dx, dy)))
                }
            });
        }
        let dx = self.derive(x, j)?;
        if dx.is_none() {
            return Ok(None);
        }
        let one = self.k(1.0);
        // The outer derivative f'(x), as an expression of x (and of e = f(x) where shorter).
        let outer = match f {
            Func::Sin => self.call(Func::Cos, vec![x]),
            Func::Cos => {
                let s = self.call(Func::Sin, vec![x]);
                self.c.add_expr(Expr::Neg(s))
            }
            Func::Tan => {
                let e2 = self.bin(BinOp::Mul, e, e);
                self.bin(BinOp::Add, one, e2)
            }
            Func::Sinh => self.call(Func::Cosh, vec![x]),
            Func::Cosh => self.call(Func::Sinh, vec![x]),
            Func::Tanh => {
                let e2 = self.bin(BinOp::Mul, e, e);
                self.bin(BinOp::Sub, one, e2)
            }
            Func::Arcsin | Func::Arccos => {
                let x2 = self.bin(BinOp::Mul, x, x);
                let r = self.bin(BinOp::Sub, one, x2);
                let s = self.call(Func::Sqrt, vec![r]);
                let inv = self.bin(BinOp::Div, one, s);
                if f == Func::Arccos {
                    self.c.add_expr(Expr::Neg(inv))
                } else {
                    inv
                }
            }
            Func::Arctan => {
                let x2 = self.bin(BinOp::Mul, x, x);
                let d = self.bin(BinOp::Add, one, x2);
                self.bin(BinOp::Div, one, d)
            }
            Func::Exp => e,
            Func::Log => self.bin(BinOp::Div, one, x),
            Func::Sqrt => {
                let half = self.k(0.5);
                self.bin(BinOp::Div, half, e)
            }
            Func::Abs => self.call(Func::Sign, vec![x]),
            Func::Sigmoid => {
                let c = self.bin(BinOp::Sub, one, e);
                self.bin(BinOp::Mul, e, c)
            }
            Func::Heaviside | Func::Floor | Func::Ceil | Func::Sign | Func::Arctan2 | Func::Max | Func::Min => {
                unreachable!("handled above")
            }
        };
        Ok(self.mul(outer, dx))
    }
}

/// Derives the Jacobian of a lowered circuit (see the module docs).
pub fn jacobian(circuit: &Circuit) -> Result<Jacobian, JacobianError> {
    // Kept couplings are differentiated term by term, written out.
    let expanded;
    let circuit = if circuit.couplings.is_empty() {
        circuit
    } else {
        expanded = super::passes::expand_couplings(circuit);
        &expanded
    };
    let layout = circuit.layout();
    let states = layout.states.clone();
    let n = states.len();
    let mut state_index = vec![None; circuit.vars.len()];
    for (i, s) in states.iter().enumerate() {
        state_index[s.0 as usize] = Some(i);
    }
    let mut c = circuit.clone();
    let mut new_assigns: Vec<Assign> = Vec::new();
    let mut d = Deriver {
        c: &mut c,
        state_index,
        algebraic: HashMap::new(),
        memo: HashMap::new(),
        current: (String::new(), None),
    };
    let mut define = |d: &mut Deriver<'_>, name: String, rhs: ExprId, node: Option<String>| -> VarId {
        let var = d.c.add_var(Var {
            name,
            kind: VarKind::Algebraic,
            value: 0.0,
            node,
            external_input: None,
            span: None,
        });
        new_assigns.push(Assign { var, rhs, span: None });
        var
    };
    for asg in &circuit.assigns {
        let var = circuit.var(asg.var);
        d.current = (var.name.clone(), asg.span.or(var.span));
        for (j, &s) in states.iter().enumerate() {
            let Some(de) = d.derive(asg.rhs, j)? else {
                continue;
            };
            // A constant partial stays an expression; anything else gets its own variable,
            // so that users of `a` read it instead of re-deriving it.
            let de = if d.constant(de).is_some() {
                de
            } else {
                let name = format!("d({})/d({})", var.name, circuit.var(s).name);
                let id = define(&mut d, name, de, var.node.clone());
                d.c.add_expr(Expr::Var(id))
            };
            d.algebraic.insert((asg.var, j), de);
        }
    }
    let mut entries = Vec::with_capacity(n * n);
    let mut entry_vars = Vec::new();
    for ode in &circuit.odes {
        let var = circuit.var(ode.var);
        d.current = (var.name.clone(), ode.span.or(var.span));
        for (j, &s) in states.iter().enumerate() {
            entries.push(match d.derive(ode.rhs, j)? {
                None => Entry::Zero,
                Some(e) => match d.constant(e) {
                    Some(v) => Entry::Const(v),
                    None => {
                        let name = format!("jacobian[{}][{}]", var.name, circuit.var(s).name);
                        let id = define(&mut d, name, e, var.node.clone());
                        entry_vars.push((entries.len(), id));
                        Entry::Algebraic(u32::MAX)
                    }
                },
            });
        }
    }
    c.assigns.extend(new_assigns);
    let slots = c.layout().slot;
    for (k, id) in entry_vars {
        entries[k] = Entry::Algebraic(slots[id.0 as usize]);
    }
    Ok(Jacobian {
        circuit: c,
        states,
        entries,
    })
}

/// A compiled Jacobian: evaluates the right-hand side and the matrix for a block of lanes.
pub struct JacobianFn {
    kernel: Kernel,
    entries: Vec<Entry>,
    n: usize,
    n_algebraics: usize,
}

impl JacobianFn {
    /// Compiles `jac.circuit` with `opts` (the reference back end needs no compile and is
    /// plenty for one evaluation per point).
    pub fn new(jac: &Jacobian, opts: &KernelOptions) -> Result<JacobianFn, KernelError> {
        let kernel = Kernel::compile(&jac.circuit, opts)?;
        Ok(JacobianFn {
            n_algebraics: kernel.layout().algebraics.len(),
            kernel,
            entries: jac.entries.clone(),
            n: jac.states.len(),
        })
    }

    /// Number of states (the matrix is `n × n`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The layout of the compiled circuit (states, params and inputs as in the circuit the
    /// Jacobian was derived from).
    pub fn layout(&self) -> &crate::model::Layout {
        self.kernel.layout()
    }

    /// Evaluates at time `t` for `lanes` lanes laid out as for a kernel (`y[state][lane]`,
    /// `p[param][lane]`, `u[input][lane]`): the derivatives into `dy` (`[state][lane]`) and
    /// the matrices into `jac` (`[lane][i][j]`, row-major).
    #[allow(clippy::too_many_arguments)]
    pub fn eval(&self, t: f64, lanes: usize, y: &[f64], p: &[f64], u: &[f64], dy: &mut [f64], jac: &mut [f64]) {
        let n = self.n;
        let mut a = vec![0.0; self.n_algebraics * lanes];
        let mut ctx = KernelCtx::default();
        self.kernel.rhs(RhsArgs {
            t,
            lanes,
            y,
            p,
            u,
            dy,
            a: &mut a,
            ctx: &mut ctx,
        });
        for lane in 0..lanes {
            let m = &mut jac[lane * n * n..(lane + 1) * n * n];
            for (out, e) in m.iter_mut().zip(&self.entries) {
                *out = match *e {
                    Entry::Zero => 0.0,
                    Entry::Const(v) => v,
                    Entry::Algebraic(slot) => a[slot as usize * lanes + lane],
                };
            }
        }
    }
}

/// Why [`jacobian_at`] failed.
#[derive(Debug, thiserror::Error)]
pub enum JacobianAtError {
    #[error(transparent)]
    NotDifferentiable(#[from] JacobianError),
    #[error("`{name}` is not a variable of the circuit{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownVariable { name: String, suggestion: Option<String> },
    #[error("`{name}` is an algebraic variable: it is computed from the state; give states, parameters or inputs")]
    NotSettable { name: String },
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    BlockEntry(#[from] super::passes::WriteOutError),
}

/// The Jacobian of `circuit` (as loaded: edges are lowered here) at time `t`, with the
/// variables named in `values` (`node/op/var`, edge parameters `edge:SRC->TGT:IDX/weight`,
/// also of a block's entries) set — states to the point, parameters and inputs to their values — and every other one at
/// its default (states: their initial values). Returns the state names (row and column
/// order) and the row-major matrix. Through the reference back end: one evaluation.
pub fn jacobian_at(
    circuit: &Circuit,
    values: &[(String, f64)],
    t: f64,
) -> Result<(Vec<String>, Vec<f64>), JacobianAtError> {
    // An entry of a `connectivity:` block answers to its edge-list name: the block is
    // written out as those edges first.
    let names: Vec<String> = values.iter().map(|(n, _)| n.clone()).collect();
    let written = super::passes::write_out_named(circuit, &names, &[])?;
    let mut lowered = super::passes::lower_edges(written.as_ref().unwrap_or(circuit));
    for (name, value) in values {
        let Some(id) = lowered.find_var(name) else {
            return Err(JacobianAtError::UnknownVariable {
                name: name.clone(),
                suggestion: crate::sweep::param_map::closest(name, lowered.vars.iter().map(|v| v.name.as_str())),
            });
        };
        // An input fed by edges was lowered to an algebraic; its external signal is the input.
        let id = match (lowered.var(id).kind, lowered.var(id).external_input) {
            (VarKind::Algebraic, Some(ext)) => ext,
            (VarKind::Algebraic, None) => return Err(JacobianAtError::NotSettable { name: name.clone() }),
            _ => id,
        };
        lowered.vars[id.0 as usize].value = *value;
    }
    let jac = jacobian(&lowered)?;
    let f = JacobianFn::new(
        &jac,
        &KernelOptions {
            backend: crate::kernel::Backend::Reference,
            ..KernelOptions::default()
        },
    )?;
    let l = lowered.layout();
    let at = |ids: &[VarId]| ids.iter().map(|&v| lowered.var(v).value).collect::<Vec<f64>>();
    let (y, p, u) = (at(&l.states), at(&l.params), at(&l.inputs));
    let n = y.len();
    let (mut dy, mut m) = (vec![0.0; n], vec![0.0; n * n]);
    f.eval(t, 1, &y, &p, &u, &mut dy, &mut m);
    let names = l.states.iter().map(|&v| lowered.var(v).name.clone()).collect();
    Ok((names, m))
}

/// Eigenvalues `(re, im)` of the row-major `n × n` matrix `m`, by the real Schur form
/// (nalgebra), ordered by decreasing real part (the leading one first), conjugate pairs
/// with the positive imaginary part first. `None` when the iteration does not converge or the
/// matrix is not finite.
pub fn eigenvalues(m: &[f64], n: usize) -> Option<Vec<(f64, f64)>> {
    if n == 0 {
        return Some(Vec::new());
    }
    if m.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mat = nalgebra::DMatrix::from_row_slice(n, n, m);
    let schur = nalgebra::linalg::Schur::try_new(mat, f64::EPSILON, 10_000)?;
    let mut ev: Vec<(f64, f64)> = schur.complex_eigenvalues().iter().map(|z| (z.re, z.im)).collect();
    ev.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
    Some(ev)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernel::Backend;
    use crate::model::test_models::{self, Builder};

    fn reference() -> KernelOptions {
        KernelOptions {
            backend: Backend::Reference,
            ..KernelOptions::default()
        }
    }

    /// Every parameter's and input's value, in layout order.
    fn params_and_inputs(c: &Circuit) -> (Vec<f64>, Vec<f64>) {
        let l = c.layout();
        let values = |vars: &[VarId]| vars.iter().map(|&v| c.var(v).value).collect();
        (values(&l.params), values(&l.inputs))
    }

    /// J at one point, through the reference back end; y in layout order, p all params.
    fn eval_at(c: &Circuit, y: &[f64]) -> Vec<f64> {
        let jac = jacobian(c).unwrap();
        let f = JacobianFn::new(&jac, &reference()).unwrap();
        let (p, u) = params_and_inputs(c);
        let mut dy = vec![0.0; y.len()];
        let mut m = vec![0.0; y.len() * y.len()];
        f.eval(0.3, 1, y, &p, &u, &mut dy, &mut m);
        m
    }

    /// Central differences of the right-hand side (reference kernel), step h·(1 + |y_j|).
    fn finite_differences(c: &Circuit, y: &[f64], h: f64) -> Vec<f64> {
        let k = Kernel::compile(c, &reference()).unwrap();
        let (p, u) = params_and_inputs(c);
        let n = y.len();
        let algebraics = c.layout().algebraics.len();
        let rhs = |y: &[f64]| {
            let mut dy = vec![0.0; n];
            let mut a = vec![0.0; algebraics];
            k.rhs(RhsArgs {
                t: 0.3,
                lanes: 1,
                y,
                p: &p,
                u: &u,
                dy: &mut dy,
                a: &mut a,
                ctx: &mut KernelCtx::default(),
            });
            dy
        };
        let mut m = vec![0.0; n * n];
        for j in 0..n {
            let step = h * (1.0 + y[j].abs());
            let (mut yp, mut ym) = (y.to_vec(), y.to_vec());
            yp[j] += step;
            ym[j] -= step;
            let (fp, fm) = (rhs(&yp), rhs(&ym));
            for i in 0..n {
                m[i * n + j] = (fp[i] - fm[i]) / (2.0 * step);
            }
        }
        m
    }

    /// Stuart–Landau normal form in real coordinates:
    /// x' = μx − ωz − x(x² + z²), z' = ωx + μz − z(x² + z²).
    pub(crate) fn stuart_landau(mu: f64, omega: f64) -> Circuit {
        let mut b = Builder::new("sl");
        let x = b.var("p/sl/x", VarKind::State, 0.5);
        let z = b.var("p/sl/z", VarKind::State, 0.0);
        let m = b.var("p/sl/mu", VarKind::Param, mu);
        let w = b.var("p/sl/omega", VarKind::Param, omega);
        let r2 = b.var("p/sl/r2", VarKind::Algebraic, 0.0);
        let (xe, ze) = (b.v(x), b.v(z));
        let xx = b.mul(xe, xe);
        let zz = b.mul(ze, ze);
        let s = b.add(xx, zz);
        b.assign(r2, s);
        for (own, other, sign) in [(x, z, -1.0), (z, x, 1.0)] {
            let (me, we, oe, ow, r) = (b.v(m), b.v(w), b.v(own), b.v(other), b.v(r2));
            let lin = b.mul(me, oe);
            let sg = b.k(sign);
            let rot0 = b.mul(we, ow);
            let rot = b.mul(sg, rot0);
            let cube = b.mul(oe, r);
            let s1 = b.add(lin, rot);
            let rhs = b.sub(s1, cube);
            b.ode(own, rhs);
        }
        b.c.node_operators = vec![("p".into(), vec!["sl".into()])];
        b.c
    }

    #[test]
    fn stuart_landau_jacobian_is_analytic() {
        // J = [[μ − 3x² − z², −ω − 2xz], [ω − 2xz, μ − x² − 3z²]]; products of a few terms,
        // so agreement to rounding (1e-14 absolute on entries of order 1).
        let (mu, omega) = (0.3, 2.0);
        let c = stuart_landau(mu, omega);
        for (x, z) in [(0.0, 0.0), (0.5, -0.7), (1.3, 0.2)] {
            let m = eval_at(&c, &[x, z]);
            let want = [
                mu - 3.0 * x * x - z * z,
                -omega - 2.0 * x * z,
                omega - 2.0 * x * z,
                mu - x * x - 3.0 * z * z,
            ];
            for (g, w) in m.iter().zip(want) {
                assert!((g - w).abs() < 1e-14, "{m:?} vs {want:?}");
            }
        }
        // At the origin the eigenvalues are μ ± iω.
        let ev = eigenvalues(&eval_at(&c, &[0.0, 0.0]), 2).unwrap();
        assert!(
            (ev[0].0 - mu).abs() < 1e-14 && (ev[0].1 - omega).abs() < 1e-14,
            "{ev:?}"
        );
        assert!(
            (ev[1].0 - mu).abs() < 1e-14 && (ev[1].1 + omega).abs() < 1e-14,
            "{ev:?}"
        );
    }

    #[test]
    fn montbrio_jacobian_is_analytic() {
        // τ r' = Δ/(πτ) + 2rv, τ v' = v² + η + Jτr − (πτr)²:
        // J = [[2v, 2r], [J − 2π²τ r, 2v]] / τ (τ = 1 here; the derivation also goes through
        // the divisions by τ). Rounding only: 1e-12 on entries up to ~30.
        let (c, _) = test_models::mpr_single();
        for (r, v) in [(0.08, -1.9), (1.03, -0.15), (0.5, 0.5)] {
            let m = eval_at(&c, &[r, v]);
            let pi2 = std::f64::consts::PI.powi(2);
            let want = [2.0 * v, 2.0 * r, 15.0 - 2.0 * pi2 * r, 2.0 * v];
            for (g, w) in m.iter().zip(want) {
                assert!((g - w).abs() < 1e-12, "{m:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn reference_circuit_jacobian_matches_finite_differences() {
        // Two populations coupled through algebraic `r_in`s (the chain rule through
        // assignments). Central differences with h = 1e-6 have truncation error
        // O(h²·f''') ≈ 1e-11 and rounding ≈ 1e-16/h ≈ 1e-10 on entries of order 10: 1e-7.
        let (c, _) = test_models::reference_circuit();
        let y = [0.3, -1.2, 0.7, 0.4];
        let m = eval_at(&c, &y);
        let fd = finite_differences(&c, &y, 1e-6);
        for (g, w) in m.iter().zip(&fd) {
            assert!((g - w).abs() < 1e-7 * (1.0 + w.abs()), "{m:?} vs {fd:?}");
        }
        // The coupling through r_in is there: ∂v_PC'/∂r_IIN = τ·w(IIN→PC) = −10.
        assert!((m[4 + 2] + 10.0).abs() < 1e-12, "{m:?}"); // row 1 (v_PC), column 2 (r_IIN)
    }

    #[test]
    fn every_function_matches_finite_differences() {
        // x' = f(x, z) for each smooth built-in (and pow with a state exponent), z' = z·x:
        // the derivation rule of each function against central differences (tolerance as
        // above, entries of order 1–10).
        let funcs = [
            Func::Sin,
            Func::Cos,
            Func::Tan,
            Func::Sinh,
            Func::Cosh,
            Func::Tanh,
            Func::Arcsin,
            Func::Arccos,
            Func::Arctan,
            Func::Exp,
            Func::Log,
            Func::Sqrt,
            Func::Abs,
            Func::Sigmoid,
            Func::Arctan2,
            Func::Max,
            Func::Min,
        ];
        for f in funcs {
            let mut b = Builder::new("f");
            let x = b.var("n/o/x", VarKind::State, 0.0);
            let z = b.var("n/o/z", VarKind::State, 0.0);
            let (xe, ze) = (b.v(x), b.v(z));
            let prod = b.mul(xe, ze);
            let args = if f.arity() == 2 { vec![prod, ze] } else { vec![prod] };
            let call = b.call(f, args);
            let (xe2, ze2) = (b.v(x), b.v(z));
            let pw = b.bin(BinOp::Pow, xe2, ze2);
            let rhs = b.add(call, pw);
            b.ode(x, rhs);
            let (xe3, ze3) = (b.v(x), b.v(z));
            let zx = b.mul(ze3, xe3);
            b.ode(z, zx);
            let y = [0.6, 0.45];
            let m = eval_at(&b.c, &y);
            let fd = finite_differences(&b.c, &y, 1e-6);
            for (g, w) in m.iter().zip(&fd) {
                assert!((g - w).abs() < 1e-7 * (1.0 + w.abs()), "{f:?}: {m:?} vs {fd:?}");
            }
        }
    }

    #[test]
    fn jit_compiled_jacobian_equals_reference() {
        // The Jacobian circuit compiles like any right-hand side; the JIT agrees with the
        // tree-walking evaluator to the back ends' shared 1e-12 relative, over 3 lanes.
        let (c, _) = test_models::reference_circuit();
        let jac = jacobian(&c).unwrap();
        let l = c.layout();
        let lanes = 3;
        let p: Vec<f64> = l.params.iter().flat_map(|&v| [c.var(v).value; 3]).collect();
        let u: Vec<f64> = l.inputs.iter().flat_map(|&v| [c.var(v).value; 3]).collect();
        let y: Vec<f64> = (0..4 * lanes).map(|k| 0.1 + 0.37 * k as f64).collect();
        let mut out = Vec::new();
        for backend in [Backend::Reference, Backend::Jit] {
            let f = JacobianFn::new(
                &jac,
                &KernelOptions {
                    backend,
                    ..KernelOptions::default()
                },
            )
            .unwrap();
            let (mut dy, mut m) = (vec![0.0; 4 * lanes], vec![0.0; 16 * lanes]);
            f.eval(0.0, lanes, &y, &p, &u, &mut dy, &mut m);
            out.push(m);
        }
        for (r, j) in out[0].iter().zip(&out[1]) {
            assert!((r - j).abs() <= 1e-12 * (1.0 + r.abs()), "{r} vs {j}");
        }
    }

    #[test]
    fn delayed_read_is_a_positioned_error() {
        let mut b = Builder::new("d");
        let x = b.var("n/o/x", VarKind::State, 0.0);
        let d = b.k(1.0);
        b.delayed_decay(x, d);
        let span = Span::new(crate::syntax::FileId(0), 4, 9);
        b.c.odes[0].span = Some(span);
        let e = jacobian(&b.c).unwrap_err();
        assert_eq!((e.var.as_str(), e.span), ("n/o/x", Some(span)));
        assert!(e.to_string().contains("delayed read"), "{e}");
        assert_eq!(e.diagnostic().span, Some(span));
    }

    #[test]
    fn eigenvalues_of_a_known_matrix() {
        // Block diagonal: [[1, 2], [−2, 1]] (1 ± 2i) and [[−3]]: exact to rounding.
        let m = [1.0, 2.0, 0.0, -2.0, 1.0, 0.0, 0.0, 0.0, -3.0];
        let ev = eigenvalues(&m, 3).unwrap();
        let want = [(1.0, 2.0), (1.0, -2.0), (-3.0, 0.0)];
        for (g, w) in ev.iter().zip(want) {
            assert!((g.0 - w.0).abs() < 1e-12 && (g.1 - w.1).abs() < 1e-12, "{ev:?}");
        }
        assert!(eigenvalues(&[f64::NAN], 1).is_none());
    }
}
