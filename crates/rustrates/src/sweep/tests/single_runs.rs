//! Sweeps of real models against single runs with the values written into the template:
//! QIF traces, edge weights and delays, a sine input's frequency, divergence; the deepest sum
//! an equation may hold.

use super::*;

#[test]
fn sweep_qif_traces_equal_single_runs_bit_for_bit() {
    for backend in [Backend::Reference, Backend::Jit, Backend::C] {
        qif_traces_equal_single_runs(backend);
    }
}

fn qif_traces_equal_single_runs(backend: Backend) {
    let c = reference_qif();
    let mut spec = qif_spec(3);
    spec.backend = backend;
    let r = in_memory(&spec, &c);
    assert_eq!(
        r.columns,
        vec![
            ("PC".to_string(), "r".to_string()),
            ("IIN".to_string(), "r".to_string())
        ]
    );
    assert_eq!(r.time.len(), 400);
    for p in 0..9 {
        let (e_pc, e_iin) = (r.grid_values[0][p], r.grid_values[1][p]);
        let (rows, status) = single_run(&c, &spec, p, &[("PC/qif_op/eta", e_pc), ("IIN/qif_op/eta", e_iin)]);
        assert_eq!(status, PointStatus::Ok);
        assert_eq!(rows.len(), r.time.len());
        for col in 0..2 {
            let tr = r.trace(p, col).unwrap();
            let single: Vec<f64> = rows.iter().map(|row| row[col]).collect();
            assert!(same(&tr, &single), "point {p} column {col}");
        }
    }
}

