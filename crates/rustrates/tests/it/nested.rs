//! Circuits nested in circuits form networks: a circuit of repeated Jansen–Rit columns runs
//! as population loops (one per place in the column), equal bit for bit to the same network
//! written as one flat node list, on every back end.

use indexmap::IndexMap;
use rustrates::kernel::{Backend, Kernel, KernelOptions};
use rustrates::model::network::plan;
use rustrates::model::passes::{lower_edges, specialize_params};
use rustrates::solve::{Method, SimConfig};
use rustrates::sweep::{Grid, ParamMap, SweepSpec};

use crate::support::{backends, bits, c_available, load_net, max_abs_difference, run};

const COLUMNS: usize = 6;
const LIB: &str = "model_templates.neural_mass_models.jansenrit";

/// Pyramidal cell of column `c` onto the next column's pyramidal cell, weights all different.
fn between_columns(columns: usize) -> Vec<(String, String, f64)> {
    (0..columns)
        .map(|c| {
            let d = (c + 1) % columns;
            (
                format!("c{c}/pc/pro/m"),
                format!("c{d}/pc/rpo_e_in/m_in"),
                5.0 + c as f64,
            )
        })
        .collect()
}

fn edge_lines(edges: &[(String, String, f64)]) -> String {
    edges
        .iter()
        .map(|(s, t, w)| format!("    - [{s}, {t}, null, {{weight: {w:?}}}]\n"))
        .collect()
}

/// `columns` copies of the library's three-node JRC as sub-circuits `c0`, `c1`, … in a ring.
fn nested_yaml(columns: usize) -> String {
    let mut y = String::from("Net:\n  base: CircuitTemplate\n  circuits:\n");
    for c in 0..columns {
        y.push_str(&format!("    c{c}: {LIB}.JRC\n"));
    }
    y.push_str("  edges:\n");
    y + &edge_lines(&between_columns(columns))
}

/// The same network written flat: nodes `c0_pc`, `c0_ein`, … declared in the nested circuit's
/// order, the columns' own edges (the JRC's four, in its order) before the ring's.
fn flat_yaml(columns: usize) -> String {
    let mut y = String::from("Net:\n  base: CircuitTemplate\n  nodes:\n");
    for c in 0..columns {
        y.push_str(&format!(
            "    c{c}_pc: {LIB}.PC\n    c{c}_ein: {LIB}.IN\n    c{c}_iin: {LIB}.IN\n"
        ));
    }
    let mut edges = Vec::new();
    for c in 0..columns {
        for (s, t, w) in [
            ("pc", "ein/rpo_e", 135.0),
            ("pc", "iin/rpo_e", 33.75),
            ("ein", "pc/rpo_e_in", 108.0),
            ("iin", "pc/rpo_i", 33.75),
        ] {
            edges.push((format!("c{c}_{s}/pro/m"), format!("c{c}_{t}/m_in"), w));
        }
    }
    edges.extend(
        between_columns(columns)
            .into_iter()
            .map(|(s, t, w)| (s.replacen('/', "_", 1), t.replacen('/', "_", 1), w)),
    );
    y.push_str("  edges:\n");
    y + &edge_lines(&edges)
}

#[test]
fn nested_columns_are_one_population_per_place_in_the_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = load_net(dir.path(), "nested.yaml", &nested_yaml(COLUMNS));
    let net = plan(&specialize_params(&lower_edges(&c), &[])).expect("the columns form a network");
    let nodes: Vec<Vec<String>> = net.populations.iter().map(|p| p.nodes.clone()).collect();
    let place = |name: &str| (0..COLUMNS).map(|k| format!("c{k}/{name}")).collect::<Vec<_>>();
    // ein and iin share the IN template but sit at different places of the column.
    assert_eq!(nodes, vec![place("pc"), place("ein"), place("iin")]);
    // pc's two synapses, ein's and iin's one each: four couplings, whatever the column count.
    assert_eq!(net.couplings.len(), 4);
    // A flat node list declared column by column names each node differently: its IN nodes
    // are interleaved and stay unrolled, which the comparison below relies on as a second
    // way to the same numbers.
    let flat = load_net(dir.path(), "flat.yaml", &flat_yaml(COLUMNS));
    assert!(plan(&specialize_params(&lower_edges(&flat), &[])).is_err());
}

