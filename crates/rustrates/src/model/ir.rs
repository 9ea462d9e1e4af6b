//! Circuit IR: variables and expressions in arenas with typed `u32` ids.

use std::sync::Arc;

use crate::syntax::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VarKind {
    /// Integrated by the solver; `value` is its initial value; exactly one [`Ode`].
    State,
    /// Constant during a run; `value` is the default a sweep may override per lane.
    Param,
    /// Driven from outside (time series or constant per lane); `value` is the value used when
    /// nothing drives it.
    Input,
    /// Computed from an expression at every right-hand-side evaluation; one [`Assign`].
    Algebraic,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Var {
    /// Full path: `node/op/var` (nested circuits: `sub/node/op/var`); edge parameters:
    /// `edge:SOURCE_NODE->TARGET_NODE:IDX/weight` (`delay`, `spread`, ...).
    pub name: String,
    pub kind: VarKind,
    pub value: f64,
    /// Flattened node path this variable belongs to (`None` for edge parameters).
    pub node: Option<String>,
    /// For an input that edges feed (lowered to [`VarKind::Algebraic`]): the input variable
    /// that carries an external signal added to the edge sum (default 0).
    pub external_input: Option<VarId>,
    /// Where the variable was declared, for diagnostics.
    pub span: Option<Span>,
}

impl Var {
    /// A new input (value 0) of this variable's node, named after it with `suffix`, declared
    /// where it is: the slot through which a lowering pass feeds this variable a sum or an
    /// external signal.
    pub fn feeding_input(&self, suffix: &str) -> Var {
        Var {
            name: format!("{}{suffix}", self.name),
            kind: VarKind::Input,
            value: 0.0,
            node: self.node.clone(),
            external_input: None,
            span: self.span,
        }
    }
}

/// The binary operators: the parser's, unchanged from source text to the kernels.
pub use crate::syntax::ast::BinOp;

/// Built-in functions. Arity is fixed per function (see [`Func::arity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Sinh,
    Cosh,
    Tanh,
    Arcsin,
    Arccos,
    Arctan,
    Arctan2,
    Exp,
    Log,
    Sqrt,
    Abs,
    /// 1 / (1 + exp(-x))
    Sigmoid,
    Max,
    Min,
    /// 1 for x > 0, 0.5 at 0, 0 below (numpy's heaviside(x, 0.5)).
    Heaviside,
    Floor,
    Ceil,
    Sign,
}

impl Func {
    pub fn arity(self) -> usize {
        match self {
            Func::Arctan2 | Func::Max | Func::Min => 2,
            _ => 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Const(f64),
    Var(VarId),
    /// Simulation time `t`.
    Time,
    Neg(ExprId),
    Binary(BinOp, ExprId, ExprId),
    Call(Func, Vec<ExprId>),
    /// `cond ? a : b` with cond != 0 as true.
    Select(ExprId, ExprId, ExprId),
    /// Value of a state or algebraic variable `delay` seconds ago (`past(x, d)`, `x(t - d)`).
    Past(VarId, ExprId),
    /// A standard normal sample, drawn once per lane and step (Euler–Maruyama style).
    Randn,
}

/// `d/dt var = rhs`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ode {
    pub var: VarId,
    pub rhs: ExprId,
    pub span: Option<Span>,
}

/// `var = rhs`, evaluated before the ODEs.
#[derive(Clone, Debug, PartialEq)]
pub struct Assign {
    pub var: VarId,
    pub rhs: ExprId,
    pub span: Option<Span>,
}

/// An edge as written in the template, kept for `param_map` and for the IR dump. The
/// `lower_edges` pass turns edges into assignments of their target inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub source_node: String,
    pub target_node: String,
    /// Counts edges between the same (source_node, target_node) pair in template order, from 0.
    pub idx: usize,
    pub source: VarId,
    pub target: VarId,
    /// Param variables of this edge, by name: `weight` always; `delay`, `spread` and any
    /// edge-template variable when present.
    pub params: Vec<(String, VarId)>,
    pub span: Option<Span>,
}

impl Edge {
    /// The edge's parameter variable `name` (`weight`, `delay`, …), if it has one.
    pub fn param(&self, name: &str) -> Option<VarId> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }
}

