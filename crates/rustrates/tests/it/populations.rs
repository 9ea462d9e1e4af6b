//! Populations (nodes made from one template) with per-node inputs and per-node noise: every
//! node reads its own input series and its own noise stream, and a point's results do not
//! depend on how the grid is cut into blocks, threads and chunks (the C back end and the JIT
//! run both as population loops).

use std::sync::Arc;

use indexmap::IndexMap;
use rustrates::kernel::{Backend, Kernel, KernelOptions};
use rustrates::model::network::plan;
use rustrates::model::passes::{lower_edges, specialize_params};
use rustrates::model::test_models::network_grid;
use rustrates::solve::{Method, Signal, SimConfig};
use rustrates::sweep::{Grid, ParamMap, SweepResult, SweepSpec};

use crate::support::{backends, bits, load_net, run};

const NODES: usize = 5;

fn node_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

/// `NODES` uncoupled Ornstein–Uhlenbeck nodes `x' = -(x - mu) + s·randn()` (Euler–Maruyama
/// with s = σ/√dt), plus a ring of weak edges so the nodes form one population of a network.
fn ou_yaml(s: f64) -> String {
    let mut y = format!(
        r#"
ou_op:
  base: OperatorTemplate
  equations: "x' = -(x - mu) + s*randn() + 1e-3*x_in"
  variables:
    x: output(0.0)
    mu: 0.0
    s: {s:?}
    x_in: input(0.0)
ou_pop: {{base: NodeTemplate, operators: [ou_op]}}
Net:
  base: CircuitTemplate
  nodes:
"#
    );
    for n in node_names(NODES) {
        y.push_str(&format!("    {n}: ou_pop\n"));
    }
    y.push_str("  edges:\n");
    // Node i hears node i + 1, the edges in target order (so the inputs' sums, assigned in
    // edge order, sit evenly spaced in the kernel's arrays: a network).
    for i in 0..NODES {
        let j = (i + 1) % NODES;
        y.push_str(&format!(
            "    - [n{j}/ou_op/x, n{i}/ou_op/x_in, null, {{weight: 1.0}}]\n"
        ));
    }
    y
}

fn ou_sweep(mus: &[f64], dt: f64, steps: usize, backend: Backend) -> SweepSpec {
    let nodes = node_names(NODES);
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut values = IndexMap::new();
    values.insert("mu".to_string(), mus.to_vec());
    let sim = SimConfig::new(Method::Euler, steps as f64 * dt, dt, Some(dt));
    let map = ParamMap::new().nodes("mu", &["ou_op/mu"], &nodes);
    let mut spec = SweepSpec::new(Grid::from_values(&values, true).expect("grid"), map, sim);
    spec.outputs = vec![("x".into(), "all/ou_op/x".into())];
    spec.backend = backend;
    spec
}

