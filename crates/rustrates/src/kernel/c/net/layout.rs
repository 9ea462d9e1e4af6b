//! Where a network's data sits in the kernel's runtime arrays (`NetData`): couplings' rows,
//! sources, weights and delays, per-node constants and noise sources.

use std::collections::HashMap;

use crate::model::network::{Coupling, Network};
use crate::model::{ExprId, Layout};

use super::NetData;

/// The largest constant delay of the network's couplings: the ring buffer's span (`None`: no
/// delays; per-lane delays, known once the lanes' velocities are, widen it in
/// `DelayRing::new`).
pub(super) fn ring_span(net: &Network) -> Option<f64> {
    net.couplings
        .iter()
        .filter(|c| c.has_delays())
        .flat_map(|c| c.delays.iter().zip(&c.velocities))
        .map(|(d, v)| if v.is_some() { 0.0 } else { *d })
        .reduce(f64::max)
}

/// Where one coupling's data starts.
#[derive(Clone, Copy)]
pub(super) struct CouplingAt {
    /// Row offsets and source slots in NI, weights in ND.
    pub(super) rows: usize,
    pub(super) sources: usize,
    /// In NI: a dense coupling's source spacing ([`source_spacing`]).
    pub(super) spacing: usize,
    pub(super) weights: usize,
    /// When it has delays: per term in row order, the delayed variable (NI) and the delay
    /// (ND); and the same terms in column order ([`ColumnOrder`]).
    pub(super) delays: Option<Delayed>,
}

#[derive(Clone, Copy)]
pub(super) struct Delayed {
    pub(super) vars: usize,
    pub(super) secs: usize,
    pub(super) columns: ColumnOrder,
    /// Delays per lane: per term in row order the velocity's parameter slot (NI, `~0`: the
    /// term's delay is constant), and `columns.whole` counts in `NetData::lane_terms`.
    pub(super) per_lane: Option<usize>,
}

/// A delayed coupling's terms in column order (term 0 of every row, then term 1, ...): target
/// row, source slot and delayed variable (NI), weight and delay (ND), and the first term in
/// `NetData::delay_terms` (whose whole steps the ring decides, in this order too).
#[derive(Clone, Copy)]
pub(super) struct ColumnOrder {
    pub(super) terms: usize,
    pub(super) rows: usize,
    pub(super) sources: usize,
    pub(super) vars: usize,
    pub(super) weights: usize,
    pub(super) delays: usize,
    pub(super) whole: usize,
    /// When every row reads the same sources in the same order: per column (NI) the variable
    /// all its delayed terms read (`~0`: none), for `rr_ring_columns`.
    pub(super) column_vars: Option<usize>,
}

/// Where the data of each coupling and per-node table starts.
pub(super) struct Offsets {
    pub(super) couplings: Vec<CouplingAt>,
    /// Per population: where its per-node tables start.
    pub(super) tables: Vec<NodeTables>,
}

/// A population's per-node tables.
#[derive(Default)]
pub(super) struct NodeTables {
    /// Node-0 constant → offset of its per-node values in ND.
    pub(super) consts: HashMap<ExprId, usize>,
    /// Node-0 noise site (`randn()`) → offset of its per-node noise sources in NI.
    pub(super) noise: HashMap<ExprId, usize>,
}

/// The slot distance between consecutive sources when they are evenly spaced upwards (the
/// dense loops then walk a pointer instead of loading a slot per column), else 0. At least two
/// sources, so the loops' first-source read is within the coupling's data.
pub(crate) fn source_spacing(sources: &[u32]) -> u64 {
    let step = match sources {
        [a, b, ..] if b > a => b - a,
        _ => return 0,
    };
    let even = sources.windows(2).all(|w| w[1].checked_sub(w[0]) == Some(step));
    if even {
        u64::from(step)
    } else {
        0
    }
}

/// For a delayed coupling whose rows all read the same sources in the same order (so column
/// `c` of the column order is terms `c·n + i`, rows `i` in order): per column the variable its
/// delayed terms read (`u64::MAX`: none of them is delayed). `None` for any other coupling, or
/// when a term is read now yet has a delay (the columns loop tells a current read by its zero
/// delay, `rr_ring_columns`).
pub(super) fn column_vars(cp: &Coupling) -> Option<Vec<u64>> {
    let width = cp.columns();
    let n = cp.len();
    let columnar = width > 0
        && cp.rows.windows(2).all(|r| r[1] - r[0] == width as u64)
        && cp.sources.chunks(width).all(|row| row == &cp.sources[..width]);
    if !columnar {
        return None;
    }
    let mut vars = Vec::with_capacity(width);
    for c in 0..width {
        let mut var = u64::MAX;
        for i in 0..n {
            let k = i * width + c;
            match cp.delayed[k] {
                Some(v) if var == u64::MAX || var == u64::from(v.0) => var = u64::from(v.0),
                Some(_) => return None,
                None if cp.delays[k] != 0.0 => return None,
                None => {}
            }
        }
        vars.push(var);
    }
    Some(vars)
}

