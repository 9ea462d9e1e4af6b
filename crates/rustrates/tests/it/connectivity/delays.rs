//! Delayed `connectivity:` blocks: delays given per entry (`delay:`) or as `lengths:` over a
//! swept conduction `velocity`, run as population loops reading the delay ring, against the C
//! program's transcription, their single runs and the written-out edge list; their entries
//! named as edge-list edges; bad lengths and velocities reported where they are written.

use super::*;

/// A scaled block with delays (global coupling swept per lane, conduction delays of whole
/// steps) runs as population loops reading the delay ring (C back end) and gives the C
/// program's traces on every back end; each point equals its single run bit for bit.
#[test]
fn scaled_block_with_delays_runs_as_loops_and_sweeps_as_the_c_program() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (n, steps, dmax) = (12, 200, 0.002);
    write_weights_and_delays(dir.path(), n, false, dmax);
    let yaml = matrix_block(n, "w.npy", Some("d.npy")) + "      name: C\n      scale: 1.0\n";
    let values = g_eta_grid(&[0.0, 1.0, 2.0], &[-6.0, -4.0]);
    for backend in backends() {
        let res = scale_sweep(dir.path(), "net.yaml", &yaml, &values, n, backend, steps);
        let worst = worst_against_transcription(&res, n, steps, dmax);
        // Whole-step reads take the recorded r itself, so the operations are the C
        // program's: a few ulps apart at most over 200 steps.
        assert!(worst <= 1e-12, "{backend:?}: relative difference {worst:e}");
        assert_point_is_its_single_run(dir.path(), &yaml, &res, 4, n, backend, steps);
    }
    let low = lower_edges(&load_net(dir.path(), "net.yaml", &yaml));
    let scale = low.find_var("C/scale").expect("the scale parameter");
    let compiled = specialize_params(&low, &[scale]);
    let net = plan(&compiled).expect("a network");
    assert_eq!(net.couplings[0].scale, Some(Scale::Param(scale)));
    assert!(net.couplings[0].has_delays());
    if let Some(kernel) = c_kernel(&compiled) {
        assert!(kernel.is_network(), "the scaled delayed coupling runs as loops");
        assert_eq!(
            kernel.delay_ring_span(),
            Some(network_grid::delay_steps(dmax, DT, 0, 0) as f64 * DT)
        );
    }
}

/// `lengths` of `network_grid.c`'s delays at velocity 10: `D[i][j]·10` (whole steps of `DT`
/// at velocity 10, twice as many at 5, four times at 2.5; fractional at 3 and 7).
fn lengths(dmax: f64, i: usize, j: usize) -> f64 {
    delay(dmax, i, j) * 10.0
}

/// A scaled block `C` with `lengths` (`l.npy`) and a velocity.
fn velocity_block(n: usize) -> String {
    let mut s = header(n);
    s.push_str(&format!(
        "  connectivity:\n    - source: qif_net_op/r\n      target: qif_net_op/r_in\n      source_nodes: [{}]\n      weight: w.npy\n      lengths: l.npy\n      velocity: 10.0\n      name: C\n      scale: 1.0\n",
        node_list(n)
    ));
    s
}

/// The weights (`w.npy`) and lengths (`l.npy`) of [`velocity_block`], written in `dir`.
fn write_velocity_files(dir: &Path, n: usize, dmax: f64) {
    write_npy(&dir.join("w.npy"), n, |i, j| weight(n, i, j, false));
    write_npy(&dir.join("l.npy"), n, |i, j| lengths(dmax, i, j));
}

/// [`velocity_block`] swept over the grid `values` of [`velocity_map`] (files written by
/// [`write_velocity_files`]).
fn velocity_sweep(
    dir: &Path,
    n: usize,
    values: &IndexMap<String, Vec<f64>>,
    backend: Backend,
    method: Method,
    steps: usize,
) -> SweepResult {
    sweep_with(
        dir,
        "net.yaml",
        &velocity_block(n),
        values,
        velocity_map(),
        backend,
        method,
        steps,
    )
}

/// `param_map`: `G` the block's scale, `velocity` its conduction velocity.
fn velocity_map() -> ParamMap {
    ParamMap::new()
        .paths("G", &["C/scale"])
        .paths("velocity", &["C/velocity"])
}