#[test]
fn per_node_noise_is_independent_per_node_and_the_same_whatever_the_blocking() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (dt, sigma): (f64, f64) = (1e-2, 0.5);
    let c = load_net(dir.path(), "ou.yaml", &ou_yaml(sigma / dt.sqrt()));
    // The noisy nodes are a network: the C back end and the JIT run them as population loops,
    // each node drawing its own stream (one noise site, a source per node).
    let low = lower_edges(&c);
    let mu_ids: Vec<_> = node_names(NODES)
        .iter()
        .map(|n| low.find_var(&format!("{n}/ou_op/mu")).expect("mu"))
        .collect();
    let swept = specialize_params(&low, &mu_ids);
    let net = plan(&swept).expect("the noisy nodes form a network");
    assert_eq!(net.populations[0].node_noise.len(), 1);
    for backend in backends().into_iter().filter(|b| *b != Backend::Reference) {
        let cache = tempfile::tempdir().expect("temp dir");
        let options = KernelOptions {
            backend,
            cache_dir: Some(cache.path().to_path_buf()),
            ..KernelOptions::default()
        };
        let kernel = Kernel::compile(&swept, &options).expect("compiles");
        assert!(kernel.is_network(), "{backend:?} runs the noisy nodes as loops");
    }
    // 256 points whose `mu` differ by at most 1e-9 (so their stationary laws are the same to
    // far below the statistical tolerances): 256 independent draws per node at t = 5.
    let points = 256;
    let mus: Vec<f64> = (0..points).map(|p| p as f64 * 1e-12).collect();
    let steps = 500;
    let mut first: Option<Vec<u64>> = None;
    for backend in backends() {
        let mut spec = ou_sweep(&mus, dt, steps, backend);
        let mut runs = Vec::new();
        for (block, threads, chunk) in [(1, 1, 0), (4, 2, 0), (16, 2, 37), (64, 1, 100)] {
            (spec.block_size, spec.threads, spec.chunk_size) = (block, Some(threads), chunk);
            runs.push(((block, threads, chunk), run(&spec, &c)));
        }
        let reference = bits(&runs[0].1);
        for (cut, r) in &runs[1..] {
            assert!(
                bits(r) == reference,
                "{backend:?}: (block, threads, chunk) = {cut:?} differs from one point per block"
            );
        }
        // Every back end draws the same noise and rounds the same operations: equal bits.
        match &first {
            None => first = Some(reference),
            Some(f) => assert!(*f == reference, "{backend:?} differs from the reference back end"),
        }
        let r = &runs[0].1;
        assert_eq!(r.columns.len(), NODES);
        let last: Vec<Vec<f64>> = (0..NODES)
            .map(|node| {
                (0..points)
                    .map(|p| *r.trace(p, node).unwrap().last().unwrap())
                    .collect()
            })
            .collect();
        // Stationary variance of x_{k+1} = (1 - dt) x_k + σ√dt ξ_k is σ²/(2 - dt) (the 1e-3
        // coupling changes it by O(1e-3)); 256 independent draws: its standard error is
        // var·sqrt(2/n) ≈ 9 %, the bound is 4 standard errors.
        let theory = sigma * sigma / (2.0 - dt);
        let n = points as f64;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
        for (node, xs) in last.iter().enumerate() {
            let m = mean(xs);
            let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
            assert!(
                (var - theory).abs() < 4.0 * theory * (2.0 / n).sqrt(),
                "{backend:?} node {node}: variance {var} vs {theory}"
            );
        }
        // Nodes draw their own streams: the correlation of two nodes' end values is that of
        // independent draws (standard error 1/√n; 4 of them), where one shared stream gives 1.
        for a in 0..NODES {
            for b in a + 1..NODES {
                let (ma, mb) = (mean(&last[a]), mean(&last[b]));
                let cov: f64 = last[a].iter().zip(&last[b]).map(|(x, y)| (x - ma) * (y - mb)).sum();
                let va: f64 = last[a].iter().map(|x| (x - ma).powi(2)).sum();
                let vb: f64 = last[b].iter().map(|y| (y - mb).powi(2)).sum();
                let corr = cov / (va * vb).sqrt();
                assert!(
                    corr.abs() < 4.0 / n.sqrt(),
                    "{backend:?}: nodes {a} and {b} correlate {corr}"
                );
            }
        }
    }
}

/// `network_grid.c`'s network with an external drive `I` per node, added to `v'`.
fn driven_yaml(n: usize) -> String {
    let yaml = network_grid::yaml(n, 0.0, 1.0, |_, _| true);
    let driven = yaml
        .replace("G*r_in - (pi*r)^2", "G*r_in + I - (pi*r)^2")
        .replace("    r_in: input(0.0)\n", "    r_in: input(0.0)\n    I: input(0.0)\n");
    assert_eq!(
        driven.matches("I").count(),
        yaml.matches("I").count() + 2,
        "the drive is added"
    );
    driven
}

/// The drive of node `i` at step `k` for grid point `p`: different for every node and point.
fn drive(i: usize, p: usize, k: usize) -> f64 {
    (1.0 + i as f64) * (0.3 * k as f64 * (1.0 + 0.1 * p as f64)).sin()
}

