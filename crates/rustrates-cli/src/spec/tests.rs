use rustrates::sweep::refine::{Criterion, Refine};
use rustrates::sweep::regime::RandomStarts;

use super::*;

fn load_text(text: &str) -> Result<SpecFile, (SourceMap, Diagnostics)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("spec.yaml");
    std::fs::write(&path, text).expect("write spec");
    load(&path)
}

/// A spec that must load; the diagnostics otherwise.
fn valid(text: &str) -> SpecFile {
    load_text(text).map_err(|(_, d)| format!("{d:?}")).expect("valid")
}

#[test]
fn spec_seed_example_gives_25_points_in_pyrates_order() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/montbrio/sweep.yaml");
    let f = load(&path)
        .map_err(|(_, d)| format!("{d:?}"))
        .expect("the example spec is valid");
    assert_eq!(f.spec.param_grid.len(), 25);
    // numpy: np.stack(np.meshgrid(a, b), -1).reshape(-1, 2) varies the first key fastest.
    assert_eq!(&f.spec.param_grid.column(0)[..6], &[-5.0, -2.5, 0.0, 2.5, 5.0, -5.0]);
    assert_eq!(&f.spec.param_grid.column(1)[..6], &[-5.0, -5.0, -5.0, -5.0, -5.0, -2.5]);
    assert_eq!(f.spec.sim.dt, 1e-4);
    assert_eq!(f.spec.outputs, vec![("r".to_string(), "PC/Op_e/r".to_string())]);
}

