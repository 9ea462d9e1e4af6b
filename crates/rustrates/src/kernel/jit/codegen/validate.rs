//! The circuit invariants emission relies on, checked before any code is emitted.

use super::{children, codegen_err};
use crate::kernel::KernelError;
use crate::model::{Circuit, Expr, ExprId, Layout, VarId, VarKind};

/// Checks the invariants codegen relies on, so that emission itself cannot fail half way:
/// ids in range, arities, no expression cycles, algebraics read only after assignment.
pub(in crate::kernel::jit) fn validate(circuit: &Circuit, layout: &Layout) -> Result<(), KernelError> {
    let in_range = |id: u32, len: usize, what: &str| {
        if (id as usize) < len {
            Ok(())
        } else {
            Err(codegen_err(format_args!("{what} id {id} out of range ({len} {what}s)")))
        }
    };
    let expr_ok = |e: ExprId| in_range(e.0, circuit.exprs.len(), "expression");
    let var_ok = |v: VarId| in_range(v.0, circuit.vars.len(), "variable");
    let odes = circuit
        .odes
        .iter()
        .map(|o| (o.var, o.rhs, VarKind::State, "has an ODE but is not a state"));
    let assigns = circuit
        .assigns
        .iter()
        .map(|a| (a.var, a.rhs, VarKind::Algebraic, "is assigned but is not algebraic"));
    for (var, rhs, kind, problem) in odes.chain(assigns) {
        var_ok(var)?;
        expr_ok(rhs)?;
        if circuit.var(var).kind != kind {
            return Err(codegen_err(format_args!("'{}' {problem}", circuit.var(var).name)));
        }
    }
    for e in &circuit.exprs {
        match e {
            Expr::Var(v) | Expr::Past(v, _) => var_ok(*v)?,
            Expr::Call(f, args) if args.len() != f.arity() => {
                return Err(codegen_err(format_args!(
                    "{f:?} takes {} argument(s), the IR gives {}",
                    f.arity(),
                    args.len()
                )))
            }
            _ => {}
        }
        for c in children(e) {
            expr_ok(c)?;
        }
    }
    // Cycle check and algebraic ordering, by walking from each root in evaluation order.
    let mut state = vec![0u8; circuit.exprs.len()]; // 0 unseen, 1 on the stack, 2 done
    let mut assigned = vec![false; circuit.vars.len()];
    let roots = circuit
        .assigns
        .iter()
        .map(|a| (a.rhs, Some(a.var)))
        .chain(circuit.odes.iter().map(|o| (o.rhs, None)));
    for (root, target) in roots {
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            let ix = id.0 as usize;
            if expanded {
                state[ix] = 2;
                continue;
            }
            match state[ix] {
                2 => continue,
                1 => return Err(codegen_err(format_args!("expression {} depends on itself", id.0))),
                _ => {}
            }
            let e = circuit.expr(id);
            if let Expr::Var(v) | Expr::Past(v, _) = e {
                let var = circuit.var(*v);
                // A delayed read may name an algebraic assigned later (its current value is
                // then the one stored in `a`, as the reference evaluator reads it).
                if matches!(e, Expr::Var(_)) && var.kind == VarKind::Algebraic && !assigned[v.0 as usize] {
                    return Err(codegen_err(format_args!(
                        "'{}' is read before it is assigned",
                        var.name
                    )));
                }
                if layout.slot[v.0 as usize] == u32::MAX {
                    return Err(codegen_err(format_args!(
                        "'{}' has no slot (a state without an ODE?)",
                        var.name
                    )));
                }
            }
            state[ix] = 1;
            stack.push((id, true));
            for c in children(e) {
                match state[c.0 as usize] {
                    2 => {}
                    1 => return Err(codegen_err(format_args!("expression {} depends on itself", c.0))),
                    _ => stack.push((c, false)),
                }
            }
        }
        // Post-order with a shared `state`: a node that finished under an earlier root is
        // done; nodes of this root are all done now.
        if let Some(v) = target {
            assigned[v.0 as usize] = true;
        }
    }
    Ok(())
}