#[test]
fn per_node_input_series_equal_single_runs_and_the_transcription() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = load_net(dir.path(), "driven.yaml", &driven_yaml(NODES));
    // The driven population is still a network for the C back end's loops.
    let low = lower_edges(&c);
    plan(&specialize_params(&low, &[])).expect("five driven nodes form a network");
    let (dt, steps) = (1e-4, 300);
    let etas = [-6.0, -5.0, -4.0, -3.0];
    let sim = SimConfig::new(Method::Euler, steps as f64 * dt, dt, Some(dt));
    let nodes = node_names(NODES);
    let node_refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let map = || ParamMap::new().nodes("eta", &["qif_net_op/eta"], &node_refs);
    // One (steps, points) column per node, numpy's C order: data[step * points + point].
    let per_point = |i: usize| Signal::PerPoint {
        points: etas.len(),
        data: (0..steps * etas.len())
            .map(|x| drive(i, x % etas.len(), x / etas.len()))
            .collect::<Vec<_>>()
            .into(),
    };
    for backend in backends() {
        let mut values = IndexMap::new();
        values.insert("eta".to_string(), etas.to_vec());
        let mut spec = SweepSpec::new(Grid::from_values(&values, true).unwrap(), map(), sim.clone());
        spec.outputs = vec![("r".into(), "all/qif_net_op/r".into())];
        spec.backend = backend;
        spec.block_size = 4;
        spec.inputs = (0..NODES)
            .map(|i| (format!("n{i}/qif_net_op/I"), per_point(i)))
            .collect();
        let swept = run(&spec, &c);
        if backend == Backend::C {
            let cache = tempfile::tempdir().expect("temp dir");
            let options = KernelOptions {
                backend: Backend::C,
                cache_dir: Some(cache.path().to_path_buf()),
                ..KernelOptions::default()
            };
            let eta_ids: Vec<_> = nodes
                .iter()
                .map(|n| low.find_var(&format!("{n}/qif_net_op/eta")).unwrap())
                .collect();
            let kernel = Kernel::compile(&specialize_params(&low, &eta_ids), &options).expect("compiles");
            assert!(kernel.is_network(), "the C back end runs the driven nodes as loops");
        }
        let mut worst: f64 = 0.0;
        for (p, &eta) in etas.iter().enumerate() {
            // The point alone: a one-point grid, each node's column as a shared series.
            let mut one = IndexMap::new();
            one.insert("eta".to_string(), vec![eta]);
            let mut single = SweepSpec::new(Grid::from_values(&one, true).unwrap(), map(), sim.clone());
            single.outputs = spec.outputs.clone();
            single.backend = backend;
            single.inputs = (0..NODES)
                .map(|i| {
                    let series: Arc<[f64]> = (0..steps).map(|k| drive(i, p, k)).collect::<Vec<_>>().into();
                    (format!("n{i}/qif_net_op/I"), Signal::Shared(series))
                })
                .collect();
            let alone = run(&single, &c);
            let want = network_grid::transcription(NODES, (1.0, eta), (steps, dt), 0.0, |i, k| drive(i, p, k));
            for (col, (node, _)) in swept.columns.iter().enumerate() {
                let i: usize = node.trim_start_matches('n').parse().unwrap();
                let got = swept.trace(p, col).unwrap();
                let lone = alone.trace(0, col).unwrap();
                assert!(
                    got.iter().zip(&lone).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{backend:?}: point {p} node {node} differs from its single run"
                );
                for (k, x) in got.iter().enumerate() {
                    worst = worst.max((x - want[k][i]).abs() / want[k][i].abs());
                }
            }
        }
        // Same operations as the engine up to the order of the coupling sum and the constants'
        // rounding (1/π, π²): a few ulps per step over 300 steps of a stable system.
        assert!(worst < 1e-12, "{backend:?}: {worst:e} from the transcription");
        // The drive reaches the output: node 0 and node 4 of one point differ.
        assert_ne!(swept.trace(0, 0).unwrap(), swept.trace(0, 4).unwrap());
    }
}

#[test]
fn param_map_all_sweeps_a_population_like_its_node_list() {
    // `nodes: [all]` (PyRates' identifier for every node having the var) is the node list.
    let dir = tempfile::tempdir().expect("temp dir");
    let c = load_net(dir.path(), "driven.yaml", &driven_yaml(NODES));
    let nodes = node_names(NODES);
    let listed: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut values = IndexMap::new();
    values.insert("eta".to_string(), vec![-6.0, -4.0]);
    values.insert("G".to_string(), vec![0.5, 1.5]);
    let sim = SimConfig::new(Method::Euler, 100.0 * 1e-4, 1e-4, Some(1e-4));
    for backend in backends() {
        let runs: Vec<SweepResult> = [
            ParamMap::new()
                .nodes("eta", &["qif_net_op/eta"], &listed)
                .nodes("G", &["G"], &listed),
            ParamMap::new()
                .nodes("eta", &["qif_net_op/eta"], &["all"])
                .nodes("G", &["G"], &["all"]),
        ]
        .into_iter()
        .map(|map| {
            let mut spec = SweepSpec::new(Grid::from_values(&values, true).unwrap(), map, sim.clone());
            spec.outputs = vec![("r".into(), "all/qif_net_op/r".into())];
            spec.backend = backend;
            run(&spec, &c)
        })
        .collect();
        assert!(bits(&runs[0]) == bits(&runs[1]), "{backend:?}");
        // The grid reaches every node: G = 0.5 and 1.5 differ at node 4.
        assert_ne!(runs[1].trace(0, 4).unwrap(), runs[1].trace(2, 4).unwrap());
    }
}