/// A sweep over the conduction velocity gives, point by point and bit for bit, the single
/// runs of the same block with its delays given directly (`delay:` = lengths / velocity,
/// computed by `conduction_delay`) and the reference evaluator's run of the written-out block:
/// whole-step delays (velocities 10, 5, 2.5) and fractional ones (3, 7) as lanes of one block
/// (the C back end's loops then read some lanes whole and interpolate others, per term), every
/// back end, Euler, RK4 and rk45. The lanes read different delays from one kernel.
#[test]
fn a_velocity_sweep_equals_single_runs_with_the_delays_given_directly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (n, steps, dmax) = (5, 120, 0.002);
    write_velocity_files(dir.path(), n, dmax);
    let velocities = [10.0, 5.0, 2.5, 3.0, 7.0];
    let mut values = IndexMap::new();
    values.insert("G".to_string(), vec![1.5]);
    values.insert("velocity".to_string(), velocities.to_vec());
    let given = |v: f64| {
        let d = yaml_matrix(n, |i, j| rustrates::model::conduction_delay(lengths(dmax, i, j), v));
        matrix_block(n, "w.npy", Some(&d)) + "      name: C\n      scale: 1.5\n"
    };
    let scale_only = ParamMap::new().paths("G", &["C/scale"]);
    let methods = [Method::Euler, Method::Rk4, Method::Rk45 { rtol: 1e-6, atol: 1e-9 }];
    let mut reference: Vec<Option<SweepResult>> = vec![None; methods.len()];
    for backend in backends() {
        for (m, method) in methods.into_iter().enumerate() {
            let res = velocity_sweep(dir.path(), n, &values, backend, method, steps);
            for (p, &v) in velocities.iter().enumerate() {
                assert_eq!(res.grid_values[1][p], v);
                let mut one = IndexMap::new();
                one.insert("G".to_string(), vec![1.5]);
                let alone = sweep_with(
                    dir.path(),
                    "one.yaml",
                    &given(v),
                    &one,
                    scale_only.clone(),
                    backend,
                    method,
                    steps,
                );
                assert!(
                    trace_bits(&res, p) == trace_bits(&alone, 0),
                    "{backend:?} {method:?}: velocity {v} in a sweep differs from the block with its delays given"
                );
                // rk45: the C loops call the solver's history as the reference evaluator does
                // (the JIT's adaptive steps are not the reference's bit for bit).
                let comparable = !matches!(method, Method::Rk45 { .. }) || backend == Backend::C;
                if let Some(r) = reference[m].as_ref().filter(|_| comparable) {
                    assert!(
                        trace_bits(&res, p) == trace_bits(r, p),
                        "{backend:?} {method:?}: velocity {v} differs from the reference evaluator's sweep"
                    );
                }
            }
            if backend == Backend::Reference {
                reference[m] = Some(res);
            }
        }
    }
}

/// N = 5 against `network_grid.c`'s loop: velocities 10, 5 and 2.5 make the delays 1, 2 and
/// 4 times the C program's whole steps; G swept with them (the block's scale). Two grids: the
/// three velocities as lanes of one block (the C loops read each lane's own step), and one
/// velocity in every lane (still per lane, as the grid sets it: the loops read one row).
#[test]
fn a_velocity_sweep_equals_the_c_program_transcription() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (n, steps, dmax) = (5, 300, 0.002);
    write_velocity_files(dir.path(), n, dmax);
    let grids = [vec![10.0, 5.0, 2.5], vec![5.0]];
    for (backend, velocities) in backends().into_iter().flat_map(|b| grids.iter().map(move |g| (b, g))) {
        let mut values = IndexMap::new();
        values.insert("G".to_string(), vec![0.5, 2.0]);
        values.insert("velocity".to_string(), velocities.clone());
        let res = velocity_sweep(dir.path(), n, &values, backend, Method::Euler, steps);
        let worst = worst_against(&res, |p| {
            let (g, v) = (res.grid_values[0][p], res.grid_values[1][p]);
            let factor = (10.0 / v).round() as usize;
            transcription_with(n, g, -5.0, steps, |i, j| {
                factor * network_grid::delay_steps(dmax, DT, i, j)
            })
        });
        // Whole-step reads take the recorded r itself: the C program's operations, a few
        // ulps apart at most over 300 steps (as the tests above).
        assert!(worst <= 1e-12, "{backend:?}: relative difference {worst:e}");
    }
    // Not swept, the velocity folds into constant delays: the C back end's loops run it.
    let circuit = load_net(dir.path(), "net.yaml", &velocity_block(n));
    let velocity = circuit.find_var("C/velocity").expect("the velocity parameter");
    for low in [lower_edges(&circuit), lower_edges_keeping_couplings(&circuit)] {
        assert!(
            plan(&expand_couplings(&specialize_params(&low, &[]))).is_ok(),
            "a fixed velocity plans as loops"
        );
        // Swept, each term's delay is its length over the lane's velocity: still loops,
        // whose terms name the velocity they divide by.
        let swept = expand_couplings(&specialize_params(&low, &[velocity]));
        let net = plan(&swept).expect("a swept velocity plans as loops");
        let cp = &net.couplings[0];
        assert!(cp.per_lane_delays());
        for (k, (d, v)) in cp.delays.iter().zip(&cp.velocities).enumerate() {
            // Lengths of 0 (the diagonal's delay 0) are current reads at any velocity.
            assert_eq!(cp.delayed[k].is_some(), *d > 0.0, "term {k}");
            assert_eq!(*v, cp.delayed[k].map(|_| velocity), "term {k}");
        }
        if let Some(kernel) = c_kernel(&specialize_params(&low, &[])) {
            assert!(kernel.is_network(), "a fixed velocity runs as loops on the C back end");
            assert!(kernel.delay_ring_lane_terms().is_empty());
            let kernel = c_kernel(&specialize_params(&low, &[velocity])).expect("a C compiler runs");
            assert!(kernel.is_network(), "a swept velocity runs as loops on the C back end");
            assert_eq!(
                kernel.delay_ring_lane_terms().len(),
                cp.weights.len(),
                "one ring term per entry"
            );
        }
    }
}

