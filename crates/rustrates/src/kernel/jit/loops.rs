//! Population loops: a network's node equations compiled once per population, as a loop
//! over its nodes, instead of once per node (see [`crate::model::network`]).
//!
//! Taken for kernels whose couplings the engine runs (`kernel::coupling`: each target reads
//! its sum from an input slot), so every node equation reads its own node's variables only.
//! Node `i`'s copy of a template variable sits at slot `base + i·stride` of its kind's array,
//! so the loop body addresses it from the node index; constants whose value differs between
//! nodes are read from a table the kernel owns, and so is each node's noise source (node
//! `i`'s `randn()` draws its own stream, the unrolled copy's). Each node evaluates exactly the operations of
//! its unrolled copy, in the same order, so the loops agree with the unrolled code bit for
//! bit (constant folding stops at the per-node constants; it never changes a value).

use std::collections::{HashMap, HashSet};

use crate::model::network::{self, Network, NotANetwork};
use crate::model::{Circuit, ExprId, VarId};

/// The loops of one kernel and the per-node constants they read.
#[derive(Debug)]
pub(super) struct NetLoops {
    pub(super) pops: Vec<PopLoop>,
    /// Per-node constants and noise sources (as `f64`: exact below 2⁵³), population after
    /// population, one run of `nodes` values per constant or noise site; the generated code
    /// holds its address (the kernel keeps it alive).
    pub(super) table: Box<[f64]>,
}

/// One population's loop body: node 0's equations, its variables' slots as functions of the
/// node index, and where its per-node constants start in [`NetLoops::table`].
#[derive(Debug)]
pub(super) struct PopLoop {
    pub(super) nodes: usize,
    /// Node 0's variable → (slot of node 0, slots between consecutive nodes).
    pub(super) slots: HashMap<VarId, (u32, u32)>,
    /// Node 0's assignments in the circuit's (evaluation) order.
    pub(super) assigns: Vec<(VarId, ExprId)>,
    pub(super) odes: Vec<(VarId, ExprId)>,
    /// Node 0's constant expression → index in the table of node 0's value.
    pub(super) tables: HashMap<ExprId, usize>,
    /// Node 0's `randn()` → index in the table of node 0's noise source.
    pub(super) noise: HashMap<ExprId, usize>,
}

impl NetLoops {
    /// The loops of `circuit` (a kernel's circuit, couplings already run by the engine), or
    /// why it keeps the unrolled code: it is not a network, or an edge sum is still written
    /// out in it (the loops run node equations only). `planned` is `circuit`'s
    /// [`network::plan`] when the caller has it already (planning 1,000 nodes is a good part
    /// of a compile), `None` to plan here.
    pub(super) fn plan(
        circuit: &Circuit,
        planned: Option<Result<Network, NotANetwork>>,
    ) -> Result<NetLoops, NotANetwork> {
        let net: Network = planned.unwrap_or_else(|| network::plan(circuit))?;
        if !net.couplings.is_empty() {
            return Err(NotANetwork::Unsupported(
                "edge sums written out in the node equations (the JIT's loops run couplings through the engine only)"
                    .into(),
            ));
        }
        let mut table = Vec::new();
        let mut pops = Vec::with_capacity(net.populations.len());
        for pop in &net.populations {
            let slots: HashMap<VarId, (u32, u32)> = pop.locals.iter().map(|l| (l.var, (l.base, l.stride))).collect();
            let assigned: HashSet<VarId> = pop.assigns.iter().map(|&(k, _)| pop.locals[k].var).collect();
            let assigns = circuit
                .assigns
                .iter()
                .filter(|a| assigned.contains(&a.var))
                .map(|a| (a.var, a.rhs))
                .collect();
            let odes = pop.odes.iter().map(|&(k, rhs)| (pop.locals[k].var, rhs)).collect();
            let mut tables = HashMap::with_capacity(pop.node_consts.len());
            for (e, values) in &pop.node_consts {
                tables.insert(*e, table.len());
                table.extend_from_slice(values);
            }
            let mut noise = HashMap::with_capacity(pop.node_noise.len());
            for (e, sources) in &pop.node_noise {
                noise.insert(*e, table.len());
                table.extend(sources.iter().map(|&s| f64::from(s)));
            }
            pops.push(PopLoop {
                nodes: pop.len(),
                slots,
                assigns,
                odes,
                tables,
                noise,
            });
        }
        Ok(NetLoops {
            pops,
            table: table.into_boxed_slice(),
        })
    }

    /// Expressions whose value differs between the nodes of a loop (not foldable).
    pub(super) fn per_node_constants(&self) -> HashSet<ExprId> {
        self.pops.iter().flat_map(|p| p.tables.keys().copied()).collect()
    }

    /// Expressions the loops compile (each population's body once): what the function's
    /// size, and so its compile time, depends on.
    pub(super) fn body_exprs(&self, circuit: &Circuit) -> usize {
        let mut seen = HashSet::new();
        let mut stack: Vec<ExprId> = self
            .pops
            .iter()
            .flat_map(|p| p.assigns.iter().chain(&p.odes).map(|&(_, e)| e))
            .collect();
        while let Some(e) = stack.pop() {
            if seen.insert(e) {
                stack.extend(super::codegen::children(circuit.expr(e)));
            }
        }
        seen.len()
    }
}