#[test]
fn spec_linspace_matches_numpy_values() {
    // np.linspace(0, 1, 4) = [0, 1/3, 2/3, 1]
    let f = valid("template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\nparam_grid: {k: {linspace: [0, 1, 4]}}\n");
    assert_eq!(f.spec.param_grid.column(0), &[0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
}

#[test]
fn spec_problems_are_all_reported_with_positions() {
    let text = "template: x.y\nsimulation_tim: 1\nstep_size: fast\noutputs: {r: a/b/c}\nsolver: leapfrog\n";
    let Err((sources, diags)) = load_text(text) else {
        panic!("the spec is invalid")
    };
    let found: Vec<(&str, (usize, usize))> = diags
        .iter()
        .map(|d| (d.code, sources.line_col(d.span.expect("every problem has a position"))))
        .collect();
    assert!(found.contains(&("spec/unknown-key", (2, 1))), "{found:?}");
    assert!(found.contains(&("spec/not-a-number", (3, 12))), "{found:?}");
    assert!(found.contains(&("spec/unknown-solver", (5, 9))), "{found:?}");
    assert!(found.iter().any(|(c, _)| *c == "spec/missing-key"), "{found:?}");
}

#[test]
fn spec_refine_parses_and_bad_values_are_positioned() {
    use rustrates::sweep::refine::RefineError;
    let base = "template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\nsummaries: [regime, mean]\n";
    let f = valid(&format!("{base}refine: {{levels: 4}}\n"));
    assert_eq!(
        f.spec.refine,
        Some(Refine {
            levels: 4,
            criterion: Criterion::Regime,
            tolerance: 0.0
        })
    );
    let f = valid(&format!(
        "{base}refine: {{levels: 2, criterion: mean, tolerance: 0.5}}\n"
    ));
    assert_eq!(
        f.spec.refine,
        Some(Refine {
            levels: 2,
            criterion: Criterion::Summary(Statistic::Mean),
            tolerance: 0.5
        })
    );
    // What the parser refuses, at the offending value (line 6 is the refine line).
    for (extra, code, col) in [
        ("refine: {levels: 2.5}", "spec/not-a-count", 18),
        ("refine: {levels: 2, criterion: wobble}", "spec/unknown-statistic", 32),
        ("refine: {levels: 2, tolerance: tight}", "spec/not-a-number", 32),
        ("refine: {level: 2}", "spec/unknown-key", 10),
        ("refine: {criterion: regime}", "spec/missing-key", 9),
        ("refine: 5", "spec/not-a-mapping", 9),
    ] {
        let Err((sources, diags)) = load_text(&format!("{base}{extra}\n")) else {
            panic!("{extra} is invalid")
        };
        let d = diags.iter().next().expect("one problem");
        assert_eq!(
            (d.code, sources.line_col(d.span.expect("positioned"))),
            (code, (6, col)),
            "{extra}"
        );
    }
    // What the engine refuses, located at the value it names.
    let f = load_text(&format!("{base}refine: {{levels: 0, tolerance: -1}}\n"))
        .map_err(|(_, d)| format!("{d:?}"))
        .expect("parses");
    for (err, col) in [
        (RefineError::Levels { levels: 0 }, 18),
        (RefineError::Tolerance { tolerance: -1.0 }, 32),
    ] {
        let diags = f.locate(&SweepError::Refine(err));
        let d = diags.iter().next().expect("one problem");
        assert_eq!(d.code, "spec/refine");
        assert_eq!(f.sources.line_col(d.span.expect("positioned")), (6, col));
    }
}

#[test]
fn spec_trace_precision_float32_or_an_error_at_its_value() {
    let base = "template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\n";
    let f = valid(base);
    assert_eq!(f.trace_type, TraceType::Float64, "the values as computed by default");
    let f = valid(&format!("{base}trace_precision: float32\n"));
    assert_eq!(f.trace_type, TraceType::Float32);
    let Err((sources, diags)) = load_text(&format!("{base}trace_precision: half\n")) else {
        panic!("`half` is not a trace precision")
    };
    let d = diags.iter().next().expect("one problem");
    assert_eq!(d.code, "spec/unknown-precision");
    assert_eq!(sources.line_col(d.span.expect("positioned")), (5, 18));
}

/// Every setting that names a choice (solver, backend, float and trace precision): a known
/// name (an alias included) gives its value, an unknown one its code, message and position.
#[test]
fn spec_named_settings_parse_or_are_positioned_errors() {
    let base = "template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\n";
    let f = valid(&format!(
        "{base}solver: heun\nbackend: c\nfloat_precision: single\ntrace_precision: float32\n"
    ));
    assert_eq!(f.spec.sim.method, Method::Heun);
    assert_eq!(f.spec.backend, Backend::C);
    assert_eq!(f.spec.precision, Precision::F32);
    assert_eq!(f.trace_type, TraceType::Float32);
    let f = valid(base);
    assert_eq!(
        (f.spec.sim.method, f.spec.backend, f.spec.precision, f.trace_type),
        (Method::Euler, Backend::Auto, Precision::F64, TraceType::Float64),
        "the defaults"
    );
    let cases = [
        ("solver: leap", "spec/unknown-solver", "unknown solver `leap`", 9),
        ("backend: gpu", "spec/unknown-backend", "unknown backend `gpu`", 10),
        (
            "float_precision: half",
            "spec/unknown-precision",
            "unknown float_precision `half`",
            18,
        ),
        (
            "trace_precision: half",
            "spec/unknown-precision",
            "unknown trace_precision `half`",
            18,
        ),
    ];
    for (line, code, message, col) in cases {
        let Err((sources, diags)) = load_text(&format!("{base}{line}\n")) else {
            panic!("`{line}` is invalid")
        };
        let d = diags.iter().next().expect("one problem");
        assert_eq!((d.code, d.message.as_str()), (code, message), "{line}");
        assert_eq!(sources.line_col(d.span.expect("positioned")), (5, col), "{line}");
    }
}

#[test]
fn spec_default_chunk_size_is_65536_points_kept_or_not() {
    // 65,536 points per chunk whether traces are kept or not, so a 100 × 100 sweep is one
    // chunk, written without part files; a chunk_size in the file wins either way.
    let base = "template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\nsummaries: [mean]\n";
    let chunk = |extra: &str| {
        let f = valid(&format!("{base}{extra}"));
        (f.spec.keep_traces, f.spec.chunk_size)
    };
    assert_eq!(chunk("keep_traces: true\n"), (true, 65_536));
    assert_eq!(
        chunk(""),
        (false, 65_536),
        "summaries without keep_traces keep no traces"
    );
    assert_eq!(chunk("keep_traces: false\nchunk_size: 100\n"), (false, 100));
    assert_eq!(chunk("keep_traces: true\nchunk_size: 0\n"), (true, 0));
}

#[test]
fn spec_regime_summary_and_thresholds() {
    // `regime` brings its four companion statistics; thresholds are read, and a bad one
    // is refused by the engine's check at the line and column of its value.
    let base = "template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\nsummaries: [regime, mean]\n";
    let f = valid(&format!("{base}regime: {{stationary_tol: 1.0e-8, min_cycles: 4}}\n"));
    let names: Vec<&str> = f.spec.summaries.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["regime", "period", "amplitude", "eig_re", "eig_im", "mean"]);
    assert_eq!((f.spec.regime.stationary_tol, f.spec.regime.min_cycles), (1e-8, 4));
    assert_eq!(f.spec.regime.period_rtol, 1e-2);
    let f = load_text(&format!("{base}regime: {{period_rtol: -1}}\n")).expect("parses");
    let problems = checks::check_regime(&f.spec);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let diags = f.locate(&SweepError::Settings(problems));
    let d = diags.iter().next().unwrap();
    assert_eq!(f.sources.line_col(d.span.unwrap()), (6, 23), "{d:?}");
    let Err((_, diags)) = load_text(&format!("{base}regime: {{period: 1}}\n")) else {
        panic!("an unknown threshold must fail")
    };
    assert!(diags.iter().any(|d| d.code == "spec/unknown-key"), "{diags:?}");
    // Starts per point, in order; `multistable` with one start is refused at its key.
    let f = load_text(&format!(
        "{base}initial_conditions: [{{p/o/r: 0.01, p/o/v: -2}}, {{p/o/r: 2}}]\n"
    ))
    .expect("valid");
    assert_eq!(
        f.spec.initial_conditions,
        vec![
            vec![("p/o/r".to_string(), 0.01), ("p/o/v".to_string(), -2.0)],
            vec![("p/o/r".to_string(), 2.0)]
        ]
    );
    let f = load_text(&format!(
        "{}initial_conditions: [{{p/o/r: 1}}]\n",
        base.replace("[regime, mean]", "[regime, multistable]")
    ))
    .expect("parses");
    let diags = f.locate(&SweepError::Settings(checks::check_regime(&f.spec)));
    let d = diags.iter().next().expect("one problem");
    assert_eq!(f.sources.line_col(d.span.unwrap()), (6, 21), "{d:?}");
    // Random starts: parsed as written; bad bounds refused by the engine at the key's line.
    let f = load_text(&format!(
        "{base}random_starts: {{n: 3, seed: 11, bounds: {{p/o/r: [0, 2.5], p/o/v: [-1, 0]}}}}\n"
    ))
    .expect("valid");
    assert_eq!(
        f.spec.random_starts,
        Some(RandomStarts {
            n: 3,
            seed: 11,
            bounds: vec![("p/o/r".into(), 0.0, 2.5), ("p/o/v".into(), -1.0, 0.0)]
        })
    );
    let f = load_text(&format!("{base}random_starts: {{n: 3, bounds: {{p/o/r: [2, 1]}}}}\n")).expect("parses");
    assert_eq!(f.spec.random_starts.as_ref().map(|r| r.seed), Some(0));
    let diags = f.locate(&SweepError::Settings(checks::check_regime(&f.spec)));
    let d = diags.iter().next().expect("one problem");
    assert_eq!(f.sources.line_col(d.span.unwrap()), (6, 16), "{d:?}");
    assert!(d.message.contains("low ≤ high"), "{d:?}");
    for bad in [
        "{n: -1, bounds: {p/o/r: [0, 1]}}",
        "{bounds: {p/o/r: [0, 1]}}",
        "{n: 2, bounds: {p/o/r: 1}}",
        "{n: 2, spread: 1}",
    ] {
        assert!(load_text(&format!("{base}random_starts: {bad}\n")).is_err(), "{bad}");
    }
}

#[test]
fn spec_zip_of_unequal_lengths_is_an_error() {
    let text = "template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\nparam_grid: {a: [1, 2], b: [1, 2, 3]}\n";
    let Err((_, diags)) = load_text(text) else {
        panic!("unequal lengths without permute must fail")
    };
    assert!(diags.iter().any(|d| d.code == "spec/bad-grid"));
}

/// Mutates `corpus` texts with a fixed-seed generator (the template fuzzer's mutations
/// plus spec tokens) and loads each as a spec: diagnostics rendered both ways, and a spec
/// that loads is checked against the seed model by the engine (`sweep::check`) and its
/// error located and rendered. Returns (inputs, loaded, refused); panics name the input.
fn fuzz_spec_loader(stop: impl Fn(u64) -> bool) -> (u64, u64, u64) {
    use rustrates::syntax::render;
    let circuit = rustrates::model::load_circuit(
        "model_templates.montbrio.simple_montbrio.Net3",
        &rustrates::template::LoadOptions::default(),
    )
    .expect("Net3 loads")
    .circuit;
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/montbrio/sweep.yaml"))
            .expect("example spec");
    let corpus = [
            example.as_str(),
            "template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\nparam_grid: {k: {linspace: [0, 1, 4]}}\n",
            "template: model_templates.montbrio.simple_montbrio.Net3\nsimulation_time: 0.1\nstep_size: 1.0e-3\nparam_grid: {eta_op: [-5, 5], eta_iin: {arange: [0, 1, 0.5]}}\npermute_grid: true\nparam_map:\n  eta_op: {vars: [Op_e/eta], nodes: [PC]}\n  eta_iin: {vars: [Op_i/eta], nodes: [IIN]}\n  w: {vars: [weight], edges: [[PC, IIN, 0]]}\ninputs: {PC/Op_e/inp: 1.0}\noutputs: {r: all/Op_e/r}\nsummaries: [mean, std]\ncutoff: 0.05\nsampling_step_size: 2.0e-3\nchunk_size: 3\nblock_size: 2\n",
        ];
    let alphabet: Vec<char> = " \n-:[]{},'\"&*<#|>/.()^+=01eE9xyr_".chars().collect();
    let tokens = [
        "linspace: ",
        "arange: ",
        "1e400",
        ".nan",
        "-.inf",
        "1e19",
        "0",
        "-1",
        "[]",
        "{}",
        "nodes: ",
        "vars: ",
        "edges: ",
        "\n  ",
        "*a",
        "&a ",
        "<<: ",
        "null",
        "true",
        "1.0e-300",
        ": [",
        "file: x.csv",
    ];
    let mut mutator = rustrates::model::test_models::TextMutator::new(0x9E37_79B9_7F4A_7C15);
    let (mut runs, mut loaded, mut refused) = (0u64, 0u64, 0u64);
    let path = Path::new("fuzz/spec.yaml");
    while !stop(runs) {
        let mut text = mutator.pick(&corpus).to_string();
        mutator.mutate(&mut text, &alphabet, &tokens);
        let result = std::panic::catch_unwind(|| match super::load_text(path, text.clone()) {
            Ok(f) => {
                if let Err(e) = rustrates::sweep::check(&f.spec, &circuit) {
                    let d = f.locate(&e);
                    assert!(!d.is_empty());
                    let _ = render::render_all_full(&d, &f.sources);
                }
                true
            }
            Err((sources, diags)) => {
                assert!(diags.has_errors(), "a refused spec has an error");
                let _ = render::render_all_concise(&diags, &sources);
                let _ = render::render_all_full(&diags, &sources);
                false
            }
        });
        match result {
            Ok(true) => loaded += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("panic on input:\n{text}"),
        }
        runs += 1;
    }
    (runs, loaded, refused)
}

#[test]
fn spec_fuzz_2000_mutated_specs_never_panic() {
    let (runs, loaded, refused) = fuzz_spec_loader(|n| n >= 2000);
    assert_eq!(runs, loaded + refused);
    assert!(loaded > 0 && refused > 0, "{loaded} loaded, {refused} refused");
}

/// Time-boxed: `FUZZ_SECONDS=600 cargo test -p rustrates-cli spec_fuzz_for_a_while --
/// --ignored --nocapture`.
#[test]
#[ignore = "long-running: set FUZZ_SECONDS"]
fn spec_fuzz_for_a_while() {
    let secs = rustrates::model::test_models::fuzz_seconds(10);
    let start = std::time::Instant::now();
    let (runs, loaded, refused) = fuzz_spec_loader(|_| start.elapsed().as_secs() >= secs);
    println!("spec_fuzz_for_a_while: {runs} inputs in {secs} s ({loaded} loaded, {refused} refused), 0 panics");
}
