//! The population loops: one loop over a population's nodes per template assignment and per
//! ODE, and the evaluation body that runs them with the couplings.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::super::emit::{indent_by, Emitter, Ty};
use crate::model::network::{Coupling, Group, Network, Population};
use crate::model::{Circuit, Expr, ExprId, Layout, VarKind};

use super::coupling::{delayed_coupling, scaled_coupling, Start};
use super::layout::{CouplingAt, NodeTables, Offsets};

pub(super) fn array(kind: VarKind) -> &'static str {
    match kind {
        VarKind::State => "Y",
        VarKind::Param => "P",
        VarKind::Input => "U",
        VarKind::Algebraic => "A",
    }
}

/// `(size_t)(base + i*stride) * lanes`, the start of node `i`'s row.
pub(super) fn row(base: u32, stride: u32) -> String {
    format!("((size_t){base} + i * (size_t){stride}) * lanes")
}

/// Body of one node loop: row pointers of the locals `rhs` reads, the node's constants and
/// noise sources (node `i`'s `randn()` draws its own stream, as its unrolled copy), then the
/// lane loop with the expressions and `stores(value texts)`. With `in_place` the
/// outputs are the node's states `(local, derivative)`, each advanced by an Euler step
/// (`y + dt·f`, the stepper's own expression) once every derivative of the node is computed.
fn node_loop(
    c: &Circuit,
    layout: &Layout,
    ty: Ty,
    pop: &Population,
    tables: &NodeTables,
    outputs: &[(String, ExprId)],
    in_place: Option<&[(usize, ExprId)]>,
) -> String {
    let t = ty.name();
    let mut reads = Vec::new();
    for rhs in outputs
        .iter()
        .map(|o| o.1)
        .chain(in_place.unwrap_or(&[]).iter().map(|o| o.1))
    {
        crate::model::build::collect_vars(c, rhs, &mut reads);
    }
    reads.sort_unstable();
    reads.dedup();
    let mut s = String::new();
    let _ = writeln!(s, "for (size_t i = 0; i < (size_t){}; i++) {{", pop.len());
    let advanced: Vec<usize> = in_place.map_or_else(Vec::new, |odes| odes.iter().map(|&(k, _)| k).collect());
    for &k in &advanced {
        let l = pop.locals[k];
        let _ = writeln!(s, "    {t}* restrict X{k} = Y + {};", row(l.base, l.stride));
    }
    for v in &reads {
        if let Some(&k) = pop.local_of.get(v) {
            if advanced.contains(&k) {
                continue;
            }
            let l = pop.locals[k];
            let _ = writeln!(
                s,
                "    const {t}* restrict X{k} = {} + {};",
                array(l.kind),
                row(l.base, l.stride)
            );
        }
    }
    let mut const_names: HashMap<ExprId, String> = HashMap::new();
    for (j, (e, _)) in pop.node_consts.iter().enumerate() {
        let off = tables.consts[e];
        let _ = writeln!(s, "    const {t} NC{j} = ({t})ND[(size_t){off} + i];");
        const_names.insert(*e, format!("NC{j}"));
    }
    let mut noise_names: HashMap<ExprId, String> = HashMap::new();
    for (j, (e, _)) in pop.node_noise.iter().enumerate() {
        let off = tables.noise[e];
        let _ = writeln!(s, "    const unsigned NS{j} = (unsigned)NI[(size_t){off} + i];");
        noise_names.insert(*e, format!("NS{j}"));
    }
    let remap = |id: ExprId, e: &Expr| -> Option<String> {
        match e {
            Expr::Var(v) => pop.local_of.get(v).map(|k| format!("X{k}[l]")),
            Expr::Const(_) => const_names.get(&id).cloned(),
            Expr::Randn => noise_names.get(&id).cloned(),
            _ => None,
        }
    };
    let mut em = Emitter::new(c, layout, ty, None);
    em.remap = Some(&remap);
    let mut stores = Vec::new();
    if let Some(odes) = in_place {
        // Every derivative into a temporary first: a state's new value must not be read by
        // another derivative of the same node.
        for (j, &(k, rhs)) in odes.iter().enumerate() {
            let v = em.expr(rhs);
            em.line(&format!("const {t} F{j} = {v};"));
            stores.push(format!("X{k}[l] = X{k}[l] + dt * F{j};"));
        }
    }
    for (target, rhs) in outputs {
        let v = em.expr(*rhs);
        stores.push(format!("{target}[l] = {v};"));
    }
    for st in stores {
        em.line(&st);
    }
    let mut body = String::new();
    indent_by(&mut body, &em.out, 1);
    s.push_str("    for (size_t l = 0; l < lanes; l++) {\n");
    indent_by(&mut s, &body, 1);
    s.push_str("    }\n}\n");
    s
}