#[test]
fn bad_lengths_and_velocities_are_reported_where_they_are_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 3;
    let block = |extra: &str| matrix_block(n, "1.0", None) + extra;
    let one = |yaml: &str, at: &str, message: &str| {
        assert_one_error_at(dir.path(), "connectivity/invalid", yaml, at, message)
    };
    let rows = "[[0, 1, 2], [1, 0, 1], [2, 1, 0]]";
    for bad in ["0.0", "-2.0", ".nan", ".inf"] {
        let yaml = block(&format!("      lengths: {rows}\n      velocity: {bad}\n"));
        let (l, c) = position(&yaml, &format!("velocity: {bad}"));
        let errs = errors(dir.path(), &yaml);
        assert!(
            errs == [(
                "connectivity/invalid".to_string(),
                l,
                c + "velocity: ".len(),
                "`velocity` must be a finite number > 0".to_string()
            )],
            "{bad}: {errs:?}"
        );
    }
    let yaml = block("      lengths: [[0, 1, 2], [1, -0.5, 1], [2, 1, 0]]\n      velocity: 3.0\n");
    one(&yaml, "-0.5", "`lengths`[1][1] must be a finite number >= 0");
    let yaml = block("      lengths: [[0, 1, 2], [1, .nan, 1], [2, 1, 0]]\n      velocity: 3.0\n");
    one(&yaml, ".nan", "`lengths`[1][1] must be a finite number >= 0");
    let yaml = block("      lengths: [[0, 1, 2], [1, 0, 1]]\n      velocity: 3.0\n");
    one(&yaml, "[[0, 1, 2], [1, 0, 1]]", "`lengths` has 2 rows, expected 3");
    write_npy(&dir.path().join("l2.npy"), 2, |_, _| 1.0);
    let yaml = block("      lengths: l2.npy\n      velocity: 3.0\n");
    one(&yaml, "l2.npy", "has shape [2, 2], expected [3, 3]");
    let yaml = matrix_block(n, "1.0", Some("0.001")) + &format!("      lengths: {rows}\n      velocity: 3.0\n");
    one(&yaml, "lengths:", "`lengths` or `delay`, not both");
    let yaml = block(&format!("      lengths: {rows}\n"));
    one(&yaml, "lengths:", "`lengths` needs a `velocity`");
    let yaml = block("      velocity: 3.0\n");
    one(&yaml, "velocity:", "`velocity` needs `lengths`");
}

