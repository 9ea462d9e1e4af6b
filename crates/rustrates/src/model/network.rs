//! Networks: nodes built from the same template form a population, the edges between
//! populations a coupling, so a back end can compile one loop per template instead of one
//! copy of the equations per node and one term per edge in its code.
//!
//! [`plan`] reads a lowered (and usually specialised) circuit — the form every back end
//! receives — and recognises:
//! - **populations**: nodes whose assignments and ODEs are the same expressions up to the
//!   node's own variables and the values of constants. Constants that differ between nodes
//!   (a parameter with a per-node value that the sweep does not vary) become a per-node
//!   table. A variable of a population lives at slot `base + i·stride` of its kind's array
//!   for node `i` (the builder declares node by node, so strides are the number of such
//!   variables per node).
//! - **couplings**: the sums `lower_edges` builds, `target = ext + w₁·s₁ + w₂·s₂ + …` with
//!   constant weights, as one sparse row per target node (CSR) whose terms keep the order of
//!   the sum, so a loop over them rounds exactly like the unrolled expression. When every row
//!   reads the same sources in the same order the coupling is also marked dense (one weight
//!   matrix, columns shared by all rows).
//!
//! Noise (`randn()`) in a node's equations is a noise site of the template: node `i`'s copy
//! draws from its own source (the id of its `randn()` expression, as in the unrolled code,
//! so the loops draw exactly the unrolled code's numbers), kept per node in a table.
//!
//! A term may read its source's past (`past(source, d)`, `d` a constant, or
//! `length / velocity` with the velocity a parameter swept per lane: the term keeps the length
//! and names the velocity). Anything else — gamma-chain states, weights that vary
//! per lane, a delay of any other form, an input fed both inside its node and by edges —
//! makes [`plan`] answer why not, and the back end keeps the unrolled code, which is always
//! correct.

use std::collections::HashMap;

use crate::model::{BinOp, Circuit, Expr, ExprId, Layout, VarId, VarKind};

/// Smallest population for which a back end should use loops: below it the unrolled code
/// (every expression inlined per node, step-invariant values hoisted) is at least as fast,
/// and small circuits such as the two-population reference circuit keep their code.
pub const MIN_POPULATION: usize = 4;

#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub populations: Vec<Population>,
    pub couplings: Vec<Coupling>,
    /// Every assignment group, in an order where each reads only groups before it.
    pub order: Vec<Group>,
}