#[test]
fn sweep_edge_weight_equals_single_runs_with_weight_in_yaml() {
    let base = reference_qif();
    let values: IndexMap<String, Vec<f64>> = [("w".to_string(), vec![5.0, 15.0, 25.0])].into_iter().collect();
    let mut spec = qif_spec(2);
    spec.param_grid = Grid::from_values(&values, false).unwrap();
    spec.param_map = ParamMap::new().edges("w", &["weight"], &[("PC", "PC", None)]);
    let r = in_memory(&spec, &base);
    let yaml_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models/reference_qif.yaml");
    let yaml = std::fs::read_to_string(yaml_path).unwrap();
    assert!(yaml.contains("[PC/qif_op/r, PC/qif_op/r_in, null, {weight: 15.0}]"));
    for (p, w) in [5.0, 15.0, 25.0].iter().enumerate() {
        // The template with that weight written into the YAML, loaded and run alone.
        let edited = yaml.replace(
            "[PC/qif_op/r, PC/qif_op/r_in, null, {weight: 15.0}]",
            &format!("[PC/qif_op/r, PC/qif_op/r_in, null, {{weight: {w:?}}}]"),
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edited.yaml");
        std::fs::write(&file, edited).unwrap();
        let opts = crate::template::LoadOptions::default();
        let c = crate::model::load_circuit(&format!("{}/pc_iin", file.display()), &opts)
            .map_err(|e| format!("{e:?}"))
            .unwrap()
            .circuit;
        let (rows, _) = single_run(&c, &spec, p, &[]);
        for col in 0..2 {
            let single: Vec<f64> = rows.iter().map(|row| row[col]).collect();
            assert!(same(&r.trace(p, col).unwrap(), &single), "weight {w} column {col}");
        }
    }
}

#[test]
fn sweep_sine_input_dominant_frequency_within_one_bin() {
    // A 7 Hz sine of amplitude 2 drives the input; the input itself is an output. The
    // post-cutoff window is 1.5 s at dts = 1 ms: bins are 1/1.5 Hz apart.
    let c = lowpass();
    let (t_end, dt, f, amp) = (2.0, 1e-3, 7.0, 2.0);
    let steps = (t_end / dt) as usize;
    let sine: Vec<f64> = (0..steps)
        .map(|i| amp * (2.0 * std::f64::consts::PI * f * i as f64 * dt).sin())
        .collect();
    let values: IndexMap<String, Vec<f64>> = [("tau".to_string(), vec![0.05, 0.5])].into_iter().collect();
    let grid = Grid::from_values(&values, false).unwrap();
    let map = ParamMap::new().nodes("tau", &["tau"], &["n"]);
    let sim = SimConfig {
        cutoff: 0.5,
        ..SimConfig::new(Method::Rk4, t_end, dt, Some(dt))
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.inputs = vec![("n/op/inp".into(), Signal::Shared(sine.into()))];
    spec.outputs = vec![("u".into(), "n/op/inp".into()), ("x".into(), "n/op/x".into())];
    spec.backend = Backend::Reference;
    spec.keep_traces = false;
    spec.summaries = vec![Statistic::DomFreq, Statistic::DomPower, Statistic::Std];
    let r = in_memory(&spec, &c);
    let bin = 1.0 / 1.5;
    for p in 0..2 {
        for col in 0..2 {
            let freq = r.summary(Statistic::DomFreq, p, col).unwrap();
            assert!((freq - f).abs() <= bin, "point {p} column {col}: {freq} Hz");
        }
        // The input's sine sits on a bin (7 Hz × 1.5 s = 10.5 cycles: half a bin off, so
        // leakage takes part of the power); its std is A/√2 to sampling accuracy.
        let std = r.summary(Statistic::Std, p, 0).unwrap();
        assert!((std - amp / 2f64.sqrt()).abs() < 0.01 * amp, "{std}");
    }
    // The slower low-pass (tau = 0.5) attenuates the sine more than the fast one.
    assert!(r.summary(Statistic::Std, 1, 1).unwrap() < r.summary(Statistic::Std, 0, 1).unwrap());
}

#[test]
fn sweep_diverging_points_marked_exactly_others_equal_single_runs() {
    let c = blowup();
    // x = 1/(1 − a t) blows up at t = 1/a: a = 4 and 20 diverge within T = 1, 0.1 and 0.5 do not.
    let values: IndexMap<String, Vec<f64>> = [("a".to_string(), vec![0.1, 4.0, 0.5, 20.0])].into_iter().collect();
    let grid = Grid::from_values(&values, false).unwrap();
    let map = ParamMap::new().nodes("a", &["a"], &["n"]);
    let sim = SimConfig::new(Method::Euler, 1.0, 1e-3, Some(1e-2));
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = vec![("x".into(), "n/op/x".into())];
    spec.backend = Backend::Reference;
    spec.summaries = vec![Statistic::Mean, Statistic::Last];
    spec.block_size = 4;
    let (r, s) = in_memory_with(&spec, &c, RunControl::default());
    assert_eq!(s.points_failed, 2);
    for p in 0..4 {
        let a = r.grid_values[0][p];
        let tr = r.trace(p, 0).unwrap();
        if a > 1.0 {
            let PointStatus::NonFinite { t } = r.status[p] else {
                panic!("point {p}: {:?}", r.status[p])
            };
            assert!(t > 1.0 / a - 0.05 && t <= 1.0, "a = {a}: diverged at {t}");
            assert!(tr.last().unwrap().is_nan() && r.summary(Statistic::Mean, p, 0).unwrap().is_nan());
        } else {
            assert_eq!(r.status[p], PointStatus::Ok);
            let (rows, _) = single_run(&c, &spec, p, &[("n/op/a", a)]);
            let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
            assert!(same(&tr, &single), "point {p}");
            // Euler on x' = a x² stays below the exact 1/(1 − a t) and within 1 %.
            let exact = 1.0 / (1.0 - a * 0.99);
            assert!((tr[99] - exact).abs() < 0.01 * exact, "{} vs {exact}", tr[99]);
        }
    }
}

#[test]
fn sweep_edge_delay_equals_single_runs_with_delay_in_yaml() {
    // The reference circuit with a delay on IIN -> PC, swept; each point must equal the
    // template with that delay written into the YAML, run alone.
    let yaml_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models/reference_qif.yaml");
    let yaml = std::fs::read_to_string(yaml_path).unwrap();
    let line = "[IIN/qif_op/r, PC/qif_op/r_in, null, {weight: -10.0}]";
    assert!(yaml.contains(line));
    let with_delay = |d: f64| {
        yaml.replace(
            line,
            &format!("[IIN/qif_op/r, PC/qif_op/r_in, null, {{weight: -10.0, delay: {d:?}}}]"),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let load = |text: String, name: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let opts = crate::template::LoadOptions::default();
        crate::model::load_circuit(&format!("{}/pc_iin", file.display()), &opts)
            .map_err(|e| format!("{e:?}"))
            .unwrap()
            .circuit
    };
    let base = load(with_delay(0.01), "base.yaml");
    let delays = [0.002, 0.01, 0.03];
    let values: IndexMap<String, Vec<f64>> = [("d".to_string(), delays.to_vec())].into_iter().collect();
    let mut spec = qif_spec(2);
    spec.param_grid = Grid::from_values(&values, false).unwrap();
    spec.param_map = ParamMap::new().edges("d", &["delay"], &[("IIN", "PC", Some(0))]);
    let r = in_memory(&spec, &base);
    let mut differ = false;
    for (p, &d) in delays.iter().enumerate() {
        let c = load(with_delay(d), &format!("d{p}.yaml"));
        let (rows, _) = single_run(&c, &spec, p, &[]);
        for col in 0..2 {
            let single: Vec<f64> = rows.iter().map(|row| row[col]).collect();
            assert!(same(&r.trace(p, col).unwrap(), &single), "delay {d} column {col}");
        }
        differ |= p > 0 && !same(&r.trace(p, 0).unwrap(), &r.trace(0, 0).unwrap());
    }
    assert!(differ, "the delay changes the traces");
}

/// Issue 14 item 7: a flat sum as deep as the parser accepts goes through every stage in a
/// debug build: template, model passes and dropping the trees on an 8 MiB stack (a main
/// thread's, where the CLI and Python load templates), each back end's compile on its own
/// thread ([`COMPILE_STACK`]), the run; and one term more is a positioned error. Reference: x' = Σ a_k is a
/// constant, so Euler gives x(t) = t·Σ a_k (up to the rounding of the sum and of the
/// steps: 1e-12 relative).
#[test]
fn parse_equation_flat_sum_at_the_height_limit_compiles_in_a_small_stack() {
    let terms = crate::syntax::parser::MAX_TREE_HEIGHT;
    let sum: Vec<String> = (0..terms).map(|i| format!("a{}", i % 3)).collect();
    let yaml = |sum: &str| {
        format!(
                "Op:\n  base: OperatorTemplate\n  equations: \"d/dt * x = {sum}\"\n  variables:\n    x: output(0.0)\n    a0: 1.0\n    a1: 2.0\n    a2: 3.0\nN: {{base: NodeTemplate, operators: [Op]}}\nNet: {{base: CircuitTemplate, nodes: {{p: N}}}}\n"
            )
    };
    let text = yaml(&sum.join(" + "));
    let rate: f64 = (0..terms).map(|i| [1.0, 2.0, 3.0][i % 3]).sum();
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let circuit = test_models::from_yaml(&text, "Net");
            for backend in [Backend::Reference, Backend::Jit, Backend::C] {
                let grid = Grid::from_rows(Vec::new(), &[Vec::new()]).unwrap();
                let sim = SimConfig::new(Method::Euler, 0.01, 1e-3, None);
                let mut spec = SweepSpec::new(grid, ParamMap::new(), sim);
                spec.outputs = vec![("x".into(), "p/Op/x".into())];
                spec.backend = backend;
                let r = in_memory(&spec, &circuit);
                let traces = r.traces.unwrap();
                for (k, (&t, &x)) in r.time.iter().zip(&traces).enumerate() {
                    assert!(
                        (x - rate * t).abs() <= 1e-12 * rate * t.max(1e-3),
                        "{backend:?} sample {k}: {x} vs {}",
                        rate * t
                    );
                }
            }
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    let dir = tempfile::tempdir().unwrap();
    let one_more: Vec<String> = (0..=terms).map(|i| format!("a{}", i % 3)).collect();
    std::fs::write(dir.path().join("deeper.yaml"), yaml(&one_more.join(" + "))).unwrap();
    let opts = crate::template::LoadOptions::default();
    let Err(err) = crate::model::load_circuit(&format!("{}/Net", dir.path().join("deeper.yaml").display()), &opts)
    else {
        panic!("one term more is refused");
    };
    let codes: Vec<&str> = err.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["eq/too-deep"]);
    let d = err.diagnostics.iter().next().unwrap();
    let (line, col) = err.sources.line_col(d.span.unwrap());
    // The `+` that makes the tree one level too deep, the `terms`-th: `  equations: "d/dt *
    // x = ` is 25 columns, then `aK + ` per term.
    assert_eq!((line, col), (3, 25 + 5 * (terms - 1) + 4), "{}", d.message);
}