/// The evaluation body (algebraics into `A`, derivatives into `DY`) in precision `ty`; with
/// `euler`, one Euler step instead: the derivatives advance the states `Y` in place in the
/// population loops (see [`euler_in_place`]).
pub(super) fn eval_body(c: &Circuit, layout: &Layout, net: &Network, off: &Offsets, ty: Ty, euler: bool) -> String {
    let sfx = match ty {
        Ty::F64 => "d",
        Ty::F32 => "f",
    };
    let t = ty.name();
    let mut s = String::from("(void)t; (void)ctx; (void)P; (void)U; (void)NI; (void)ND; (void)R;\n");
    for g in &net.order {
        match *g {
            Group::Assign { pop, item } => {
                let p = &net.populations[pop];
                let (local, rhs) = p.assigns[item];
                let l = p.locals[local];
                let _ = writeln!(s, "/* {} over population {pop} */", c.var(l.var).name);
                let out = format!("A + {}", row(l.base, l.stride));
                let body = node_loop(c, layout, ty, p, &off.tables[pop], &[("O".into(), rhs)], None);
                let body = body.replacen("i++) {\n", &format!("i++) {{\n    {t}* restrict O = {out};\n"), 1);
                s.push_str(&body);
            }
            Group::Coupling(k) => {
                let cp = &net.couplings[k];
                let p = &net.populations[cp.pop];
                let (tgt, ext) = (p.locals[cp.target], p.locals[cp.external]);
                let CouplingAt {
                    rows,
                    sources: srcs,
                    spacing,
                    weights: ws,
                    delays,
                } = off.couplings[k];
                let src = array(cp.source_kind);
                let _ = writeln!(s, "/* edges into {} */", c.var(tgt.var).name);
                if cp.scale.is_some() {
                    s.push_str(&scaled_coupling(layout, cp, p, off.couplings[k], ty));
                    continue;
                }
                let es = format!("(size_t){} * lanes", ext.stride);
                let os = format!("(size_t){} * lanes", tgt.stride);
                let e0 = format!("U + (size_t){} * lanes", ext.base);
                let o0 = format!("A + (size_t){} * lanes", tgt.base);
                if let Some(d) = delays {
                    delayed_coupling(&mut s, sfx, cp, &Start::External(ext), tgt, src, off.couplings[k], d);
                } else if cp.dense {
                    let _ = writeln!(
                        s,
                        "rr_dense_{sfx}(lanes, (size_t){n}, {e0}, {es}, {o0}, {os}, {src}, NI + {srcs}, (size_t)NI[{spacing}], ND + {ws}, (size_t){cols});",
                        n = cp.len(),
                        cols = cp.columns()
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "for (size_t i = 0; i < (size_t){n}; i++)\n    rr_csr_{sfx}(lanes, U + {er}, A + {or}, {src}, NI + {srcs}, ND + {ws}, (size_t)NI[{rows} + i], (size_t)NI[{rows} + i + 1]);",
                        n = cp.len(),
                        er = row(ext.base, ext.stride),
                        or = row(tgt.base, tgt.stride),
                    );
                }
            }
        }
    }
    for (pi, p) in net.populations.iter().enumerate() {
        if p.odes.is_empty() {
            continue;
        }
        if euler {
            let _ = writeln!(s, "/* Euler step of population {pi} ({} nodes) */", p.len());
            s.push_str(&node_loop(c, layout, ty, p, &off.tables[pi], &[], Some(&p.odes)));
            continue;
        }
        let _ = writeln!(s, "/* derivatives of population {pi} ({} nodes) */", p.len());
        let outs: Vec<(String, ExprId)> = p.odes.iter().map(|&(k, rhs)| (format!("D{k}"), rhs)).collect();
        let mut body = node_loop(c, layout, ty, p, &off.tables[pi], &outs, None);
        let decls: String = p
            .odes
            .iter()
            .map(|&(k, _)| {
                let l = p.locals[k];
                format!("    {t}* restrict D{k} = DY + {};\n", row(l.base, l.stride))
            })
            .collect();
        body = body.replacen("i++) {\n", &format!("i++) {{\n{decls}"), 1);
        s.push_str(&body);
    }
    s
}

/// Whether a forward Euler step can advance the states in place inside the population loops
/// (the fused stepper's `rustrates_net_euler`): every ODE reads no state but its own node's, so
/// a node's new state is never read by another node's derivative; the couplings and
/// assignments, which may read any state, all run before the first ODE loop. Delayed reads
/// and noise need the solver between steps and take the general path anyway.
pub(super) fn euler_in_place(c: &Circuit, net: &Network) -> bool {
    if net.couplings.iter().any(Coupling::has_delays) || has_noise(net) {
        return false;
    }
    net.populations.iter().all(|p| {
        p.odes.iter().all(|&(_, rhs)| {
            let mut reads = Vec::new();
            crate::model::build::collect_vars(c, rhs, &mut reads);
            reads
                .iter()
                .all(|v| c.var(*v).kind != VarKind::State || p.local_of.contains_key(v))
        })
    })
}

/// Some population draws noise (`randn()`): the solver must run between steps (it counts the
/// steps the noise streams are drawn at), so no fused stepper.
pub(super) fn has_noise(net: &Network) -> bool {
    net.populations.iter().any(|p| !p.node_noise.is_empty())
}
