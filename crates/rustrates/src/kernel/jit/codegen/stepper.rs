//! The fused fixed-step integrator: hoisting of loop-invariant expressions, the step loop
//! around the lane loops, and the solver's stage arithmetic on Cranelift values.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::F64;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Module};

use super::body::Body;
use super::{
    children, children_first, counted_loop, define_function, lane_loops, Arrays, Env, Program, Vals, F64_FLAVOR,
    MAX_COPIES,
};
use crate::kernel::jit::fold;
use crate::kernel::{KernelError, Tableau};
use crate::model::{BinOp, Circuit, Expr, ExprId, Layout, VarKind};

/// Which expressions stay the same over a fused run: built from constants, parameters and
/// inputs only (inputs are held constant over a `steps` call).
fn invariants(circuit: &Circuit) -> Vec<bool> {
    let mut inv = vec![false; circuit.exprs.len()];
    for id in children_first(circuit) {
        let e = circuit.expr(id);
        inv[id.0 as usize] = match e {
            Expr::Const(_) => true,
            Expr::Var(v) => matches!(circuit.var(*v).kind, VarKind::Param | VarKind::Input),
            Expr::Time | Expr::Past(..) | Expr::Randn => false,
            _ => children(e).iter().all(|c| inv[c.0 as usize]),
        };
    }
    inv
}

/// Expressions reachable from the assignments and ODEs, in no particular order.
fn reachable(circuit: &Circuit) -> Vec<ExprId> {
    let mut seen = vec![false; circuit.exprs.len()];
    let mut stack: Vec<ExprId> = circuit
        .assigns
        .iter()
        .map(|a| a.rhs)
        .chain(circuit.odes.iter().map(|o| o.rhs))
        .collect();
    let mut out = Vec::new();
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut seen[id.0 as usize], true) {
            continue;
        }
        out.push(id);
        stack.extend(children(circuit.expr(id)));
    }
    out
}

/// What the fused stepper keeps per lane in its scratch rows: loop-invariant values that
/// the step loop reads (computed once per call), and reciprocals of invariant divisors.
struct Hoisted {
    /// Invariant, non-constant expressions read by a varying parent (bare parameter and
    /// input reads excluded: the step loop loads those from `p`/`u` directly).
    values: Vec<ExprId>,
    /// Invariant divisors `d` whose `x / d` becomes `x · (1/d)`.
    recips: Vec<ExprId>,
}

impl Hoisted {
    fn rows(&self) -> usize {
        self.values.len() + self.recips.len()
    }
}

fn hoisted(circuit: &Circuit, konst: &[Option<f64>], inv: &[bool], reach: &[ExprId], reciprocal: bool) -> Hoisted {
    let mut values = Vec::new();
    let mut recips = Vec::new();
    let mut seen = vec![false; circuit.exprs.len()];
    let mut seen_recip = vec![false; circuit.exprs.len()];
    for &id in reach {
        if inv[id.0 as usize] {
            continue;
        }
        let e = circuit.expr(id);
        for c in children(e) {
            let ci = c.0 as usize;
            let bare = matches!(circuit.expr(c), Expr::Var(_));
            if inv[ci] && konst[ci].is_none() && !bare && !std::mem::replace(&mut seen[ci], true) {
                values.push(c);
            }
        }
        if let Expr::Binary(BinOp::Div, _, d) = e {
            let di = d.0 as usize;
            if reciprocal && inv[di] && konst[di] != Some(1.0) && !std::mem::replace(&mut seen_recip[di], true) {
                recips.push(*d);
            }
        }
    }
    values.sort();
    recips.sort();
    Hoisted { values, recips }
}