/// One entry of a block, named as the equivalent edge list names its edge — by path
/// (`edge:n1->n3:0/weight`) or by its nodes and index (`edges: [[n2, n0, 0]]`) — sweeps
/// exactly as that edge of the edge list does: bit for bit, every back end (the block is
/// written out as its edges).
#[test]
fn a_blocks_entries_answer_to_their_edge_list_names_in_a_sweep() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (n, dmax, steps) = (5, 0.002, 150);
    write_weights_and_delays(dir.path(), n, false, dmax);
    let map = ParamMap::new()
        .edges("d", &["delay"], &[("n2", "n0", Some(0))])
        .paths("w", &["edge:n1->n3:0/weight"]);
    let mut values = IndexMap::new();
    values.insert("w".to_string(), vec![0.5, 3.0]);
    values.insert("d".to_string(), vec![0.0015, 0.00333]);
    let block = matrix_block(n, "w.npy", Some("d.npy"));
    for backend in backends() {
        let by_edges = sweep_with(
            dir.path(),
            "edges.yaml",
            &edge_list(n, false, dmax),
            &values,
            map.clone(),
            backend,
            Method::Euler,
            steps,
        );
        let by_block = sweep_with(
            dir.path(),
            "block.yaml",
            &block,
            &values,
            map.clone(),
            backend,
            Method::Euler,
            steps,
        );
        assert!(by_edges.traces.as_ref().unwrap().iter().all(|x| x.is_finite()));
        assert_eq!(by_block.columns, by_edges.columns);
        assert!(
            bits(&by_block) == bits(&by_edges),
            "{backend:?}: the block's named entries differ from the edge list's edges"
        );
        // The entries were set: another weight gives other traces.
        assert_ne!(trace_bits(&by_block, 0), trace_bits(&by_block, 2), "{backend:?}");
    }
}

/// `jacobian_at` sets a block's entry by its edge-list name, as it sets the edge list's edge.
#[test]
fn jacobian_at_sets_a_blocks_entry_by_its_edge_list_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 5;
    let forms = [
        ("edges.yaml", edge_list(n, false, 0.0)),
        (
            "block.yaml",
            matrix_block(n, &yaml_matrix(n, |i, j| weight(n, i, j, false)), None),
        ),
    ];
    let values = vec![
        ("edge:n1->n3:0/weight".to_string(), 4.0),
        ("n1/qif_net_op/r".to_string(), 0.3),
        ("n3/qif_net_op/v".to_string(), -1.0),
    ];
    let jacobians: Vec<Vec<u64>> = forms
        .iter()
        .map(|(file, yaml)| {
            let circuit = load_net(dir.path(), file, yaml);
            let (names, m) = rustrates::model::jacobian::jacobian_at(&circuit, &values, 0.0).expect("jacobian");
            assert_eq!(names.len(), 2 * n);
            // ∂v3'/∂r1 = G·w[3][1] = 4 with the entry set (G = 1).
            let (v3, r1) = (
                names.iter().position(|x| x == "n3/qif_net_op/v").unwrap(),
                names.iter().position(|x| x == "n1/qif_net_op/r").unwrap(),
            );
            assert_eq!(m[v3 * names.len() + r1], 4.0, "{file}");
            m.iter().map(|x| x.to_bits()).collect()
        })
        .collect();
    assert!(
        jacobians[0] == jacobians[1],
        "the block's Jacobian differs from the edge list's"
    );
}