/// A unit of evaluation: one loop over a population's nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// Template assignment `item` (an index into [`Population::assigns`]) of population `pop`.
    Assign { pop: usize, item: usize },
    /// Coupling number `k` (an index into [`Network::couplings`]).
    Coupling(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Population {
    /// Node paths, in circuit order; node `i` of the population is `nodes[i]`.
    pub nodes: Vec<String>,
    /// The template's variables, with where each node's copy lives.
    pub locals: Vec<Local>,
    /// Node 0's variable → its index in `locals`.
    pub local_of: HashMap<VarId, usize>,
    /// Template assignments other than couplings: (local assigned, node 0's right-hand side).
    pub assigns: Vec<(usize, ExprId)>,
    /// Template ODEs: (local integrated, node 0's right-hand side).
    pub odes: Vec<(usize, ExprId)>,
    /// Constants of node 0's expressions whose value differs between nodes: values per node.
    pub node_consts: Vec<(ExprId, Vec<f64>)>,
    /// Noise sites (`randn()`) of node 0's expressions: per node, the noise source its copy
    /// draws from (the id of that node's `randn()` expression, which the unrolled code
    /// passes to the solver's hook), so every node keeps its own stream.
    pub node_noise: Vec<(ExprId, Vec<u32>)>,
    /// Per template assignment, the locals its right-hand side reads.
    pub assign_reads: Vec<Vec<usize>>,
}

impl Population {
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// A template variable: node `i`'s copy is at slot `base + i·stride` of the array of `kind`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Local {
    /// Node 0's variable.
    pub var: VarId,
    pub kind: VarKind,
    pub base: u32,
    pub stride: u32,
}

impl Local {
    pub fn slot(&self, node: usize) -> usize {
        self.base as usize + node * self.stride as usize
    }
}

/// `target[i] = external[i] + Σ_k weights[k] · source[sources[k]]` for `k` in row `i`.
#[derive(Clone, Debug, PartialEq)]
pub struct Coupling {
    pub pop: usize,
    /// Local (of `pop`) the sum is assigned to (an algebraic).
    pub target: usize,
    /// Local (of `pop`) of the input added to the sum (`target#ext`).
    pub external: usize,
    /// Kind of every source: `State` or `Algebraic`.
    pub source_kind: VarKind,
    /// CSR row offsets, `len() + 1` entries: row `i`'s terms are `rows[i]..rows[i + 1]`.
    pub rows: Vec<u64>,
    /// Slot of each term's source in the array of `source_kind`.
    pub sources: Vec<u32>,
    pub weights: Vec<f64>,
    /// Per term: the source variable read through the solver's history (`past`), or `None`
    /// for the current value. All `None` when the coupling has no delays.
    pub delayed: Vec<Option<VarId>>,
    /// Per term: its delay in seconds (0 for a current value), or, for a term with a
    /// `velocity`, its length.
    pub delays: Vec<f64>,
    /// Per term: the conduction velocity parameter a swept `lengths:` block reads per lane,
    /// the term's delay then being `conduction_delay(length, velocity)` in each lane. All
    /// `None` when every delay is a constant.
    pub velocities: Vec<Option<VarId>>,
    /// Sources read at the current time, for the evaluation order (each once).
    pub source_vars: Vec<VarId>,
    /// Every row reads the same sources in the same order (`sources` of row 0), none with a
    /// delay: the weights are then a dense `len × columns` matrix, row-major, in `weights`.
    pub dense: bool,
    /// A `connectivity:` block's scale (global coupling): then
    /// `target[i] = external[i] + scale · Σ_k weights[k] · source[sources[k]]`, the sum starting
    /// from its first term (delayed terms included).
    pub scale: Option<Scale>,
}

pub use crate::model::ir::Scale;

impl Coupling {
    /// Number of target nodes.
    pub fn len(&self) -> usize {
        self.rows.len() - 1
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Terms per row when dense.
    pub fn columns(&self) -> usize {
        (self.rows.get(1).copied().unwrap_or(0)) as usize
    }
    /// Some term reads a source's past.
    pub fn has_delays(&self) -> bool {
        self.delayed.iter().any(Option::is_some)
    }
    /// Some term's delay differs per lane (a swept conduction velocity).
    pub fn per_lane_delays(&self) -> bool {
        self.velocities.iter().any(Option::is_some)
    }
}

/// Why a circuit keeps the unrolled code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotANetwork {
    /// No template is repeated often enough ([`MIN_POPULATION`]).
    Small,
    /// Something the loops do not express yet, named.
    Unsupported(String),
}

impl std::fmt::Display for NotANetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotANetwork::Small => write!(f, "no node template is repeated {MIN_POPULATION} times or more"),
            NotANetwork::Unsupported(why) => f.write_str(why),
        }
    }
}

fn unsupported<T>(why: impl Into<String>) -> Result<T, NotANetwork> {
    Err(NotANetwork::Unsupported(why.into()))
}

/// One term of an edge sum: weight, source, and the delay (seconds) it is read with.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Term {
    weight: f64,
    source: VarId,
    /// `Some(d)` with `d > 0`: `past(source, d)`; `None`: the current value. With a
    /// `velocity`, `d` is the length: `past(source, conduction_delay(d, velocity))` per lane.
    delay: Option<f64>,
    velocity: Option<VarId>,
}

/// The terms of an edge sum in order.
type Terms = Vec<Term>;

/// One node's equations, before grouping.
struct NodeItems {
    /// Local variable name → variable.
    vars: HashMap<String, VarId>,
    /// `(local name, rhs)` of plain assignments and ODEs, sorted by local name.
    assigns: Vec<(String, ExprId)>,
    odes: Vec<(String, ExprId)>,
    /// Coupling targets: (local name, external input, terms (weight, source), scale).
    couplings: Vec<(String, VarId, Terms, Option<Scale>)>,
    signature: String,
}

