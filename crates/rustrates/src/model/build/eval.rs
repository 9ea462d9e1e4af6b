//! A direct evaluator of IR expressions for tests.

use super::*;

/// Evaluate an expression for tests: `val` gives variable values, `t` the time; `Past` reads
/// the current value (tests check the structure of delays separately).
pub(crate) fn eval(c: &Circuit, e: ExprId, val: &dyn Fn(VarId) -> f64, t: f64) -> f64 {
    let r = |x: ExprId| eval(c, x, val, t);
    match c.expr(e) {
        Expr::Const(x) => *x,
        Expr::Var(v) => val(*v),
        Expr::Time => t,
        Expr::Randn => 0.0,
        Expr::Neg(a) => -r(*a),
        Expr::Binary(op, a, b) => op.apply(r(*a), r(*b)),
        Expr::Call(f, args) => {
            let a: Vec<f64> = args.iter().map(|x| r(*x)).collect();
            match f {
                Func::Sin => a[0].sin(),
                Func::Cos => a[0].cos(),
                Func::Tan => a[0].tan(),
                Func::Sinh => a[0].sinh(),
                Func::Cosh => a[0].cosh(),
                Func::Tanh => a[0].tanh(),
                Func::Arcsin => a[0].asin(),
                Func::Arccos => a[0].acos(),
                Func::Arctan => a[0].atan(),
                Func::Arctan2 => a[0].atan2(a[1]),
                Func::Exp => a[0].exp(),
                Func::Log => a[0].ln(),
                Func::Sqrt => a[0].sqrt(),
                Func::Abs => a[0].abs(),
                Func::Sigmoid => 1.0 / (1.0 + (-a[0]).exp()),
                Func::Max => a[0].max(a[1]),
                Func::Min => a[0].min(a[1]),
                Func::Heaviside => {
                    if a[0] > 0.0 {
                        1.0
                    } else if a[0] == 0.0 {
                        0.5
                    } else {
                        0.0
                    }
                }
                Func::Floor => a[0].floor(),
                Func::Ceil => a[0].ceil(),
                Func::Sign => a[0].signum(),
            }
        }
        Expr::Select(a, b, d) => {
            if r(*a) != 0.0 {
                r(*b)
            } else {
                r(*d)
            }
        }
        Expr::Past(v, _) => val(*v),
    }
}

/// Values of every variable: states/params/inputs from `value`, algebraics computed in order.
pub(crate) fn eval_all(c: &Circuit) -> Vec<f64> {
    let mut vals: Vec<f64> = c.vars.iter().map(|v| v.value).collect();
    for a in &c.assigns {
        let x = {
            let snapshot = vals.clone();
            eval(c, a.rhs, &|v: VarId| snapshot[v.0 as usize], 0.0)
        };
        vals[a.var.0 as usize] = x;
    }
    vals
}
