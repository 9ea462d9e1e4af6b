//! Fold parameters that are the same in every lane into constants.

use crate::model::{Circuit, Expr, Scale, VarId, VarKind};

/// A copy of `circuit` in which every parameter not listed in `per_lane` reads as its
/// default value. Variables, layout and buffers are unchanged, so callers still pass every
/// parameter slot; only the listed ones are read per lane.
pub fn specialize_params(circuit: &Circuit, per_lane: &[VarId]) -> Circuit {
    let mut c = circuit.clone();
    // A lookup table, not `per_lane.contains`: a network sweep lists a parameter of every node
    // and its circuit has an expression per edge (2,000 × 3 million comparisons at N = 1000).
    let mut swept = vec![false; circuit.vars.len()];
    for v in per_lane {
        if let Some(s) = swept.get_mut(v.0 as usize) {
            *s = true;
        }
    }
    for e in &mut c.exprs {
        if let Expr::Var(v) = *e {
            if let Some(var) = circuit.vars.get(v.0 as usize) {
                if var.kind == VarKind::Param && !swept[v.0 as usize] {
                    *e = Expr::Const(var.value);
                }
            }
        }
    }
    // A coupling's scale is read from the parameter array only while a lane sets it; so is
    // its velocity: otherwise the lengths become the delays they stand for, and every later
    // stage sees a block with constant delays.
    for cp in &mut c.couplings {
        if let (Some(Scale::Param(v)), Some(lengths)) = (cp.velocity, &cp.delays) {
            if !swept[v.0 as usize] {
                let velocity = circuit.var(v).value;
                // New data: the lengths are shared with the circuit this copy came from.
                let delays = lengths.iter().map(|&d| crate::model::conduction_delay(d, velocity));
                cp.delays = Some(delays.collect());
                cp.velocity = None;
            }
        }
        if let Some(Scale::Param(v)) = cp.scale {
            if !swept[v.0 as usize] {
                cp.scale = Some(Scale::Const(circuit.var(v).value));
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::test_kit::add_var;
    use crate::model::Ode;

    #[test]
    fn specialize_params_folds_only_unlisted_params() {
        let mut c = Circuit::default();
        let x = add_var(&mut c, "n/op/x", VarKind::State, 1.0);
        let a = add_var(&mut c, "n/op/a", VarKind::Param, 2.0);
        let b = add_var(&mut c, "n/op/b", VarKind::Param, 3.0);
        let (ea, eb, ex) = (
            c.add_expr(Expr::Var(a)),
            c.add_expr(Expr::Var(b)),
            c.add_expr(Expr::Var(x)),
        );
        let sum = c.add_expr(Expr::Binary(crate::model::BinOp::Add, ea, eb));
        let rhs = c.add_expr(Expr::Binary(crate::model::BinOp::Mul, sum, ex));
        c.odes.push(Ode {
            var: x,
            rhs,
            span: None,
        });
        let s = specialize_params(&c, &[b]);
        assert_eq!(s.exprs[ea.0 as usize], Expr::Const(2.0));
        assert_eq!(s.exprs[eb.0 as usize], Expr::Var(b));
        assert_eq!(s.exprs[ex.0 as usize], Expr::Var(x), "states are never folded");
        assert_eq!(s.layout(), c.layout(), "buffers keep their shape");
    }
}