/// Recognises populations and couplings in a lowered circuit (see the module docs).
pub fn plan(c: &Circuit) -> Result<Network, NotANetwork> {
    if !c.edges.is_empty() {
        return unsupported("the circuit still has edges (lower them first)");
    }
    let node_index: HashMap<&str, usize> = c.nodes.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    // Owner node and local name of every variable that belongs to a node.
    let mut owner: Vec<Option<(usize, String)>> = vec![None; c.vars.len()];
    let mut items: Vec<NodeItems> = (0..c.nodes.len())
        .map(|_| NodeItems {
            vars: HashMap::new(),
            assigns: Vec::new(),
            odes: Vec::new(),
            couplings: Vec::new(),
            signature: String::new(),
        })
        .collect();
    for (i, v) in c.vars.iter().enumerate() {
        let Some(node) = &v.node else { continue };
        let Some(&n) = node_index.get(node.as_str()) else {
            return unsupported(format!("variable {} names an unknown node {node}", v.name));
        };
        let Some(local) = v.name.strip_prefix(node.as_str()).and_then(|s| s.strip_prefix('/')) else {
            return unsupported(format!("variable {} is not under its node's path", v.name));
        };
        owner[i] = Some((n, local.to_string()));
        items[n].vars.insert(local.to_string(), VarId(i as u32));
    }
    let node_of = |v: VarId| owner.get(v.0 as usize).and_then(|o| o.as_ref());
    // Targets of the couplings lowering kept: (coupling, row).
    let mut coupled: HashMap<VarId, (usize, usize)> = HashMap::new();
    for (k, cp) in c.couplings.iter().enumerate() {
        if !cp.lowered {
            return unsupported("the circuit still has connectivity blocks (lower them first)");
        }
        coupled.extend(cp.targets.iter().enumerate().map(|(i, t)| (*t, (k, i))));
    }
    for a in &c.assigns {
        let Some((n, local)) = node_of(a.var) else {
            return unsupported(format!("{} belongs to no node", c.var(a.var).name));
        };
        match c.var(a.var).external_input {
            Some(ext) if coupled.contains_key(&a.var) => {
                let (k, i) = coupled[&a.var];
                let (terms, scale) = coupling_row(&c.couplings[k], i)?;
                items[*n].couplings.push((local.clone(), ext, terms, scale));
            }
            Some(ext) => {
                let (terms, scale) = parse_sum(c, a.rhs, ext).ok_or_else(|| {
                    NotANetwork::Unsupported(format!(
                        "the edges into {} are not a plain weighted sum with constant weights and delays",
                        c.var(a.var).name
                    ))
                })?;
                items[*n].couplings.push((local.clone(), ext, terms, scale));
            }
            None => items[*n].assigns.push((local.clone(), a.rhs)),
        }
    }
    for o in &c.odes {
        let Some((n, local)) = node_of(o.var) else {
            return unsupported(format!("{} belongs to no node", c.var(o.var).name));
        };
        items[*n].odes.push((local.clone(), o.rhs));
    }
    // Signatures: equal for nodes whose equations are the same up to their own variables and
    // constant values.
    for (n, it) in items.iter_mut().enumerate() {
        it.assigns.sort_by(|a, b| a.0.cmp(&b.0));
        it.odes.sort_by(|a, b| a.0.cmp(&b.0));
        it.couplings.sort_by(|a, b| a.0.cmp(&b.0));
        let mut s = String::new();
        for (kind, equations) in [("A ", &it.assigns), ("D ", &it.odes)] {
            for (local, rhs) in equations {
                s.push_str(kind);
                s.push_str(local);
                s.push('=');
                canon(c, *rhs, n, &owner, &mut s)?;
                s.push('\n');
            }
        }
        for (local, ext, _, _) in &it.couplings {
            let ext_local = match node_of(*ext) {
                Some((m, l)) if *m == n => l,
                _ => return unsupported(format!("the external input of {local} is not in its node")),
            };
            s.push_str("C ");
            s.push_str(local);
            s.push('+');
            s.push_str(ext_local);
            s.push('\n');
        }
        it.signature = s;
    }
    let mut by_signature: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (n, it) in items.iter().enumerate() {
        let g = *by_signature.entry(it.signature.as_str()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(n);
    }
    if groups.iter().all(|g| g.len() < MIN_POPULATION) {
        return Err(NotANetwork::Small);
    }
    let layout = c.layout();
    let mut planned: Vec<(Vec<usize>, Population)> = Vec::with_capacity(groups.len());
    for members in groups {
        planned.extend(populations_of(c, &layout, &items, members, &owner)?);
    }
    let (groups, pops): (Vec<Vec<usize>>, Vec<Population>) = planned.into_iter().unzip();
    let mut populations = Vec::with_capacity(groups.len());
    // Variable → (population, local), for every node's copy.
    let mut var_place: HashMap<VarId, (usize, usize)> = HashMap::new();
    for ((p, members), pop) in groups.iter().enumerate().zip(pops) {
        for (k, l) in pop.locals.iter().enumerate() {
            let local = &owner[l.var.0 as usize]
                .as_ref()
                .map(|o| o.1.clone())
                .unwrap_or_default();
            for &n in members {
                if let Some(&v) = items[n].vars.get(local) {
                    var_place.insert(v, (p, k));
                }
            }
        }
        populations.push(pop);
    }
    let mut couplings = Vec::new();
    for (p, members) in groups.iter().enumerate() {
        let first = &items[members[0]];
        for (ci, (local, _, _, _)) in first.couplings.iter().enumerate() {
            couplings.push(coupling(c, &layout, &items, members, ci, local, p, &populations[p])?);
        }
    }
    let order = evaluation_order(&populations, &couplings, &var_place)?;
    Ok(Network {
        populations,
        couplings,
        order,
    })
}

/// Row `i` of a kept coupling as the terms its expansion would parse to (a delay that is
/// not positive is a current read, as is a length of 0 at any velocity), in the same order.
fn coupling_row(cp: &crate::model::Coupling, i: usize) -> Result<(Terms, Option<Scale>), NotANetwork> {
    let velocity = match cp.velocity {
        Some(Scale::Param(v)) => Some(v),
        _ => None,
    };
    let terms: Terms = cp
        .row(i)
        .map(|(e, j)| {
            let (delay, velocity) = match (velocity, &cp.delays) {
                (Some(v), Some(lengths)) => ((lengths[e] > 0.0).then_some(lengths[e]), Some(v)),
                _ => (cp.delay(e).filter(|d| *d > 0.0), None),
            };
            Term {
                weight: cp.weights[e],
                source: cp.sources[j],
                delay,
                velocity: delay.and(velocity),
            }
        })
        .collect();
    if cp.scale.is_some() && terms.iter().any(|t| t.delay.is_some()) {
        return unsupported(format!("the block {} is scaled and has delays", cp.name));
    }
    Ok((terms, cp.scale))
}

/// `ext + t₁ + t₂ + …` (left-nested, as `lower_edges` builds it) with `tₖ = w·x` (`w` a
/// constant) or `x`, where `x` is `source` or `past(source, d)` with a constant `d`; or a
/// scaled block `ext + s·(t₁ + t₂ + …)` (`s` a parameter or a constant): the terms
/// in order and the scale, or `None` for any other shape.
fn parse_sum(c: &Circuit, rhs: ExprId, ext: VarId) -> Option<(Terms, Option<Scale>)> {
    if let Some(terms) = parse_terms(c, rhs, Some(ext)) {
        return Some((terms, None));
    }
    let Expr::Binary(BinOp::Add, a, b) = c.expr(rhs) else {
        return None;
    };
    let Expr::Binary(BinOp::Mul, s, inner) = c.expr(*b) else {
        return None;
    };
    if !matches!(c.expr(*a), Expr::Var(v) if *v == ext) {
        return None;
    }
    let scale = match c.expr(*s) {
        Expr::Var(p) if c.var(*p).kind == VarKind::Param => Scale::Param(*p),
        Expr::Const(x) => Scale::Const(*x),
        _ => return None,
    };
    let terms = parse_terms(c, *inner, None)?;
    Some((terms, Some(scale)))
}

/// The terms of a left-nested sum ending in `ext` (or, without `ext`, in its first term).
fn parse_terms(c: &Circuit, rhs: ExprId, ext: Option<VarId>) -> Option<Terms> {
    // (source, delay or length, velocity parameter)
    let read = |x: ExprId| -> Option<(VarId, Option<f64>, Option<VarId>)> {
        match c.expr(x) {
            Expr::Var(s) => Some((*s, None, None)),
            // A delay that is not positive reads the current value (the reference
            // evaluator's rule), so such a term is an ordinary one.
            Expr::Past(s, d) => {
                let d = match c.expr(*d) {
                    Expr::Const(d) => *d,
                    // A written-out block's `length / velocity` once the velocity is folded.
                    Expr::Binary(BinOp::Div, l, v) => match (c.expr(*l), c.expr(*v)) {
                        (Expr::Const(l), Expr::Const(v)) => crate::model::conduction_delay(*l, *v),
                        // A swept velocity: the delay differs per lane (a length of 0 is
                        // 0 in every lane, a current read).
                        (Expr::Const(l), Expr::Var(v)) if c.var(*v).kind == VarKind::Param => {
                            return Some((*s, (*l > 0.0).then_some(*l), (*l > 0.0).then_some(*v)));
                        }
                        _ => return None,
                    },
                    _ => return None,
                };
                Some((*s, (d > 0.0).then_some(d), None))
            }
            _ => None,
        }
    };
    let term = |t: ExprId| -> Option<Term> {
        let (weight, (source, delay, velocity)) = match c.expr(t) {
            Expr::Binary(BinOp::Mul, w, x) => match c.expr(*w) {
                Expr::Const(w) => (*w, read(*x)?),
                _ => return None,
            },
            // Without a weight: 1·x rounds to x, so the loop may multiply by one.
            _ => (1.0, read(t)?),
        };
        Some(Term {
            weight,
            source,
            delay,
            velocity,
        })
    };
    let mut terms = Vec::new();
    let mut e = rhs;
    loop {
        match (c.expr(e), ext) {
            (Expr::Var(v), Some(x)) if *v == x => break,
            (Expr::Binary(BinOp::Add, a, b), _) => {
                terms.push(term(*b)?);
                e = *a;
            }
            (_, None) => {
                terms.push(term(e)?);
                break;
            }
            _ => return None,
        }
    }
    terms.reverse();
    Some(terms)
}

/// Appends the canonical text of `e` for node `n`: the node's own variables by local name,
/// constants without their value.
fn canon(
    c: &Circuit,
    e: ExprId,
    n: usize,
    owner: &[Option<(usize, String)>],
    s: &mut String,
) -> Result<(), NotANetwork> {
    use std::fmt::Write as _;
    match c.expr(e) {
        Expr::Const(_) => s.push('#'),
        Expr::Var(v) => match owner.get(v.0 as usize).and_then(|o| o.as_ref()) {
            Some((m, local)) if *m == n => {
                let _ = write!(s, "${local}:{:?}", c.var(*v).kind);
            }
            _ => {
                return unsupported(format!(
                    "an equation reads {}, which is outside its node",
                    c.var(*v).name
                ))
            }
        },
        Expr::Time => s.push('t'),
        Expr::Neg(a) => {
            s.push_str("-(");
            canon(c, *a, n, owner, s)?;
            s.push(')');
        }
        Expr::Binary(op, a, b) => {
            let _ = write!(s, "{op:?}(");
            canon(c, *a, n, owner, s)?;
            s.push(',');
            canon(c, *b, n, owner, s)?;
            s.push(')');
        }
        Expr::Call(f, args) => {
            let _ = write!(s, "{f:?}(");
            for a in args {
                canon(c, *a, n, owner, s)?;
                s.push(',');
            }
            s.push(')');
        }
        Expr::Select(x, a, b) => {
            s.push_str("?(");
            for y in [x, a, b] {
                canon(c, *y, n, owner, s)?;
                s.push(',');
            }
            s.push(')');
        }
        Expr::Past(..) => return unsupported("delayed reads (past) inside a node's equations"),
        Expr::Randn => s.push('r'),
    }
    Ok(())
}

/// Pairs of leaves at the same place of two expressions with the same canonical text:
/// constants, and noise sites (`randn()`).
fn zip_leaves(c: &Circuit, a: ExprId, b: ExprId, f: &mut impl FnMut(ExprId, ExprId)) {
    match (c.expr(a), c.expr(b)) {
        (Expr::Const(_), Expr::Const(_)) | (Expr::Randn, Expr::Randn) => f(a, b),
        (Expr::Neg(x), Expr::Neg(y)) => zip_leaves(c, *x, *y, f),
        (Expr::Binary(_, x1, x2), Expr::Binary(_, y1, y2)) => {
            zip_leaves(c, *x1, *y1, f);
            zip_leaves(c, *x2, *y2, f);
        }
        (Expr::Call(_, xs), Expr::Call(_, ys)) => {
            for (x, y) in xs.iter().zip(ys) {
                zip_leaves(c, *x, *y, f);
            }
        }
        (Expr::Select(x1, x2, x3), Expr::Select(y1, y2, y3)) => {
            zip_leaves(c, *x1, *y1, f);
            zip_leaves(c, *x2, *y2, f);
            zip_leaves(c, *x3, *y3, f);
        }
        _ => {}
    }
}

/// The populations of one group of nodes with the same equations. Circuits nested in a
/// circuit declare their nodes column by column (`c0/pc`, `c0/ein`, `c0/iin`, `c1/pc`, …), so
/// nodes of one template at different places of the repeated circuit (`ein`, `iin`) are
/// interleaved and not evenly spaced in the kernel's arrays: such a group is split by the
/// node's own name (the last part of its path), each part then evenly spaced — one loop per
/// place in the repeated circuit, still independent of how many times it is repeated.
fn populations_of(
    c: &Circuit,
    layout: &Layout,
    items: &[NodeItems],
    members: Vec<usize>,
    owner: &[Option<(usize, String)>],
) -> Result<Vec<(Vec<usize>, Population)>, NotANetwork> {
    let whole = match population(c, layout, items, &members, owner) {
        Ok(pop) => return Ok(vec![(members, pop)]),
        Err(why) => why,
    };
    let mut by_name: Vec<(&str, Vec<usize>)> = Vec::new();
    for &n in &members {
        let name = c.nodes[n].rsplit('/').next().unwrap_or_default();
        match by_name.iter_mut().find(|(k, _)| *k == name) {
            Some((_, part)) => part.push(n),
            None => by_name.push((name, vec![n])),
        }
    }
    // A flat node list names every node differently: its parts would be single nodes, one
    // loop each, so it keeps the unrolled code.
    if by_name.len() < 2 || by_name.iter().any(|(_, part)| part.len() < 2) {
        return Err(whole);
    }
    by_name
        .into_iter()
        .map(|(_, part)| {
            let pop = population(c, layout, items, &part, owner).map_err(|_| whole.clone())?;
            Ok((part, pop))
        })
        .collect()
}

fn population(
    c: &Circuit,
    layout: &Layout,
    items: &[NodeItems],
    members: &[usize],
    owner: &[Option<(usize, String)>],
) -> Result<Population, NotANetwork> {
    let first = &items[members[0]];
    let mut locals: Vec<Local> = Vec::new();
    let mut local_of: HashMap<VarId, usize> = HashMap::new();
    let mut add_local = |v0: VarId, locals: &mut Vec<Local>| -> Result<usize, NotANetwork> {
        if let Some(&k) = local_of.get(&v0) {
            return Ok(k);
        }
        let name = owner[v0.0 as usize].as_ref().map(|o| o.1.as_str()).unwrap_or_default();
        let slots: Vec<u32> = members
            .iter()
            .map(|&n| items[n].vars.get(name).map_or(u32::MAX, |v| layout.slot[v.0 as usize]))
            .collect();
        let kind = c.var(v0).kind;
        let base = slots[0];
        let stride = if slots.len() > 1 {
            slots[1].wrapping_sub(base)
        } else {
            0
        };
        let affine = slots
            .iter()
            .enumerate()
            .all(|(i, &s)| s != u32::MAX && u64::from(s) == u64::from(base) + i as u64 * u64::from(stride));
        if !affine || (slots.len() > 1 && slots[1] <= base) {
            return unsupported(format!(
                "the copies of {name} in the nodes of a population are not evenly spaced in the kernel's arrays"
            ));
        }
        locals.push(Local {
            var: v0,
            kind,
            base,
            stride,
        });
        local_of.insert(v0, locals.len() - 1);
        Ok(locals.len() - 1)
    };
    let mut reads = Vec::new();
    let mut assigns = Vec::new();
    let mut assign_vars = Vec::new();
    for (local, rhs) in &first.assigns {
        let k = add_local(first.vars[local], &mut locals)?;
        assigns.push((k, *rhs));
        let mut vs = Vec::new();
        crate::model::build::collect_vars(c, *rhs, &mut vs);
        reads.extend_from_slice(&vs);
        assign_vars.push(vs);
    }
    let mut odes = Vec::new();
    for (local, rhs) in &first.odes {
        let k = add_local(first.vars[local], &mut locals)?;
        odes.push((k, *rhs));
        crate::model::build::collect_vars(c, *rhs, &mut reads);
    }
    for (local, ext, _, _) in &first.couplings {
        add_local(first.vars[local], &mut locals)?;
        add_local(*ext, &mut locals)?;
    }
    for v in reads {
        add_local(v, &mut locals)?;
    }
    let assign_reads = assign_vars
        .iter()
        .map(|vs| vs.iter().filter_map(|v| local_of.get(v).copied()).collect())
        .collect();
    // Per-node constants and noise sources: every node's value (source) at each constant
    // (noise site) of node 0's expressions.
    let mut values: HashMap<ExprId, Vec<f64>> = HashMap::new();
    let mut order: Vec<ExprId> = Vec::new();
    let mut sources: HashMap<ExprId, Vec<u32>> = HashMap::new();
    let mut noise_order: Vec<ExprId> = Vec::new();
    let mut shared_noise = false;
    for (i, &n) in members.iter().enumerate() {
        let it = &items[n];
        let pairs = first
            .assigns
            .iter()
            .zip(&it.assigns)
            .chain(first.odes.iter().zip(&it.odes));
        for ((_, a), (_, b)) in pairs {
            zip_leaves(c, *a, *b, &mut |e0, e| match c.expr(e) {
                Expr::Randn => {
                    let row = sources.entry(e0).or_insert_with(|| {
                        noise_order.push(e0);
                        vec![u32::MAX; members.len()]
                    });
                    // A site node 0 shares between equations must be shared in every node.
                    shared_noise |= row[i] != u32::MAX && row[i] != e.0;
                    row[i] = e.0;
                }
                Expr::Const(x) => {
                    let row = values.entry(e0).or_insert_with(|| {
                        order.push(e0);
                        vec![0.0; members.len()]
                    });
                    row[i] = *x;
                }
                _ => {}
            });
        }
    }
    if shared_noise {
        return unsupported("noise (randn) drawn in several places of one node but not of another");
    }
    let node_noise = noise_order
        .into_iter()
        .filter_map(|e| Some((e, sources.remove(&e)?)))
        .collect();
    let node_consts = order
        .into_iter()
        .filter_map(|e| {
            let v = values.remove(&e)?;
            let differs = v.iter().any(|x| x.to_bits() != v[0].to_bits());
            differs.then_some((e, v))
        })
        .collect();
    Ok(Population {
        nodes: members.iter().map(|&n| c.nodes[n].clone()).collect(),
        locals,
        local_of,
        assigns,
        odes,
        node_consts,
        node_noise,
        assign_reads,
    })
}

#[allow(clippy::too_many_arguments)]
fn coupling(
    c: &Circuit,
    layout: &Layout,
    items: &[NodeItems],
    members: &[usize],
    ci: usize,
    local: &str,
    p: usize,
    pop: &Population,
) -> Result<Coupling, NotANetwork> {
    let first = &items[members[0]];
    let target = pop.local_of[&first.vars[local]];
    let external = pop.local_of[&first.couplings[ci].1];
    let mut rows = vec![0u64];
    let mut sources = Vec::new();
    let mut weights = Vec::new();
    let mut source_vars = Vec::new();
    let mut delayed = Vec::new();
    let mut delays = Vec::new();
    let mut velocities = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut source_kind = None;
    let scale = first.couplings[ci].3;
    for &n in members {
        let (_, _, terms, node_scale) = &items[n].couplings[ci];
        if *node_scale != scale {
            return unsupported(format!(
                "the edges into {local} are scaled differently in the nodes of a population"
            ));
        }
        for &Term {
            weight: w,
            source: s,
            delay,
            velocity,
        } in terms
        {
            let kind = c.var(s).kind;
            if !matches!(kind, VarKind::State | VarKind::Algebraic) {
                return unsupported(format!(
                    "an edge reads {}, which is neither a state nor computed",
                    c.var(s).name
                ));
            }
            if *source_kind.get_or_insert(kind) != kind {
                return unsupported(format!(
                    "the edges into {local} read both states and computed variables"
                ));
            }
            sources.push(layout.slot[s.0 as usize]);
            weights.push(w);
            delayed.push(delay.map(|_| s));
            delays.push(delay.unwrap_or(0.0));
            velocities.push(velocity);
            // A delayed read comes from history: no ordering against this step's value.
            if delay.is_none() && seen.insert(s) {
                source_vars.push(s);
            }
        }
        rows.push(sources.len() as u64);
    }
    let width = rows[1] as usize;
    let dense = width > 0
        && delayed.iter().all(Option::is_none)
        && rows.windows(2).all(|r| (r[1] - r[0]) as usize == width)
        && sources.chunks(width).all(|row| row == &sources[..width]);
    Ok(Coupling {
        scale,
        pop: p,
        target,
        external,
        source_kind: source_kind.unwrap_or(VarKind::State),
        rows,
        sources,
        weights,
        delayed,
        delays,
        velocities,
        source_vars,
        dense,
    })
}

fn evaluation_order(
    pops: &[Population],
    couplings: &[Coupling],
    var_place: &HashMap<VarId, (usize, usize)>,
) -> Result<Vec<Group>, NotANetwork> {
    let mut groups: Vec<Group> = Vec::new();
    // (population, local) assigned → group index.
    let mut producer: HashMap<(usize, usize), usize> = HashMap::new();
    for (p, pop) in pops.iter().enumerate() {
        for (item, &(local, _)) in pop.assigns.iter().enumerate() {
            producer.insert((p, local), groups.len());
            groups.push(Group::Assign { pop: p, item });
        }
    }
    for (k, cp) in couplings.iter().enumerate() {
        producer.insert((cp.pop, cp.target), groups.len());
        groups.push(Group::Coupling(k));
    }
    let deps: Vec<Vec<usize>> = groups
        .iter()
        .map(|g| match *g {
            Group::Assign { pop, item } => {
                // Node 0's reads stand for every node's: the equations are the same.
                pops[pop].assign_reads[item]
                    .iter()
                    .filter_map(|&l| producer.get(&(pop, l)).copied())
                    .collect()
            }
            Group::Coupling(k) => couplings[k]
                .source_vars
                .iter()
                .filter_map(|v| var_place.get(v).and_then(|pl| producer.get(pl)).copied())
                .collect(),
        })
        .collect();
    match crate::model::build::topo_order(&deps) {
        Ok(order) => Ok(order.into_iter().map(|i| groups[i]).collect()),
        Err(_) => unsupported("the populations' assignments depend on each other in a loop"),
    }
}

/// Networks for the tests of every back end: `network_grid.c`'s circuit written as a PyRates
/// YAML edge list.
#[cfg(test)]
pub(crate) mod testing {
    pub use crate::model::test_models::network_grid::{delay_steps, weight, yaml, OPERATOR};

    use crate::model::build::tests::build;
    use crate::model::Circuit;

    /// The circuit `Net` of a YAML text (unlowered).
    pub fn load(text: &str) -> Circuit {
        let (c, diags) = build(text, "Net");
        c.unwrap_or_else(|| panic!("{diags:?}"))
    }

    /// `n` nodes of `network_grid.c`'s network, all to all, with noise on every node's `v'`
    /// (`+ randn()`), lowered and specialised (no parameter swept): what a back end compiles.
    pub fn noisy(n: usize) -> Circuit {
        let text = yaml(n, 0.0, 1e-4, |_, _| true).replace("G*r_in - (pi*r)^2", "G*r_in + randn() - (pi*r)^2");
        let low = crate::model::passes::lower_edges(&load(&text));
        crate::model::passes::specialize_params(&low, &[])
    }
}

#[cfg(test)]
mod tests;