/// Declares and defines a fused fixed-step integrator:
/// `fn(lanes, s0, nsteps, t0, dt, y, p, u, work, ctx, prologue)`, advancing `y`
/// (`[state][lane]`) in place by steps `s0 .. s0 + nsteps` of `tab`, step `s` starting at
/// `t0 + s·dt`. First, when `prologue` is nonzero, per lane, the expressions of parameters
/// and inputs only that the rhs needs are computed once into `work` (rows × lanes values,
/// rows returned with the id; a later call with the same `p`, `u` may skip this); with `reciprocal`, a division by such an expression becomes a multiplication by
/// its reciprocal (≤ 1 ulp per division; `false` keeps every result bit-identical to stepping
/// with the rhs kernel and the solver's stage arithmetic). Then the step loop runs outside
/// the lane loop, as in `montbrio_grid.c`: lanes are independent, so the CPU overlaps them,
/// while a block's rows stay in L1. The circuit must not contain `Past` or `Randn`.
pub(in crate::kernel::jit) fn define_stepper(
    module: &mut JITModule,
    circuit: &Circuit,
    layout: &Layout,
    tab: &Tableau,
    reciprocal: bool,
    fixed_lanes: Option<usize>,
    name: &str,
) -> Result<(FuncId, usize), KernelError> {
    let ptr = module.target_config().pointer_type();
    // lanes s0 nsteps t0 dt y p u work ctx prologue
    let params = [ptr, ptr, ptr, F64, F64, ptr, ptr, ptr, ptr, ptr, ptr];
    let konst = fold::constants(circuit, false);
    let inv = invariants(circuit);
    let reach = reachable(circuit);
    let hoist = hoisted(circuit, &konst, &inv, &reach, reciprocal);
    let id = define_function(module, name, &params, |module, b, params| {
        let (s0, nsteps, t0, dt) = (params[1], params[2], params[3], params[4]);
        // A constant lane count makes every row offset a constant: addresses become a base
        // plus a displacement instead of products computed in the loop.
        let lanes = match fixed_lanes {
            Some(n) => b.ins().iconst(ptr, n as i64),
            None => params[0],
        };
        let (y, p, u, work, kctx, prologue) = (params[5], params[6], params[7], params[8], params[9], params[10]);
        let stride = b.ins().ishl_imm_u(lanes, 3);
        // `a` is never written; `dy` holds the hoisted rows (so `store`/`load` reach them).
        let arrays = Arrays {
            y,
            p,
            u,
            dy: work,
            a: work,
        };
        let prog = Program {
            circuit,
            layout,
            konst: &konst,
        };
        let base = Env::over(lanes, stride, t0, t0, kctx, arrays);

        // Prologue (when asked for): hoisted rows.
        let prologue_blk = b.create_block();
        let main_blk = b.create_block();
        b.ins().brif(prologue, prologue_blk, &[], main_blk, &[]);
        b.switch_to_block(prologue_blk);
        lane_loops(module, b, prog, F64_FLAVOR, base, None, &mut |body| {
            for (row, &e) in hoist.values.iter().enumerate() {
                let v = body.eval(e);
                body.store(work, row as u32, v);
            }
            let one = body.constant(1.0);
            for (k, &d) in hoist.recips.iter().enumerate() {
                let v = body.eval(d);
                let r = body.map1(v, |b, x| b.ins().fdiv(one, x));
                body.store(work, (hoist.values.len() + k) as u32, r);
            }
        });
        b.ins().jump(main_blk, &[]);
        b.switch_to_block(main_blk);

        // Step loop around the lane loops.
        let end = b.ins().iadd(s0, nsteps);
        counted_loop(
            b,
            ptr,
            s0,
            1,
            |b, s| b.ins().icmp(IntCC::UnsignedLessThan, s, end),
            |b, s| {
                // Step s starts at t0 + s·dt; stage j is evaluated at that + c_j·dt (the solver's order).
                let sf = b.ins().fcvt_from_uint(F64, s);
                let sdt = b.ins().fmul(sf, dt);
                let t_step = b.ins().fadd(t0, sdt);
                let stage_t: Vec<Value> = tab
                    .c
                    .iter()
                    .map(|&c| {
                        let cv = b.ins().f64const(c);
                        let cdt = b.ins().fmul(cv, dt);
                        b.ins().fadd(t_step, cdt)
                    })
                    .collect();
                lane_loops(module, b, prog, F64_FLAVOR, base, None, &mut |body| {
                    step_group(body, &hoist, tab, &stage_t, dt);
                });
            },
        );
    })?;
    Ok((id, hoist.rows()))
}