/// An edge declared after a block (here in the circuit around it) is numbered after the
/// block's entries between the same nodes, as in the edge list: `edge:s/a->s/b:1`; the
/// block's own entry is `:0`. Both sweep as the edge list's edges, bit for bit.
#[test]
fn an_edge_after_a_block_is_numbered_after_its_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sub_edges = "Sub:\n  base: CircuitTemplate\n  nodes: {a: qif_net_pop, b: qif_net_pop}\n  edges:\n    \
                     - [a/qif_net_op/r, b/qif_net_op/r_in, null, {weight: 1.25}]\n    \
                     - [b/qif_net_op/r, a/qif_net_op/r_in, null, {weight: 2.5}]\n";
    let sub_block = "Sub:\n  base: CircuitTemplate\n  nodes: {a: qif_net_pop, b: qif_net_pop}\n  connectivity:\n    \
                     - {source: qif_net_op/r, target: qif_net_op/r_in, source_nodes: [a, b], weight: [[0, 2.5], [1.25, 0]]}\n";
    let top = "Net:\n  base: CircuitTemplate\n  circuits: {s: Sub}\n  edges:\n    \
               - [s/a/qif_net_op/r, s/b/qif_net_op/r_in, null, {weight: 0.75}]\n";
    let map = ParamMap::new()
        .paths("first", &["edge:s/a->s/b:0/weight"])
        .paths("second", &["edge:s/a->s/b:1/weight"]);
    let mut values = IndexMap::new();
    values.insert("first".to_string(), vec![0.5, 2.0]);
    values.insert("second".to_string(), vec![-1.0, 1.5]);
    let run = |file: &str, sub: &str| {
        let yaml = format!("{OPERATOR}{sub}{top}");
        let circuit = load_net(dir.path(), file, &yaml);
        let second = circuit.find_var("edge:s/a->s/b:1/weight");
        assert_eq!(second.map(|v| circuit.var(v).value), Some(0.75), "{file}");
        let grid = Grid::from_values(&values, true).expect("grid");
        let sim = SimConfig {
            simulation_time: 0.01,
            dt: DT,
            sampling_step: Some(DT),
            method: Method::Rk4,
            cutoff: 0.0,
        };
        let mut spec = SweepSpec::new(grid, map.clone(), sim);
        spec.outputs = vec![("r".into(), "all/qif_net_op/r".into())];
        spec.backend = Backend::Reference;
        let mut sink = MemorySink::new();
        rustrates::sweep::run(&spec, &circuit, &mut sink).expect("runs");
        sink.into_result().expect("result")
    };
    let by_edges = run("edges.yaml", sub_edges);
    let by_block = run("block.yaml", sub_block);
    assert!(
        bits(&by_block) == bits(&by_edges),
        "numbered differently from the edge list"
    );
    assert_ne!(trace_bits(&by_block, 0), trace_bits(&by_block, 3));
}

/// `velocity_block(n)` with its weights and lengths (delays up to 2 ms at velocity 10)
/// written beside it in `dir`, loaded.
fn loaded_velocity_block(dir: &std::path::Path, n: usize) -> rustrates::model::Circuit {
    write_velocity_files(dir, n, 0.002);
    load_net(dir, "net.yaml", &velocity_block(n))
}

/// A 1 ms Euler sweep of the grid `values` (Cartesian or zipped) keeping node 0's r, for
/// `sweep::check`.
fn checked_spec(values: &IndexMap<String, Vec<f64>>, cartesian: bool, map: ParamMap) -> SweepSpec {
    let sim = SimConfig {
        simulation_time: 0.001,
        dt: DT,
        sampling_step: None,
        method: Method::Euler,
        cutoff: 0.0,
    };
    let mut spec = SweepSpec::new(Grid::from_values(values, cartesian).expect("grid"), map, sim);
    spec.outputs = vec![("r".into(), "n0/qif_net_op/r".into())];
    spec
}

/// A block whose delays are lengths / velocity has no per-entry delay to set: naming one of
/// its entries says to sweep the velocity instead.
#[test]
fn naming_an_entry_of_a_velocity_block_points_at_its_velocity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let circuit = loaded_velocity_block(dir.path(), 5);
    let map = ParamMap::new().paths("w", &["edge:n1->n3:0/weight"]);
    let mut values = IndexMap::new();
    values.insert("w".to_string(), vec![1.0]);
    let err = rustrates::sweep::check(&checked_spec(&values, true, map), &circuit).expect_err("an error");
    let text = err.to_string();
    assert!(text.contains("param_map['w']") && text.contains("C/velocity"), "{text}");
}

/// A grid value of a block's velocity that is not a finite number > 0 is refused before
/// anything runs, naming the grid key (the CLI points at it, Python names `param_grid`).
#[test]
fn a_velocity_grid_value_that_is_not_positive_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let circuit = loaded_velocity_block(dir.path(), 5);
    for bad in [0.0, -3.0, f64::NAN, f64::INFINITY] {
        let mut values = IndexMap::new();
        values.insert("G".to_string(), vec![1.0, 1.0]);
        values.insert("velocity".to_string(), vec![5.0, bad]);
        let spec = checked_spec(&values, false, velocity_map());
        let err = rustrates::sweep::check(&spec, &circuit).expect_err("refused");
        let text = err.to_string();
        // NaN and inf are refused as any grid value is (finite); 0 and below by the velocity rule.
        let rule = if bad.is_finite() { "> 0" } else { "finite" };
        assert!(
            text.contains("velocity") && text.contains("point 1") && text.contains(rule),
            "{bad}: {text}"
        );
    }
}

