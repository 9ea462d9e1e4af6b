//! `plan` on `network_grid.c`'s circuit: populations, couplings, per-node tables, refusals.

use super::testing::*;
use super::*;
use crate::model::passes::{lower_edges, specialize_params};

fn vars_named(c: &Circuit, suffix: &str) -> Vec<VarId> {
    c.var_ids_where(|_, v| v.name.ends_with(suffix))
}

/// Lowered, with every parameter but `G` and `eta` folded (what a sweep over them compiles).
fn swept(c: &Circuit) -> Circuit {
    let low = lower_edges(c);
    let per_lane = low.var_ids_where(|_, v| v.name.ends_with("/G") || v.name.ends_with("/eta"));
    specialize_params(&low, &per_lane)
}

#[test]
fn plan_all_to_all_is_one_population_with_a_dense_coupling_of_the_edge_weights() {
    let n = 6;
    let c = swept(&load(&yaml(n, 0.0, 1e-4, |_, _| true)));
    let net = plan(&c).expect("a network");
    assert_eq!(net.populations.len(), 1);
    let pop = &net.populations[0];
    assert_eq!(pop.nodes, (0..n).map(|i| format!("n{i}")).collect::<Vec<_>>());
    assert_eq!(pop.odes.len(), 2);
    assert!(pop.node_consts.is_empty(), "every node has the same constants");
    assert_eq!(net.couplings.len(), 1);
    let cp = &net.couplings[0];
    assert!(cp.dense);
    assert_eq!(cp.columns(), n);
    assert_eq!(cp.source_kind, VarKind::State);
    let layout = c.layout();
    for i in 0..n {
        for j in 0..n {
            // Row i, column j: the weight of j -> i, read from the source's r.
            assert_eq!(cp.weights[i * n + j], weight(n, i, j), "W[{i}][{j}]");
            let r_j = c.find_var(&format!("n{j}/qif_net_op/r")).expect("r");
            assert_eq!(cp.sources[i * n + j], layout.slot[r_j.0 as usize]);
        }
    }
    // The target of node i is its r_in, evenly spaced.
    let tgt = pop.locals[cp.target];
    for i in 0..n {
        let r_in = c.find_var(&format!("n{i}/qif_net_op/r_in")).expect("r_in");
        assert_eq!(tgt.slot(i), layout.slot[r_in.0 as usize] as usize);
    }
    assert_eq!(net.order, vec![Group::Coupling(0)]);
}

#[test]
fn plan_ring_is_sparse_and_keeps_the_edge_order_of_each_row() {
    let n = 5;
    // Node i hears i+1 and i-1 (mod n), written in ascending source order.
    let ring = |i: usize, j: usize| j == (i + 1) % n || (j + 1) % n == i;
    let c = swept(&load(&yaml(n, 0.0, 1e-4, ring)));
    let net = plan(&c).expect("a network");
    let cp = &net.couplings[0];
    assert!(!cp.dense, "rows read different sources");
    assert_eq!(cp.rows, vec![0, 2, 4, 6, 8, 10]);
    let w: Vec<f64> = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| ring(i, j)).map(move |j| weight(n, i, j)))
        .collect();
    assert_eq!(cp.weights, w);
}

#[test]
fn plan_delays_are_per_term_and_only_current_reads_order_the_groups() {
    let (n, dt, dmax) = (5, 1e-4, 0.002);
    let c = swept(&load(&yaml(n, dmax, dt, |_, _| true)));
    let net = plan(&c).expect("a network");
    let cp = &net.couplings[0];
    assert!(cp.has_delays() && !cp.dense);
    for i in 0..n {
        for j in 0..n {
            let k = i * n + j;
            let d = delay_steps(dmax, dt, i, j) as f64 * dt;
            let r_j = c.find_var(&format!("n{j}/qif_net_op/r")).expect("r");
            // A zero delay is an ordinary read (the reference evaluator's rule).
            assert_eq!(cp.delayed[k], (d > 0.0).then_some(r_j), "term {i},{j}");
            assert!(
                (cp.delays[k] - d).abs() <= 1e-15,
                "term {i},{j}: {} vs {d}",
                cp.delays[k]
            );
        }
    }
}

