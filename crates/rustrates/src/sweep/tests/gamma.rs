//! Gamma-distributed delays (`delay` + `spread`, chains of ODEs) swept per point: chains of
//! different lengths, kernel reuse, initial values, part files, per-point inputs and the
//! errors for a delay below zero or NaN.

use super::*;

/// A source relaxing to 1 feeds a low-pass through a gamma-distributed edge (template
/// delay 0.15, spread 0.1: n = round(2.25) = 2 stages).
fn gamma_yaml(delay: f64, spread: f64) -> String {
    format!(
        r#"
P:
  base: OperatorTemplate
  equations: "r' = (u - r) / 0.05 + r_in"
  variables: {{r: output(0.0), u: 1.0, r_in: input(0.0)}}
Q:
  base: OperatorTemplate
  equations: "y' = (r_in - y) / 0.02"
  variables: {{y: output(0.0), r_in: input(0.0)}}
Src: {{base: NodeTemplate, operators: [P]}}
Dst: {{base: NodeTemplate, operators: [Q]}}
Net:
  base: CircuitTemplate
  nodes: {{a: Src, b: Dst}}
  edges:
    - [a/P/r, b/Q/r_in, null, {{weight: 2.0, delay: {delay:?}, spread: {spread:?}}}]
"#
    )
}

fn gamma_spec(delays: &[f64], spreads: &[f64], backend: Backend) -> SweepSpec {
    let values: IndexMap<String, Vec<f64>> = [("d".to_string(), delays.to_vec()), ("s".to_string(), spreads.to_vec())]
        .into_iter()
        .collect();
    let grid = Grid::from_values(&values, false).unwrap();
    let map =
        ParamMap::new()
            .edges("d", &["delay"], &[("a", "b", Some(0))])
            .edges("s", &["spread"], &[("a", "b", Some(0))]);
    let sim = SimConfig::new(Method::Rk4, 1.0, 1e-3, Some(1e-2));
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = vec![("y".into(), "b/Q/y".into())];
    spec.backend = backend;
    spec.summaries = vec![Statistic::Mean, Statistic::Last];
    (spec.block_size, spec.chunk_size, spec.threads) = (4, 4, Some(2));
    spec
}

/// Issue 14 item 5: a swept delay or spread that is negative or NaN would act as no
/// delay; it is refused, naming the key and the point, before anything compiles. 0 (no
/// delay) stays valid.
#[test]
fn sweep_negative_or_nan_delay_is_an_error_naming_key_and_point() {
    let circuit = test_models::from_yaml(&gamma_yaml(0.2, 0.1), "Net");
    for (delays, spreads, key, point) in [
        (vec![0.2, -0.1], vec![0.1, 0.1], "d", 1),
        (vec![0.2, f64::NAN], vec![0.1, 0.1], "d", 1),
        (vec![0.2, 0.2], vec![-0.1, 0.1], "s", 0),
    ] {
        let spec = gamma_spec(&delays, &spreads, Backend::Reference);
        let mut sink = MemorySink::new();
        let err = run(&spec, &circuit, &mut sink).unwrap_err();
        let SweepError::Settings(problems) = &err else {
            panic!("{err}")
        };
        assert_eq!(problems[0].setting, checks::Setting::GridKey(key.into()), "{err}");
        assert!(problems[0].message.contains(&format!("point {point}")), "{err}");
        assert!(sink.into_result().is_none(), "nothing ran");
        assert!(matches!(check(&spec, &circuit), Err(SweepError::Settings(_))));
    }
    let spec = gamma_spec(&[0.0, 0.2], &[0.1, 0.1], Backend::Reference);
    check(&spec, &circuit).unwrap();
}