/// The C back end's delayed column loop takes a column's rows in runs of 256 (`RR_PENDING`)
/// and defers the rows it does not read from the ring's value rows to the general read
/// after each run: in a block of 300 nodes, delays of whole steps (1 to 12, and 9 from every
/// source past 250: the initial values until the step is reached, then value rows), zero
/// (the diagonal, rows in both runs: the source now) and longer than the run (the initial
/// value throughout). An Euler sweep (every read a whole step: the values-only ring) equals
/// the reference evaluator's run of the same block bit for bit.
#[test]
fn a_delayed_block_of_more_than_256_rows_runs_as_the_reference_evaluator() {
    if !c_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (n, steps) = (300, 30);
    let delay_steps = |i: usize, j: usize| -> usize {
        if i == j {
            0
        } else if (i + j).is_multiple_of(17) {
            steps + 5
        } else if j > 250 {
            9
        } else {
            1 + (3 * i + 7 * j) % 12
        }
    };
    write_npy(&dir.path().join("w.npy"), n, |i, j| weight(n, i, j, false));
    write_npy(&dir.path().join("d.npy"), n, |i, j| delay_steps(i, j) as f64 * DT);
    let yaml = matrix_block(n, "w.npy", Some("d.npy")) + "      name: C\n      scale: 1.0\n";
    let values = g_eta_grid(&[0.5, 2.0], &[-6.0, -4.0]);
    let c = scale_sweep(dir.path(), "net.yaml", &yaml, &values, n, Backend::C, steps);
    let reference = scale_sweep(dir.path(), "net.yaml", &yaml, &values, n, Backend::Reference, steps);
    let (c, reference) = (bits(&c), bits(&reference));
    assert_eq!(c.len(), 4 * n * steps);
    let differ = c.iter().zip(&reference).filter(|(a, b)| a != b).count();
    assert_eq!(differ, 0, "{differ} of {} values differ", c.len());
}

/// The lane count of every block a sweep delivered.
struct BlockLanes(Vec<usize>);

impl rustrates::sweep::SweepSink for BlockLanes {
    fn begin(&mut self, _: &rustrates::sweep::SweepMeta<'_>) -> Result<(), rustrates::sweep::SweepError> {
        Ok(())
    }
    fn block(&mut self, out: rustrates::sweep::BlockOutput<'_>) -> Result<(), rustrates::sweep::SweepError> {
        assert!(out
            .traces
            .is_some_and(|t| !t.is_empty() && t.iter().all(|x| x.is_finite())));
        self.0.push(out.lanes);
        Ok(())
    }
}

/// A block's delay ring is kept near a core's L2 cache (`kernel::ring::block_lanes`): ten
/// delayed nodes reading up to ≈ 20.6 ms back at 1e-4 s keep 10 histories × ≈ 210 slots × 8 B
/// ≈ 16.8 kB a lane, so 64 lanes would hold ≈ 1.07 MB (over 1 MiB) and a 64-point sweep with
/// the default block size runs two blocks of 32 lanes (the largest of 16, 32, 64 that fits) on
/// the fixed-step methods, on the C loops and the JIT's engine couplings alike (both read the
/// ring); rk45 keeps no ring (one block of 64).
#[test]
fn a_sweep_whose_delay_ring_outgrows_a_cache_runs_blocks_of_fewer_lanes() {
    if !c_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (n, dmax) = (10, 0.0206);
    write_weights_and_delays(dir.path(), n, false, dmax);
    let yaml = matrix_block(n, "w.npy", Some("d.npy")) + "      name: C\n      scale: 1.0\n";
    let circuit = load_net(dir.path(), "net.yaml", &yaml);
    let longest = (0..n)
        .flat_map(|i| (0..n).map(move |j| network_grid::delay_steps(dmax, DT, i, j)))
        .max()
        .expect("delays");
    // The ring's slots: the longest delay's steps (one more if rounding lands above them) + 4.
    let per_lane = |slots: usize| n * slots * std::mem::size_of::<f64>();
    assert!(
        64 * per_lane(longest + 4) > 1 << 20 && 32 * per_lane(longest + 5) <= 1 << 20,
        "longest delay {longest} steps: the case must need blocks of 32 lanes"
    );
    let axis: Vec<f64> = (0..8).map(|k| k as f64 * 0.25).collect();
    let eta: Vec<f64> = (0..8).map(|k| -6.0 + k as f64 * 0.25).collect();
    let values = g_eta_grid(&axis, &eta);
    for (backend, method, lanes) in [
        (Backend::C, Method::Euler, vec![32, 32]),
        (Backend::C, Method::Rk4, vec![32, 32]),
        (Backend::C, Method::Rk45 { rtol: 1e-6, atol: 1e-9 }, vec![64]),
        (Backend::Jit, Method::Euler, vec![32, 32]),
        (Backend::Jit, Method::Rk45 { rtol: 1e-6, atol: 1e-9 }, vec![64]),
    ] {
        let sim = SimConfig {
            simulation_time: 5.0 * DT,
            dt: DT,
            sampling_step: Some(DT),
            method,
            cutoff: 0.0,
        };
        let mut spec = SweepSpec::new(Grid::from_values(&values, true).expect("grid"), scale_map(n), sim);
        spec.outputs = vec![("r".into(), "all/qif_net_op/r".into())];
        spec.backend = backend;
        spec.threads = Some(1);
        assert_eq!(spec.block_size, 64, "the default block size");
        let mut sink = BlockLanes(Vec::new());
        rustrates::sweep::run(&spec, &circuit, &mut sink).expect("runs");
        assert_eq!(sink.0, lanes, "{backend:?} {method:?}");
    }
}