#[test]
fn nested_columns_equal_the_flat_network_bit_for_bit_on_every_back_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nested = load_net(dir.path(), "nested.yaml", &nested_yaml(COLUMNS));
    let flat = load_net(dir.path(), "flat.yaml", &flat_yaml(COLUMNS));
    let pcs: Vec<String> = (0..COLUMNS).map(|k| format!("c{k}/pc")).collect();
    let flat_pcs: Vec<String> = (0..COLUMNS).map(|k| format!("c{k}_pc")).collect();
    // The pyramidal cells' excitatory PSP amplitude (3.25 mV in Jansen & Rit) swept in
    // every column: 3 mV is near the fixed point, 3.25 and 3.5 mV oscillate.
    let spec = |pcs: &[String], backend: Backend, method: Method| {
        let refs: Vec<&str> = pcs.iter().map(String::as_str).collect();
        let mut values = IndexMap::new();
        values.insert("h".to_string(), vec![3.0e-3, 3.25e-3, 3.5e-3]);
        let sim = SimConfig::new(method, 0.2, 1e-4, Some(1e-3));
        let map = ParamMap::new().nodes("h", &["rpo_e_in/h"], &refs);
        let mut spec = SweepSpec::new(Grid::from_values(&values, true).expect("grid"), map, sim);
        spec.outputs = vec![("m".into(), "all/pro/m".into())];
        spec.backend = backend;
        spec.threads = Some(1);
        spec
    };
    if c_available() {
        let h: Vec<_> = pcs
            .iter()
            .map(|p| nested.find_var(&format!("{p}/rpo_e_in/h")).expect("h"))
            .collect();
        let cache = tempfile::tempdir().expect("temp dir");
        let options = KernelOptions {
            backend: Backend::C,
            cache_dir: Some(cache.path().to_path_buf()),
            ..KernelOptions::default()
        };
        let kernel = Kernel::compile(&specialize_params(&lower_edges(&nested), &h), &options).expect("compiles");
        assert!(kernel.is_network(), "the C back end runs the nested columns as loops");
    }
    let reference = run(&spec(&pcs, Backend::Reference, Method::Euler), &nested);
    let m = reference.traces.as_ref().expect("traces");
    // The sweep is not trivial: the columns' rates move and differ between points.
    assert!(m.iter().all(|x| x.is_finite()) && m.iter().any(|&x| x > 0.5));
    assert_ne!(reference.trace(0, 0).unwrap(), reference.trace(2, 0).unwrap());
    for method in [Method::Euler, Method::Rk4] {
        for backend in backends() {
            let a = run(&spec(&pcs, backend, method), &nested);
            let b = run(&spec(&flat_pcs, backend, method), &flat);
            let names = |r: &rustrates::sweep::SweepResult| -> Vec<String> {
                r.columns.iter().map(|(n, _)| n.replace('/', "_")).collect()
            };
            assert_eq!(names(&a), names(&b), "{backend:?}: the same nodes in the same order");
            // Same expressions, same order of every sum: the same numbers, bit for bit.
            assert!(bits(&a) == bits(&b), "{backend:?} {method:?}: nested and flat differ");
            if method == Method::Euler && backend != Backend::Jit {
                // The C loops sum every edge in the edge list's order, as the evaluator does.
                assert!(
                    bits(&a) == bits(&reference),
                    "{backend:?}: differs from the reference evaluator"
                );
            } else if method == Method::Euler {
                // The JIT expands `tau^2` into a product (≤ 2 ulp apart per evaluation); over the
                // 2,000 steps of these orbits that stays within 1e-12 of the largest rate
                // (m_max = 5/s; measured 8.5e-14 absolute).
                let worst = max_abs_difference(a.traces.as_ref().expect("traces"), m);
                assert!(worst <= 5.0 * 1e-12, "JIT: {worst:e} from the reference evaluator");
            }
        }
    }
}
