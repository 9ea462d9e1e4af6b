//! Compile-time evaluation of constant subexpressions.
//!
//! A node whose operands are all constants is computed here, in the precision of the
//! compiled function and with exactly the operations the generated code would execute
//! (IEEE `+ - * /`, the same `pow` expansion, the shared `mathfns` definitions), so folding
//! never changes a result bit. Typical win: `Delta / (PI * tau)` with constant `Delta`, `tau`.

use std::collections::HashSet;

use crate::kernel::mathfns::{self, PowPlan};
use crate::model::{BinOp, Circuit, Expr, ExprId};

/// Scalar arithmetic in the compiled function's precision; values are carried as `f64`
/// (an `f32` value converts exactly).
#[derive(Clone, Copy)]
pub(super) struct Arith {
    pub(super) single: bool,
}

impl Arith {
    fn round(self, x: f64) -> f64 {
        if self.single {
            f64::from(x as f32)
        } else {
            x
        }
    }
    fn op(self, a: f64, b: f64, f64op: fn(f64, f64) -> f64, f32op: fn(f32, f32) -> f32) -> f64 {
        if self.single {
            f64::from(f32op(a as f32, b as f32))
        } else {
            f64op(a, b)
        }
    }
    fn mul(self, a: f64, b: f64) -> f64 {
        self.op(a, b, |a, b| a * b, |a, b| a * b)
    }
    fn div(self, a: f64, b: f64) -> f64 {
        self.op(a, b, |a, b| a / b, |a, b| a / b)
    }
    fn pow(self, x: f64, y: f64) -> f64 {
        match mathfns::pow_plan(y) {
            PowPlan::Integer(0) => 1.0,
            PowPlan::Integer(n) => {
                let v = mathfns::pow_by_squaring(x, n.unsigned_abs(), |a, b| self.mul(*a, *b));
                if n < 0 {
                    self.div(1.0, v)
                } else {
                    v
                }
            }
            // sqrt is correctly rounded in both precisions, so sqrt in f64 then rounding to
            // f32 equals sqrtf (the f64 significand has more than 2·24 + 2 bits).
            PowPlan::Sqrt => self.round(x.sqrt()),
            PowPlan::Call => self.op(x, y, mathfns::pow_f64, mathfns::pow_f32),
        }
    }
    fn call(self, f: crate::model::Func, x: f64, y: f64) -> f64 {
        if self.single {
            f64::from(mathfns::func_f32(f, x as f32, y as f32))
        } else {
            mathfns::func_f64(f, x, y)
        }
    }
}

/// The constant value of every expression that has one (in the function's precision).
/// Assumes a validated circuit (ids in range, no cycles).
pub(super) fn constants(circuit: &Circuit, single: bool) -> Vec<Option<f64>> {
    constants_except(circuit, single, &HashSet::new())
}

/// [`constants`], with the constants in `varying` (a population loop's per-node constants)
/// and everything computed from them left to run time.
pub(super) fn constants_except(circuit: &Circuit, single: bool, varying: &HashSet<ExprId>) -> Vec<Option<f64>> {
    let ar = Arith { single };
    let n = circuit.exprs.len();
    let mut val: Vec<Option<f64>> = vec![None; n];
    for id in super::codegen::children_first(circuit) {
        let e = circuit.expr(id);
        let k = |c: &ExprId| val[c.0 as usize];
        val[id.0 as usize] = match e {
            Expr::Const(_) if varying.contains(&id) => None,
            Expr::Const(c) => Some(ar.round(*c)),
            Expr::Var(_) | Expr::Time | Expr::Past(..) | Expr::Randn => None,
            Expr::Neg(x) => k(x).map(|x| -x),
            Expr::Binary(op, x, y) => match (k(x), k(y)) {
                (Some(a), Some(b)) => Some(match op {
                    BinOp::Add => ar.op(a, b, |a, b| a + b, |a, b| a + b),
                    BinOp::Sub => ar.op(a, b, |a, b| a - b, |a, b| a - b),
                    BinOp::Mul => ar.mul(a, b),
                    BinOp::Div => ar.div(a, b),
                    BinOp::Pow => ar.pow(a, b),
                    // Exact in either precision: the operands are already rounded to it.
                    BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => op.apply(a, b),
                }),
                _ => None,
            },
            Expr::Call(f, args) => {
                let xs: Option<Vec<f64>> = args.iter().map(k).collect();
                xs.map(|xs| ar.call(*f, xs[0], xs.get(1).copied().unwrap_or(0.0)))
            }
            // A constant condition picks its branch even when the other one varies.
            Expr::Select(c, x, y) => k(c).and_then(|c| if c != 0.0 { k(x) } else { k(y) }),
        };
    }
    val
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Func;

    fn circuit(exprs: Vec<Expr>) -> Circuit {
        Circuit {
            exprs,
            ..Circuit::default()
        }
    }

    #[test]
    fn constants_fold_in_function_precision() {
        // 0.1 + 0.2 is 0.30000000000000004 in f64 and 0.3 (as f32: 0.300000011920929) in f32.
        let c = circuit(vec![
            Expr::Const(0.1),
            Expr::Const(0.2),
            Expr::Binary(BinOp::Add, ExprId(0), ExprId(1)),
        ]);
        assert_eq!(constants(&c, false)[2], Some(0.1 + 0.2));
        assert_eq!(constants(&c, true)[2], Some(f64::from(0.1f32 + 0.2f32)));
        assert_ne!(0.1 + 0.2, f64::from(0.1f32 + 0.2f32));
    }

    #[test]
    fn constants_stop_at_variables_and_fold_calls_and_selects() {
        let c = circuit(vec![
            Expr::Const(2.0),                               // 0
            Expr::Time,                                     // 1
            Expr::Binary(BinOp::Mul, ExprId(0), ExprId(1)), // 2: not constant
            Expr::Call(Func::Exp, vec![ExprId(0)]),         // 3: e^2
            Expr::Binary(BinOp::Gt, ExprId(3), ExprId(0)),  // 4: e^2 > 2 → 1
            Expr::Select(ExprId(4), ExprId(0), ExprId(2)),  // 5: 2
            Expr::Binary(BinOp::Pow, ExprId(3), ExprId(0)), // 6: (e^2)^2 = e^2·e^2
            Expr::Neg(ExprId(2)),                           // 7: not constant
        ]);
        let k = constants(&c, false);
        let e2 = 2f64.exp();
        assert_eq!(k[1], None);
        assert_eq!(k[2], None);
        assert_eq!(k[3], Some(e2));
        assert_eq!(k[4], Some(1.0));
        assert_eq!(k[5], Some(2.0));
        assert_eq!(k[6], Some(e2 * e2));
        assert_eq!(k[7], None);
    }

    #[test]
    fn pow_plan_multiplies_out_integers_up_to_64_only() {
        use crate::kernel::mathfns::pow_plan;
        assert_eq!(pow_plan(2.0), PowPlan::Integer(2));
        assert_eq!(pow_plan(-0.0), PowPlan::Integer(0));
        assert_eq!(pow_plan(-64.0), PowPlan::Integer(-64));
        assert_eq!(pow_plan(65.0), PowPlan::Call);
        assert_eq!(pow_plan(0.5), PowPlan::Sqrt);
        assert_eq!(pow_plan(2.5), PowPlan::Call);
        assert_eq!(Arith { single: false }.pow(3.0, 3.0), 27.0);
        assert_eq!(Arith { single: false }.pow(2.0, -2.0), 0.25);
        assert_eq!(Arith { single: false }.pow(1.5, 5.0), 7.59375);
    }
}