/// A `connectivity:` block as one node: `target[i] (+)= scale · Σ_j w[i][j] · source[j](t − d[i][j])`
/// over the row's entries, in ascending source order — the terms of the equivalent edge list
/// for that target, in its order. Kept instead of one [`Edge`] and one weight parameter per
/// entry (10⁶ at N = 1000); weights and delays are data, not sweepable (the scale and the
/// velocity are parameters; naming one entry writes the block out, `passes::write_out`).
///
/// Unlowered (`lowered == false`), the targets are the inputs the block feeds. `lower_edges`
/// keeps a block whose targets nothing else feeds: each target becomes an algebraic whose
/// assignment is its external input alone, `lowered` is set, and the block's sum is added by
/// whoever runs the coupling (the C back end's loops) — or, for any other kernel,
/// `passes::expand_couplings` writes the sum into the assignment, exactly as the edge list.
#[derive(Clone, Debug, PartialEq)]
pub struct Coupling {
    /// `<circuit prefix><name>` (`connectivity0`, or the block's `name:`).
    pub name: String,
    /// Per source node (column), the variable read.
    pub sources: Vec<VarId>,
    /// Per target node (row), the input fed.
    pub targets: Vec<VarId>,
    /// Row `i`'s entries are `row_starts[i]..row_starts[i + 1]` of `weights` (and `delays`).
    pub row_starts: Vec<usize>,
    /// Source (column) of each entry; empty when the block is dense (every row holds every
    /// source, in order), which saves 4 bytes per entry and lets loops use the matrix form.
    pub columns: SharedEntries<u32>,
    /// Per entry. Shared, not copied, by every pass's copy of the circuit and by the engine's
    /// couplings: a dense block's weights are the matrix as read (`.npy` → here, no copy).
    pub weights: SharedEntries<f64>,
    /// Per entry, its delay in seconds, when the block has a `delay`; with a `velocity`,
    /// its length instead (the delay is [`conduction_delay`]`(length, velocity)`). Shared
    /// as the weights are.
    pub delays: Option<SharedEntries<f64>>,
    /// The conduction velocity of a block given by `lengths`: a parameter
    /// (`<name>/velocity`, read per lane when swept, so lanes read different delays) or,
    /// never left behind by `specialize_params` (which folds the delays then), a constant.
    pub velocity: Option<Scale>,
    /// The block's `scale`, added as `ext + scale · (Σ …)`.
    pub scale: Option<Scale>,
    pub span: Option<Span>,
    /// See the type's docs.
    pub lowered: bool,
    /// Where the block sits in the edge sequence: after the first `after_edges` of
    /// [`Circuit::edges`] (a target fed by edges and blocks sums their terms in that order).
    pub after_edges: usize,
}

/// A coupling's per-entry data (10⁶ values at N = 1000), shared by every copy of the circuit:
/// cloning a circuit (each pass does) shares it, and a dense block's weights are the matrix
/// as the `.npy` reader filled it. Reads as a slice; writing through it (tests, rewrites)
/// copies it first when it is shared, so no other circuit sees the change.
#[derive(Clone, Debug, Default)]
pub struct SharedEntries<T>(Arc<[T]>);

impl<T> SharedEntries<T> {
    /// The data itself, for a consumer that keeps it (the engine's couplings) without a copy.
    pub fn shared(&self) -> &Arc<[T]> {
        &self.0
    }
}

impl<T> std::ops::Deref for SharedEntries<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: Clone> std::ops::DerefMut for SharedEntries<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: PartialEq> PartialEq for SharedEntries<T> {
    /// Equal values; the same data is equal without reading it (a kernel cache compares
    /// circuits whose blocks share their weights).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0[..] == other.0[..]
    }
}

impl<T> From<Arc<[T]>> for SharedEntries<T> {
    fn from(data: Arc<[T]>) -> Self {
        SharedEntries(data)
    }
}

impl<T> From<Vec<T>> for SharedEntries<T> {
    fn from(data: Vec<T>) -> Self {
        SharedEntries(data.into())
    }
}

impl<T> FromIterator<T> for SharedEntries<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        SharedEntries(iter.into_iter().collect())
    }
}

/// A coupling's scale: a parameter (read per lane when swept) or, once a sweep has folded
/// the parameters it does not vary, a constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Read from the parameter array at this variable's slot, per lane.
    Param(VarId),
    Const(f64),
}