/// The delay ring's rows as the JIT's engine couplings and the C loops read them, per lane: a
/// swept conduction velocity makes each term's delay `length / velocity` differ lane by lane,
/// so one term reads zero (a current read), shorter than a step (the step in progress), a
/// fraction (Hermite), a whole step (a value row, the row chosen by integers), or longer than
/// the run (the initial value) depending on the lane. Euler, Heun and RK4 sweeps (stages
/// between steps) on the JIT and C back ends equal the reference evaluator's run of the
/// written-out block (the solver's deque history, not the ring) bit for bit.
#[test]
fn per_lane_delays_read_the_ring_rows_the_reference_history_reads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (n, steps) = (7, 300);
    let t_end = steps as f64 * DT;
    // At velocity 1 the delays are the lengths; the lanes' velocities scale them: 0.3 steps
    // becomes 3 whole steps at 0.1, 13 steps 3.9 at 10/3, 2·t_end 150 whole steps at 4.
    let menu = [0.0, 0.3 * DT, 7.25 * DT, 3.0 * DT, 2.0 * t_end, 13.0 * DT];
    write_npy(&dir.path().join("w.npy"), n, |i, j| weight(n, i, j, false));
    write_npy(&dir.path().join("l.npy"), n, |i, j| menu[(3 * i + 5 * j) % menu.len()]);
    let mut values = IndexMap::new();
    values.insert("G".to_string(), vec![0.5, 2.0]);
    values.insert("velocity".to_string(), vec![1.0, 0.5, 4.0, 0.1, 10.0 / 3.0]);
    // The JIT reads a ring here: a term per delayed entry, each with its lanes' delays.
    let circuit = load_net(dir.path(), "net.yaml", &velocity_block(n));
    let velocity = circuit.find_var("C/velocity").expect("the velocity parameter");
    let swept = specialize_params(&lower_edges(&circuit), &[velocity]);
    let options = KernelOptions {
        backend: Backend::Jit,
        ..KernelOptions::default()
    };
    let jit = Kernel::compile(&swept, &options).expect("compiles");
    assert!(jit.is_network() && jit.runs_couplings());
    assert_eq!(jit.delay_ring_span(), Some(0.0), "per-lane delays only");
    let delayed = (0..n * n).filter(|k| menu[(3 * (k / n) + 5 * (k % n)) % menu.len()] > 0.0);
    assert_eq!(jit.delay_ring_lane_terms().len(), delayed.count());
    for method in [Method::Euler, Method::Heun, Method::Rk4] {
        let reference = bits(&velocity_sweep(
            dir.path(),
            n,
            &values,
            Backend::Reference,
            method,
            steps,
        ));
        for backend in backends().into_iter().filter(|b| *b != Backend::Reference) {
            let got = bits(&velocity_sweep(dir.path(), n, &values, backend, method, steps));
            assert_eq!(got.len(), 10 * n * steps);
            assert!(got.iter().all(|x| f64::from_bits(*x).is_finite()));
            let differ = got.iter().zip(&reference).filter(|(a, b)| a != b).count();
            assert_eq!(
                differ,
                0,
                "{backend:?}, {method:?}: {differ} of {} values differ",
                got.len()
            );
        }
    }
}
