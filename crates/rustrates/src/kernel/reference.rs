//! Tree-walking evaluator, one lane at a time: the test oracle for the compiled back ends.
//!
//! Semantics every back end shares: `heaviside(0) = 0.5`, `sigmoid(x) = 1/(1+exp(−x))`,
//! comparisons give 1 or 0, `max`/`min`/`sign`/`heaviside` propagate NaN as numpy does (so a
//! diverging lane stays visibly non-finite), `Past` with a delay ≤ 0 is the current value,
//! `Past` and `Randn` otherwise ask the solver through the hooks of [`KernelCtx`].

use super::ffi::Rows;
use super::precision::Real;
use super::{KernelCtx, RhsArgs, RhsArgsF32};
use crate::model::{Circuit, Expr, ExprId, Layout, VarId, VarKind};

pub struct ReferenceKernel {
    circuit: Box<Circuit>,
    layout: Box<Layout>,
}

/// One lane's view of the block buffers.
struct Lane<'a, T> {
    t: T,
    t64: f64,
    lane: usize,
    lanes: usize,
    y: &'a [T],
    p: &'a [T],
    u: &'a [T],
}

impl ReferenceKernel {
    pub fn new(circuit: &Circuit) -> Self {
        Self {
            circuit: Box::new(circuit.clone()),
            layout: Box::new(circuit.layout()),
        }
    }

    pub fn rhs(&self, args: RhsArgs<'_>) {
        self.rhs_generic(args);
    }

    pub fn rhs_f32(&self, args: RhsArgsF32<'_>) {
        self.rhs_generic(args);
    }

    fn rhs_generic<T: Real>(&self, args: RhsArgs<'_, T>) {
        let RhsArgs {
            t,
            lanes,
            y,
            p,
            u,
            dy,
            a,
            ctx,
        } = args;
        Rows::of(&self.layout).check("reference", lanes, [y.len(), p.len(), u.len(), dy.len(), a.len()]);
        for lane in 0..lanes {
            let view = Lane {
                t: T::of(t),
                t64: t,
                lane,
                lanes,
                y,
                p,
                u,
            };
            for (slot, asg) in self.circuit.assigns.iter().enumerate() {
                let v = self.eval(asg.rhs, &view, a, ctx);
                a[slot * lanes + lane] = v;
            }
            for (slot, ode) in self.circuit.odes.iter().enumerate() {
                dy[slot * lanes + lane] = self.eval(ode.rhs, &view, a, ctx);
            }
        }
    }

    fn current<T: Real>(&self, var: VarId, l: &Lane<'_, T>, a: &[T]) -> T {
        let slot = self.layout.slot[var.0 as usize] as usize * l.lanes + l.lane;
        match self.circuit.var(var).kind {
            VarKind::State => l.y[slot],
            VarKind::Param => l.p[slot],
            VarKind::Input => l.u[slot],
            VarKind::Algebraic => a[slot],
        }
    }