#[test]
fn sweep_gamma_delays_with_different_chain_lengths_equal_single_runs() {
    // n = round((d/s)²): 1, 4, 2 (the template's), 9, 4, 6, 1 (spread 0.3: 0.44 → 0, kept
    // at 1), 4 — five distinct chains, interleaved so that chunks of 4 and blocks mix them.
    let delays = [0.1, 0.2, 0.14, 0.3, 0.2, 0.25, 0.2, 0.4];
    let spreads = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.2];
    let base = test_models::from_yaml(&gamma_yaml(0.15, 0.1), "Net");
    for backend in [Backend::Reference, Backend::Jit] {
        let spec = gamma_spec(&delays, &spreads, backend);
        let plan = build_plan(&spec, &base, None).unwrap();
        assert_eq!(plan.groups.len(), 5, "one kernel per distinct chain length");
        // Groups: the template's n = 2 first, then by first appearance n = 1, 4, 9, 6; each
        // block holds one group's points of a chunk.
        assert!(plan.gather);
        assert_eq!(
            plan.blocks(0..4, 4),
            vec![
                Lanes::Gathered(vec![2]),
                Lanes::Gathered(vec![0]),
                Lanes::Gathered(vec![1]),
                Lanes::Gathered(vec![3])
            ]
        );
        assert_eq!(
            plan.blocks(4..8, 4),
            vec![
                Lanes::Gathered(vec![6]),
                Lanes::Gathered(vec![4, 7]),
                Lanes::Gathered(vec![5])
            ]
        );
        let r = in_memory(&spec, &base);
        // Summaries only: blocks deliver through the sink instead of its trace array.
        let mut lean = spec.clone();
        lean.keep_traces = false;
        let lean = in_memory(&lean, &base);
        for (p, (&d, &s)) in delays.iter().zip(&spreads).enumerate() {
            let c = test_models::from_yaml(&gamma_yaml(d, s), "Net");
            let (rows, status) = single_run(&c, &spec, p, &[]);
            assert_eq!((status, r.status[p]), (PointStatus::Ok, PointStatus::Ok));
            let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
            let tr = r.trace(p, 0).unwrap();
            assert!(same(&tr, &single), "{backend:?} point {p}: delay {d} spread {s}");
            let last = single.last().copied().unwrap();
            assert_eq!(r.summary(Statistic::Last, p, 0).unwrap().to_bits(), last.to_bits());
            assert_eq!(lean.summary(Statistic::Last, p, 0).unwrap().to_bits(), last.to_bits());
            // The mean of the single run's trace, up to summation order (relative 1e-12
            // is ~1e4 ulp for 100 samples); another point's or statistic's value would
            // be off by far more.
            let mean = single.iter().sum::<f64>() / single.len() as f64;
            for res in [&r, &lean] {
                let m = res.summary(Statistic::Mean, p, 0).unwrap();
                assert!((m - mean).abs() <= 1e-12 * mean.abs(), "point {p}: mean {m} vs {mean}");
            }
        }
        // The chain length matters: same delay 0.2, n = 4 vs n = 1 differ.
        assert!(!same(&r.trace(1, 0).unwrap(), &r.trace(6, 0).unwrap()));
    }
}

#[test]
fn sweep_gamma_delays_with_one_chain_length_compile_one_kernel() {
    // (d/s)² = 4, 4.04, 3.96, 4.41: all round to the template's 4 stages.
    let base = test_models::from_yaml(&gamma_yaml(0.2, 0.1), "Net");
    let spec = gamma_spec(&[0.2, 0.201, 0.199, 0.21], &[0.1; 4], Backend::Reference);
    let plan = build_plan(&spec, &base, None).unwrap();
    assert_eq!(plan.groups.len(), 1);
    assert!(plan.group_of.is_none());
    assert_eq!(plan.blocks(0..4, 4), vec![Lanes::Run(0, 4)]);
    // A common length other than the template's (9, 9.3 → 9): still one kernel.
    let spec = gamma_spec(&[0.3, 0.305], &[0.1; 2], Backend::Reference);
    let plan = build_plan(&spec, &base, None).unwrap();
    assert_eq!(plan.groups.len(), 1);
    let r = in_memory(&spec, &base);
    let c = test_models::from_yaml(&gamma_yaml(0.305, 0.1), "Net");
    let (rows, _) = single_run(&c, &spec, 1, &[]);
    let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
    assert!(same(&r.trace(1, 0).unwrap(), &single));
}

#[test]
fn sweep_gamma_source_initial_value_starts_the_chain_like_single_runs() {
    // The chain's stages start at the source's initial value: sweeping that value must
    // move them too, as writing it into the YAML does.
    let yaml = |r0: f64| gamma_yaml(0.2, 0.1).replace("r: output(0.0)", &format!("r: output({r0:?})"));
    let base = test_models::from_yaml(&yaml(0.0), "Net");
    let values: IndexMap<String, Vec<f64>> = [("r0".to_string(), vec![0.0, 3.0])].into_iter().collect();
    let mut spec = gamma_spec(&[0.2], &[0.1], Backend::Reference);
    spec.param_grid = Grid::from_values(&values, false).unwrap();
    spec.param_map = ParamMap::new().nodes("r0", &["P/r"], &["a"]);
    let r = in_memory(&spec, &base);
    for (p, r0) in [0.0, 3.0].into_iter().enumerate() {
        let c = test_models::from_yaml(&yaml(r0), "Net");
        let (rows, _) = single_run(&c, &spec, p, &[]);
        let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
        assert!(same(&r.trace(p, 0).unwrap(), &single), "r0 = {r0}");
    }
    assert!(!same(&r.trace(0, 0).unwrap(), &r.trace(1, 0).unwrap()));
}

#[cfg(feature = "hdf5")]
#[test]
fn sweep_gamma_chain_groups_through_part_files_equal_memory_result() {
    // Chunks of 4 mix chain lengths 1, 4, 2, 9 | 4, 6, 1, 4; the file path delivers blocks
    // through the sink (no shared trace array) and must give the in-memory result.
    let delays = [0.1, 0.2, 0.14, 0.3, 0.2, 0.25, 0.2, 0.4];
    let spreads = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.2];
    let dir = tempfile::tempdir().unwrap();
    let text = gamma_yaml(0.15, 0.1);
    let base = test_models::from_yaml(&text, "Net");
    let spec = gamma_spec(&delays, &spreads, Backend::Reference);
    let mem = in_memory(&spec, &base);
    let out = dir.path().join("gamma.h5");
    let opts = crate::io::h5::FileOptions::new(&text, "base.yaml/Net");
    crate::io::h5::sweep_to_file(&spec, &base, &out, &opts, RunControl::default()).unwrap();
    let file = crate::io::h5::read_results(&out).unwrap();
    assert!(same_result(&mem, &file));
}