#[test]
fn plan_per_node_constants_become_a_table() {
    let n = 4;
    let mut c = lower_edges(&load(&yaml(n, 0.0, 1e-4, |_, _| true)));
    for i in 0..n {
        let eta = c.find_var(&format!("n{i}/qif_net_op/eta")).expect("eta");
        c.vars[eta.0 as usize].value = -6.0 + i as f64;
    }
    let c = specialize_params(&c, &[]);
    let net = plan(&c).expect("a network");
    let pop = &net.populations[0];
    assert_eq!(pop.node_consts.len(), 1, "only eta differs between nodes");
    assert_eq!(pop.node_consts[0].1, vec![-6.0, -5.0, -4.0, -3.0]);
}

#[test]
fn plan_declines_small_circuits_per_lane_delays_and_per_lane_weights() {
    // Three nodes: below MIN_POPULATION, the unrolled code stays.
    let small = swept(&load(&yaml(3, 0.0, 1e-4, |_, _| true)));
    assert_eq!(plan(&small), Err(NotANetwork::Small));
    // Delays that vary per lane (a sweep over conduction delays) are not data yet.
    let low = lower_edges(&load(&yaml(5, 0.002, 1e-4, |_, _| true)));
    let delays = vars_named(&low, "/delay");
    let per_lane_delays = specialize_params(&low, &delays);
    match plan(&per_lane_delays) {
        Err(NotANetwork::Unsupported(why)) => assert!(why.contains("constant weights and delays"), "{why}"),
        other => panic!("expected a reason, got {other:?}"),
    }
    // Weights left as per-lane parameters (a sweep over one edge's weight).
    let per_lane = lower_edges(&load(&yaml(5, 0.0, 1e-4, |_, _| true)));
    assert!(matches!(plan(&per_lane), Err(NotANetwork::Unsupported(_))));
    // The two-population reference circuit keeps its code.
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/reference_qif.yaml");
    let text = std::fs::read_to_string(p).expect("reference circuit");
    let mut t = text.replace("pc_iin:", "Net:");
    t.push('\n');
    let reference = swept(&load(&t));
    assert_eq!(plan(&reference), Err(NotANetwork::Small));
}

/// The `randn()` in node `i`'s ODE for `v` (the unrolled code's noise source of that node).
fn noise_site_of(c: &Circuit, i: usize) -> u32 {
    let v = c.find_var(&format!("n{i}/qif_net_op/v")).expect("v");
    let rhs = c.odes.iter().find(|o| o.var == v).expect("v's ODE").rhs;
    let mut stack = vec![rhs];
    while let Some(e) = stack.pop() {
        match c.expr(e) {
            Expr::Randn => return e.0,
            Expr::Neg(a) => stack.push(*a),
            Expr::Binary(_, a, b) => stack.extend([*a, *b]),
            Expr::Call(_, args) => stack.extend(args),
            Expr::Select(x, a, b) => stack.extend([*x, *a, *b]),
            _ => {}
        }
    }
    panic!("node {i} draws no noise")
}

#[test]
fn plan_noise_sites_are_one_per_template_each_node_drawing_its_own_source() {
    for n in [5, 40] {
        let c = noisy(n);
        let net = plan(&c).expect("a noisy network is a network");
        assert_eq!(net.populations.len(), 1);
        let pop = &net.populations[0];
        // The loop body is node 0's: one noise site whatever N, its table one source per node.
        assert_eq!(pop.node_noise.len(), 1, "N = {n}");
        let (site, sources) = &pop.node_noise[0];
        assert_eq!(site.0, noise_site_of(&c, 0));
        let want: Vec<u32> = (0..n).map(|i| noise_site_of(&c, i)).collect();
        assert_eq!(sources, &want, "N = {n}");
        let mut distinct = want.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), n, "every node its own stream");
    }
}