pub(super) fn data(net: &Network, layout: &Layout) -> (NetData, Offsets) {
    let mut d = NetData::default();
    let mut couplings = Vec::new();
    for cp in &net.couplings {
        let rows = d.ni.len();
        d.ni.extend_from_slice(&cp.rows);
        let sources = d.ni.len();
        if cp.dense {
            d.ni.extend(cp.sources[..cp.columns()].iter().map(|&s| u64::from(s)));
        } else {
            d.ni.extend(cp.sources.iter().map(|&s| u64::from(s)));
        }
        let spacing = d.ni.len();
        d.ni.push(if cp.dense {
            source_spacing(&cp.sources[..cp.columns()])
        } else {
            0
        });
        let weights = d.nd.len();
        d.nd.extend_from_slice(&cp.weights);
        let delays = cp.has_delays().then(|| {
            let var_of = |k: usize| cp.delayed[k].map_or(u64::MAX, |v| u64::from(v.0));
            let vars = d.ni.len();
            d.ni.extend((0..cp.delayed.len()).map(var_of));
            let secs = d.nd.len();
            d.nd.extend_from_slice(&cp.delays);
            let width = (0..cp.len()).map(|i| cp.rows[i + 1] - cp.rows[i]).max().unwrap_or(0);
            #[allow(clippy::cast_possible_truncation)]
            let order: Vec<(usize, usize)> = (0..width)
                .flat_map(|c| (0..cp.len()).map(move |i| (i, c)))
                .filter(|&(i, c)| cp.rows[i] + c < cp.rows[i + 1])
                .map(|(i, c)| (i, (cp.rows[i] + c) as usize))
                .collect();
            let rows = d.ni.len();
            d.ni.extend(order.iter().map(|&(i, _)| i as u64));
            let sources = d.ni.len();
            d.ni.extend(order.iter().map(|&(_, k)| u64::from(cp.sources[k])));
            let cvars = d.ni.len();
            d.ni.extend(order.iter().map(|&(_, k)| var_of(k)));
            let weights = d.nd.len();
            d.nd.extend(order.iter().map(|&(_, k)| cp.weights[k]));
            let delays = d.nd.len();
            d.nd.extend(order.iter().map(|&(_, k)| cp.delays[k]));
            let slot_of = |k: usize| cp.velocities[k].map_or(u32::MAX, |v| layout.slot[v.0 as usize]);
            let column_vars = (!cp.per_lane_delays()).then(|| column_vars(cp)).flatten().map(|vars| {
                let at = d.ni.len();
                d.ni.extend(vars);
                at
            });
            let (whole, per_lane) = if cp.per_lane_delays() {
                let velocities = d.ni.len();
                d.ni.extend((0..cp.delayed.len()).map(|k| match slot_of(k) {
                    u32::MAX => u64::MAX,
                    s => u64::from(s),
                }));
                let first = d.lane_terms.len();
                d.lane_terms
                    .extend(order.iter().map(|&(_, k)| (cp.delays[k], slot_of(k))));
                (first, Some(velocities))
            } else {
                let first = d.delay_terms.len();
                d.delay_terms.extend(order.iter().map(|&(_, k)| cp.delays[k]));
                (first, None)
            };
            Delayed {
                per_lane,
                vars,
                secs,
                columns: ColumnOrder {
                    terms: order.len(),
                    rows,
                    sources,
                    vars: cvars,
                    weights,
                    delays,
                    whole,
                    column_vars,
                },
            }
        });
        couplings.push(CouplingAt {
            rows,
            sources,
            spacing,
            weights,
            delays,
        });
    }
    let tables = net
        .populations
        .iter()
        .map(|p| {
            let mut t = NodeTables::default();
            for (e, values) in &p.node_consts {
                t.consts.insert(*e, d.nd.len());
                d.nd.extend_from_slice(values);
            }
            for (e, sources) in &p.node_noise {
                t.noise.insert(*e, d.ni.len());
                d.ni.extend(sources.iter().map(|&s| u64::from(s)));
            }
            t
        })
        .collect();
    (d, Offsets { couplings, tables })
}