    fn eval<T: Real>(&self, id: ExprId, l: &Lane<'_, T>, a: &[T], ctx: &mut KernelCtx) -> T {
        match self.circuit.expr(id) {
            Expr::Const(c) => T::of(*c),
            Expr::Var(v) => self.current(*v, l, a),
            Expr::Time => l.t,
            Expr::Neg(e) => -self.eval(*e, l, a, ctx),
            Expr::Binary(op, x, y) => {
                let x = self.eval(*x, l, a, ctx);
                let y = self.eval(*y, l, a, ctx);
                op.apply(x, y)
            }
            Expr::Call(f, args) => {
                let x = args.first().map_or(T::NAN, |e| self.eval(*e, l, a, ctx));
                let y = args.get(1).map_or(T::NAN, |e| self.eval(*e, l, a, ctx));
                T::func(*f, x, y)
            }
            Expr::Select(c, x, y) => {
                // Only the chosen branch is evaluated, as generated code may short-circuit too;
                // NaN as a condition counts as true (it is != 0).
                if self.eval(*c, l, a, ctx) == T::ZERO {
                    self.eval(*y, l, a, ctx)
                } else {
                    self.eval(*x, l, a, ctx)
                }
            }
            Expr::Past(v, d) => {
                let d = self.eval(*d, l, a, ctx);
                if d > T::ZERO {
                    match ctx.past {
                        Some(hook) => T::of(hook(ctx, v.0, l.lane, l.t64, d.wide())),
                        None => T::NAN,
                    }
                } else {
                    // NaN delays land here too and give the current value: a NaN delay only
                    // arises from a NaN parameter, which already poisons the lane elsewhere.
                    self.current(*v, l, a)
                }
            }
            Expr::Randn => match ctx.randn {
                Some(hook) => T::of(hook(ctx, id.0, l.lane)),
                None => T::NAN,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::test_kit::add_var as var;
    use crate::kernel::KernelCtx;
    use crate::model::{Assign, BinOp, Func, Ode};

    /// One algebraic `out = expr(x)` of a param `x`, evaluated for each of `xs` (one per lane).
    fn eval_alg(build: impl Fn(&mut Circuit, ExprId) -> ExprId, xs: &[f64]) -> Vec<f64> {
        let mut c = Circuit::default();
        let x = var(&mut c, "x", VarKind::Param, 0.0);
        let out = var(&mut c, "out", VarKind::Algebraic, 0.0);
        let xe = c.add_expr(Expr::Var(x));
        let rhs = build(&mut c, xe);
        c.assigns.push(Assign {
            var: out,
            rhs,
            span: None,
        });
        let k = ReferenceKernel::new(&c);
        let lanes = xs.len();
        let mut a = vec![0.0; lanes];
        let mut ctx = KernelCtx::default();
        k.rhs(RhsArgs {
            t: 0.0,
            lanes,
            y: &[],
            p: xs,
            u: &[],
            dy: &mut [],
            a: &mut a,
            ctx: &mut ctx,
        });
        a
    }

    #[test]
    fn reference_heaviside_and_sign_match_numpy() {
        let h = eval_alg(
            |c, x| c.add_expr(Expr::Call(Func::Heaviside, vec![x])),
            &[-2.0, 0.0, 3.0],
        );
        assert_eq!(h, vec![0.0, 0.5, 1.0]);
        let s = eval_alg(|c, x| c.add_expr(Expr::Call(Func::Sign, vec![x])), &[-2.0, 0.0, 3.0]);
        assert_eq!(s, vec![-1.0, 0.0, 1.0]);
        let m = eval_alg(
            |c, x| {
                let one = c.add_expr(Expr::Const(1.0));
                c.add_expr(Expr::Call(Func::Max, vec![x, one]))
            },
            &[f64::NAN, 0.5, 2.0],
        );
        assert!(m[0].is_nan());
        assert_eq!(&m[1..], &[1.0, 2.0]);
    }

    #[test]
    fn reference_sigmoid_and_comparisons_match_definitions() {
        let s = eval_alg(|c, x| c.add_expr(Expr::Call(Func::Sigmoid, vec![x])), &[0.0, 2.0]);
        assert_eq!(s[0], 0.5);
        assert!((s[1] - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-16);
        let sel = eval_alg(
            |c, x| {
                let zero = c.add_expr(Expr::Const(0.0));
                let gt = c.add_expr(Expr::Binary(BinOp::Gt, x, zero));
                let ten = c.add_expr(Expr::Const(10.0));
                let neg = c.add_expr(Expr::Neg(x));
                c.add_expr(Expr::Select(gt, ten, neg))
            },
            &[-3.0, 4.0],
        );
        assert_eq!(sel, vec![3.0, 10.0]);
    }

    #[test]
    fn reference_f32_path_computes_in_single_precision() {
        // x' = x / 3 at x = 1: the f32 result must be the f32 quotient, not a rounded f64 one
        // (they agree here, so check against 1f32 / 3f32 exactly and against f64 within f32 eps).
        let mut c = Circuit::default();
        let x = var(&mut c, "x", VarKind::State, 1.0);
        let xe = c.add_expr(Expr::Var(x));
        let three = c.add_expr(Expr::Const(3.0));
        let rhs = c.add_expr(Expr::Binary(BinOp::Div, xe, three));
        c.odes.push(Ode {
            var: x,
            rhs,
            span: None,
        });
        let k = ReferenceKernel::new(&c);
        let mut dy = [0f32; 1];
        let mut ctx = KernelCtx::default();
        k.rhs_f32(RhsArgsF32 {
            t: 0.0,
            lanes: 1,
            y: &[1.0],
            p: &[],
            u: &[],
            dy: &mut dy,
            a: &mut [],
            ctx: &mut ctx,
        });
        assert_eq!(dy[0], 1.0f32 / 3.0f32);
        assert!((f64::from(dy[0]) - 1.0 / 3.0).abs() < 1e-7);
    }
}