#[test]
fn sweep_jrc_2delaycoupled_gamma_delay_equals_single_runs_with_delay_in_yaml() {
    // The library's delay-coupled pair, the 1 → 2 delay swept at spread 1 ms:
    // n = 9, 16 (the template's), 25, 9.
    let opts = crate::template::LoadOptions::default();
    let base = crate::model::load_circuit("model_templates.neural_mass_models.jansenrit.JRC_2delaycoupled", &opts)
        .map_err(|e| format!("{e:?}"))
        .unwrap()
        .circuit;
    let yaml = include_str!("../../library/model_templates/neural_mass_models/jansenrit.yaml");
    let edge = "[jrc1/pc/pro/m, jrc2/pc/rpo_e_in/m_in, null, {weight: 20.0, delay: 0.004, spread: 0.001}]";
    assert!(yaml.contains(edge));
    let delays = [0.003, 0.004, 0.005, 0.003];
    let values: IndexMap<String, Vec<f64>> = [("d".to_string(), delays.to_vec())].into_iter().collect();
    let sim = SimConfig::new(Method::Euler, 0.2, 1e-4, Some(1e-3));
    let mut spec = SweepSpec::new(
        Grid::from_values(&values, false).unwrap(),
        ParamMap::new().edges("d", &["delay"], &[("jrc1/pc", "jrc2/pc", Some(0))]),
        sim,
    );
    spec.outputs = vec![("v".into(), "jrc2/pc/rpo_e_in/v".into())];
    spec.backend = Backend::Reference;
    (spec.block_size, spec.threads) = (2, Some(2));
    assert_eq!(build_plan(&spec, &base, None).unwrap().groups.len(), 3);
    let r = in_memory(&spec, &base);
    let dir = tempfile::tempdir().unwrap();
    for (p, &d) in delays.iter().enumerate() {
        let file = dir.path().join(format!("jr{p}.yaml"));
        let edited = edge.replace("delay: 0.004", &format!("delay: {d:?}"));
        std::fs::write(&file, yaml.replace(edge, &edited)).unwrap();
        let c = crate::model::load_circuit(&format!("{}/JRC_2delaycoupled", file.display()), &opts)
            .map_err(|e| format!("{e:?}"))
            .unwrap()
            .circuit;
        let (rows, _) = single_run(&c, &spec, p, &[]);
        let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
        assert!(same(&r.trace(p, 0).unwrap(), &single), "delay {d}");
    }
    // The delay reaches the output: 3 ms and 5 ms differ.
    assert!(!same(&r.trace(0, 0).unwrap(), &r.trace(2, 0).unwrap()));
}

#[test]
fn sweep_gamma_chains_with_per_point_input_run_consecutive_blocks_equal_single_runs() {
    // A per-point input column is addressed by `first_point + lane`: blocks stay runs of
    // consecutive points of one group, and every point still equals its single run.
    let delays = [0.2, 0.2, 0.1, 0.1, 0.3, 0.2];
    let spreads = [0.1; 6];
    let base = test_models::from_yaml(&gamma_yaml(0.15, 0.1), "Net");
    let mut spec = gamma_spec(&delays, &spreads, Backend::Reference);
    let steps = 1000;
    let data: Vec<f64> = (0..steps * 6).map(|i| 0.5 * (i % 6) as f64).collect();
    spec.inputs = vec![(
        "a/P/r_in".into(),
        Signal::PerPoint {
            points: 6,
            data: data.into(),
        },
    )];
    (spec.block_size, spec.chunk_size) = (4, 0);
    let plan = build_plan(&spec, &base, None).unwrap();
    assert!(!plan.gather);
    assert_eq!(
        plan.blocks(0..6, 3),
        vec![Lanes::Run(0, 2), Lanes::Run(2, 2), Lanes::Run(4, 1), Lanes::Run(5, 1)]
    );
    let r = in_memory(&spec, &base);
    for (p, &d) in delays.iter().enumerate() {
        let c = test_models::from_yaml(&gamma_yaml(d, 0.1), "Net");
        let (rows, _) = single_run(&c, &spec, p, &[]);
        let single: Vec<f64> = rows.iter().map(|row| row[0]).collect();
        assert!(same(&r.trace(p, 0).unwrap(), &single), "point {p}");
    }
    // The input columns differ per point: equal delays, different traces.
    assert!(!same(&r.trace(0, 0).unwrap(), &r.trace(1, 0).unwrap()));
}