impl Coupling {
    pub fn is_dense(&self) -> bool {
        self.columns.is_empty()
    }
    /// Number of entries (edges) of the block.
    pub fn len(&self) -> usize {
        self.weights.len()
    }
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }
    /// Row `i`'s entries: `(entry index, source column)`, in ascending source order.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (a, b) = (self.row_starts[i], self.row_starts[i + 1]);
        (a..b).map(move |k| {
            let col = if self.columns.is_empty() {
                k - a
            } else {
                self.columns[k] as usize
            };
            (k, col)
        })
    }
    /// The entry's delay, or `None` when the block has no delays. With a velocity parameter
    /// the delay is not one number but one per lane: NaN here (callers that need numbers
    /// check [`Coupling::per_lane_delays`] first; the expansion reads the parameter).
    pub fn delay(&self, k: usize) -> Option<f64> {
        let d = self.delays.as_ref()?[k];
        Some(match self.velocity {
            Some(Scale::Const(v)) => conduction_delay(d, v),
            Some(Scale::Param(_)) => f64::NAN,
            None => d,
        })
    }
    /// The entry from source column `j` into target row `i`, if the block has one.
    pub fn entry(&self, i: usize, j: usize) -> Option<usize> {
        let (a, b) = (self.row_starts[i], self.row_starts[i + 1]);
        if self.columns.is_empty() {
            (j < b - a).then_some(a + j)
        } else {
            self.columns[a..b].binary_search(&(j as u32)).ok().map(|k| a + k)
        }
    }
    /// Whether the delays are `length / velocity` with the velocity a parameter.
    pub fn per_lane_delays(&self) -> bool {
        matches!(self.velocity, Some(Scale::Param(_)))
    }
}

/// The delay of a connection of `length` at conduction `velocity`: the one rule for every
/// back end and lane (the expanded form computes the same division as an expression, so a
/// lane's delay has the same bits as this). Whether that delay is a whole number of steps is
/// then decided per read, as for any delay (`kernel::ring::whole_steps`): per lane, since
/// lanes of a velocity sweep have their own delays.
pub fn conduction_delay(length: f64, velocity: f64) -> f64 {
    length / velocity
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Circuit {
    /// Template name (`Net3`), used for sweep labels `Net3_0`, ...
    pub name: String,
    /// Flattened node paths in template order.
    pub nodes: Vec<String>,
    /// For each node, the operator names it runs, in evaluation order.
    pub node_operators: Vec<(String, Vec<String>)>,
    pub vars: Vec<Var>,
    pub exprs: Vec<Expr>,
    pub odes: Vec<Ode>,
    /// In evaluation order.
    pub assigns: Vec<Assign>,
    pub edges: Vec<Edge>,
    /// `connectivity:` blocks kept as matrices (one per block, not one edge per entry); see
    /// [`Coupling`].
    pub couplings: Vec<Coupling>,
    /// Complex-valued variables, each lowered to two real variables `name.real` and
    /// `name.imag` of the same kind (complex arithmetic is expanded into real expressions
    /// when the equations are built, so kernels only ever see reals).
    pub complex: Vec<ComplexVar>,
}

/// A complex-valued variable of the template and its two real parts in the IR.
#[derive(Clone, Debug, PartialEq)]
pub struct ComplexVar {
    /// The variable's path as written (`p/kmo_op/z`).
    pub name: String,
    pub re: VarId,
    pub im: VarId,
}

/// An edge named as the edge list names it: `edge:SOURCE_NODE->TARGET_NODE:IDX/var`, split
/// into its nodes, index and variable (`None`: not such a name).
pub fn parse_edge_name(name: &str) -> Option<(&str, &str, usize, &str)> {
    // Node paths hold '/' (nested circuits) and variables may (`op/var`); ':' only
    // separates the index.
    let rest = name.strip_prefix("edge:")?;
    let (pair, tail) = rest.rsplit_once(':')?;
    let (idx, var) = tail.split_once('/')?;
    let (src, tgt) = pair.split_once("->")?;
    Some((src, tgt, idx.parse().ok()?, var))
}

/// One item of a circuit's coupling declarations, in the order they were written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declared {
    /// `edges[i]`.
    Edge(usize),
    /// `couplings[k]` (a `connectivity:` block).
    Block(usize),
}

impl Circuit {
    /// The entry of a `connectivity:` block that the equivalent edge list would number
    /// `edge:source_node->target_node:idx`, as `(block, entry)`. The one numbering rule for
    /// edge lists and blocks alike: an edge's `idx` counts the edges between the same two nodes
    /// declared before it, a block's entries counting as the edges they stand for (a block
    /// stands where it is declared: after its first `after_edges` edges, after the blocks
    /// declared before it). The builder numbers edges so; this finds a block's entry again.
    pub fn block_entry_named(&self, source_node: &str, target_node: &str, idx: usize) -> Option<(usize, usize)> {
        let pair = |e: &Edge| e.source_node == source_node && e.target_node == target_node;
        let node_of = |ids: &[VarId], node: &str| ids.iter().position(|v| self.var(*v).node.as_deref() == Some(node));
        let mut seen = 0;
        let mut next_edge = 0;
        for (k, cp) in self.couplings.iter().enumerate() {
            seen += self.edges[next_edge..cp.after_edges.min(self.edges.len())]
                .iter()
                .filter(|e| pair(e))
                .count();
            next_edge = next_edge.max(cp.after_edges.min(self.edges.len()));
            let (Some(j), Some(i)) = (node_of(&cp.sources, source_node), node_of(&cp.targets, target_node)) else {
                continue;
            };
            if let Some(e) = cp.entry(i, j) {
                if seen == idx {
                    return Some((k, e));
                }
                seen += 1;
            }
        }
        None
    }