/// One step of `tab` for the lane group of `body`: evaluate the stages (states, parameters
/// and hoisted rows loaded where first used), combine as the solver does, store the states.
fn step_group(body: &mut Body<'_, '_, '_>, hoist: &Hoisted, tab: &Tableau, stage_t: &[Value], dt: Value) {
    let circuit = body.circuit;
    let layout = body.layout;
    let y = body.env.arrays.y;
    body.hoist_rows = hoist.values.iter().enumerate().map(|(r, &e)| (e, r as u32)).collect();
    body.recip_rows = hoist
        .recips
        .iter()
        .enumerate()
        .map(|(r, &e)| (e, (hoist.values.len() + r) as u32))
        .collect();
    let dtv = body.splat_all(dt);
    let mut ys: Vec<Vals> = Vec::new();
    let mut ks: Vec<Vec<Vals>> = Vec::with_capacity(tab.stages());
    for (st, &t) in stage_t.iter().enumerate() {
        body.env.t = t;
        body.env.t64 = t;
        body.memo.iter_mut().for_each(|m| *m = None);
        // Parameter and input loads stay valid across stages; everything else is per stage.
        body.vars
            .retain(|v, _| matches!(circuit.var(*v).kind, VarKind::Param | VarKind::Input));
        if st > 0 {
            let ytmp = combine(body, &ys, dtv, &tab.nonzero_row(st), &ks);
            for (&v, &val) in layout.states.iter().zip(&ytmp) {
                body.vars.insert(v, val);
            }
        }
        // Stage 0 reads the states themselves (row 0 of an explicit tableau is empty):
        // `var` loads each from `y` where first used.
        for asg in &circuit.assigns {
            let v = body.eval(asg.rhs);
            body.vars.insert(asg.var, v);
        }
        let k: Vec<Vals> = circuit.odes.iter().map(|o| body.eval(o.rhs)).collect();
        if st == 0 {
            ys = layout.states.iter().map(|&v| body.var(v)).collect();
        }
        ks.push(k);
    }
    let ynew = combine(body, &ys, dtv, &tab.nonzero_weights(), &ks);
    for (&v, val) in layout.states.iter().zip(ynew) {
        body.store(y, layout.slot[v.0 as usize], val);
    }
}

/// `y + dt·Σ c_m·k_m` over nonzero `(m, c_m)`, summed left to right, with exactly the
/// solver's arithmetic (`solve::fixed::combine`): one term is `y + dt·(c·k)`, several are
/// `y + dt·((c0·k0 + c1·k1) + …)`.
fn combine(body: &mut Body<'_, '_, '_>, y: &[Vals], dt: Vals, coeffs: &[(usize, f64)], ks: &[Vec<Vals>]) -> Vec<Vals> {
    let mut out = Vec::with_capacity(y.len());
    for (j, &yj) in y.iter().enumerate() {
        let Some((&(m0, c0), rest)) = coeffs.split_first() else {
            out.push(yj);
            continue;
        };
        // c·k with c = 1 is k exactly: skip the multiplication.
        let c0v = [body.constant(c0); MAX_COPIES];
        let mut acc = if c0 == 1.0 {
            ks[m0][j]
        } else {
            body.map2(c0v, ks[m0][j], |b, c, k| b.ins().fmul(c, k))
        };
        for &(m, c) in rest {
            let cv = [body.constant(c); MAX_COPIES];
            let term = body.map2(cv, ks[m][j], |b, c, k| b.ins().fmul(c, k));
            acc = body.map2(acc, term, |b, a, t| b.ins().fadd(a, t));
        }
        let inc = body.map2(dt, acc, |b, d, a| b.ins().fmul(d, a));
        out.push(body.map2(yj, inc, |b, y, i| b.ins().fadd(y, i)));
    }
    out
}