    /// Edges and blocks in declaration order: block `k` stands after its first
    /// `after_edges` edges and after the blocks before it.
    pub fn declaration_order(&self) -> Vec<Declared> {
        let mut order = Vec::with_capacity(self.edges.len() + self.couplings.len());
        let mut next_block = 0;
        for pos in 0..=self.edges.len() {
            while next_block < self.couplings.len() && self.couplings[next_block].after_edges <= pos {
                order.push(Declared::Block(next_block));
                next_block += 1;
            }
            if pos < self.edges.len() {
                order.push(Declared::Edge(pos));
            }
        }
        order
    }

    /// The complex variable `name` (`p/kmo_op/z`) lowers to, if it is one.
    pub fn find_complex(&self, name: &str) -> Option<&ComplexVar> {
        self.complex.iter().find(|z| z.name == name)
    }
    /// The imaginary part of the complex variable whose real part is `re`.
    pub fn imag_part(&self, re: VarId) -> Option<VarId> {
        self.complex.iter().find(|z| z.re == re).map(|z| z.im)
    }
    pub fn var(&self, id: VarId) -> &Var {
        &self.vars[id.0 as usize]
    }
    pub fn expr(&self, id: ExprId) -> &Expr {
        &self.exprs[id.0 as usize]
    }
    pub fn add_var(&mut self, var: Var) -> VarId {
        self.vars.push(var);
        VarId(self.vars.len() as u32 - 1)
    }
    pub fn add_expr(&mut self, expr: Expr) -> ExprId {
        self.exprs.push(expr);
        ExprId(self.exprs.len() as u32 - 1)
    }
    pub fn find_var(&self, name: &str) -> Option<VarId> {
        self.vars.iter().position(|v| v.name == name).map(|i| VarId(i as u32))
    }
    /// The ids of the variables `keep` accepts, in declaration order.
    pub fn var_ids_where(&self, mut keep: impl FnMut(VarId, &Var) -> bool) -> Vec<VarId> {
        (0..self.vars.len() as u32)
            .map(VarId)
            .filter(|&id| keep(id, self.var(id)))
            .collect()
    }
    /// The variable `name`, or the elements `name[0]`, `name[1]`, ... of the vector variable
    /// it names (empty: neither).
    pub fn find_vars(&self, name: &str) -> Vec<VarId> {
        if let Some(id) = self.find_var(name) {
            return vec![id];
        }
        (0..).map_while(|i| self.find_var(&format!("{name}[{i}]"))).collect()
    }
    /// Variables of one kind in slot order: states in `odes` order, algebraics in `assigns`
    /// order, params and inputs in declaration order. Kernels lay out their arrays this way.
    pub fn layout(&self) -> Layout {
        let mut l = Layout {
            slot: vec![u32::MAX; self.vars.len()],
            ..Layout::default()
        };
        for o in &self.odes {
            l.slot[o.var.0 as usize] = l.states.len() as u32;
            l.states.push(o.var);
        }
        for a in &self.assigns {
            l.slot[a.var.0 as usize] = l.algebraics.len() as u32;
            l.algebraics.push(a.var);
        }
        for (i, v) in self.vars.iter().enumerate() {
            let id = VarId(i as u32);
            match v.kind {
                VarKind::Param => {
                    l.slot[i] = l.params.len() as u32;
                    l.params.push(id);
                }
                VarKind::Input => {
                    l.slot[i] = l.inputs.len() as u32;
                    l.inputs.push(id);
                }
                VarKind::State | VarKind::Algebraic => {}
            }
        }
        l
    }
}

/// Where each variable lives in a kernel's structure-of-arrays buffers
/// (`y[state][lane]`, `p[param][lane]`, `u[input][lane]`, `a[algebraic][lane]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    pub states: Vec<VarId>,
    pub params: Vec<VarId>,
    pub inputs: Vec<VarId>,
    pub algebraics: Vec<VarId>,
    /// Slot of every variable within its kind's array, indexed by `VarId`.
    pub slot: Vec<u32>,
}
