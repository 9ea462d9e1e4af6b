//! Sampling and time-series inputs: the rows taken, the errors for steps and inputs that do
//! not fit, per-point input columns, every sample time delivered without outputs.

use super::*;

#[test]
fn sampling_gives_round_t_over_dts_rows_before_each_step() {
    let (c, k) = with_reference_kernel(test_models::exponential_decay().0);
    let x = [out(&c, "decay/op/x")];
    let every = run_default(&c, &k, &SimConfig::new(Method::Euler, 1.0, 1e-3, None), &x, 1);
    let tenth = run_default(&c, &k, &SimConfig::new(Method::Euler, 1.0, 1e-3, Some(1e-2)), &x, 1);
    assert_eq!(every.time.len(), 1000);
    assert_eq!(tenth.time.len(), 100);
    // Row 0 is the initial state; row k is the state after 10k steps (x_n = 0.999^n exactly
    // as Euler computes it), taken before step 10k.
    assert_eq!(tenth.trace(0, 0)[0], 1.0);
    for (kk, t) in tenth.time.iter().enumerate() {
        assert!((t - kk as f64 * 1e-2).abs() < 1e-15);
        assert_eq!(tenth.trace(0, 0)[kk].to_bits(), every.trace(0, 0)[10 * kk].to_bits());
    }
    assert!((every.trace(0, 0)[999] - 0.999f64.powi(999)).abs() < 1e-13);
    // A cutoff drops the samples before it; indices restart at 0.
    let mut config = SimConfig::new(Method::Euler, 1.0, 1e-3, Some(1e-2));
    config.cutoff = 0.3;
    let cut = run_default(&c, &k, &config, &x, 1);
    assert_eq!(cut.time.len(), 70);
    assert!((cut.time[0] - 0.3).abs() < 1e-12);
    assert_bitwise_eq(cut.trace(0, 0), &tenth.trace(0, 0)[30..]);
}

#[test]
fn sampling_step_not_a_multiple_is_an_error_with_suggestion() {
    let (_, k) = with_reference_kernel(test_models::exponential_decay().0);
    let err = simulate(
        &k,
        &SimConfig::new(Method::Euler, 1.0, 1e-3, Some(1.6e-3)),
        &[],
        &[],
        &[1.0],
        &[1.0],
        1,
    )
    .expect_err("1.6 dt");
    assert_eq!(
        err,
        SolveError::SamplingNotMultiple {
            dts: 1.6e-3,
            dt: 1e-3,
            suggestion: 2e-3
        }
    );
    for dt in [0.0, -1e-3, f64::NAN, f64::INFINITY] {
        let r = simulate(
            &k,
            &SimConfig::new(Method::Euler, 1.0, dt, None),
            &[],
            &[],
            &[1.0],
            &[1.0],
            1,
        );
        assert!(matches!(r, Err(SolveError::BadStep { .. })), "{dt}: {r:?}");
    }
    let r = simulate(
        &k,
        &SimConfig::new(Method::Euler, -1.0, 1e-3, None),
        &[],
        &[],
        &[1.0],
        &[1.0],
        1,
    );
    assert_eq!(r, Err(SolveError::BadTime { t: -1.0 }));
}

/// `x' = I` with x(0) = 0 and an input `I` (default 0.25): Euler sums the input rows exactly.
fn integrator() -> Circuit {
    let mut b = Builder::new("integrator");
    let x = b.var("n/op/x", VarKind::State, 0.0);
    let i = b.var("n/op/I", VarKind::Input, 0.25);
    let ie = b.v(i);
    b.ode(x, ie);
    b.c
}

#[test]
fn input_with_one_row_fewer_holds_its_last_value() {
    let (c, k) = with_reference_kernel(integrator());
    let var = c.find_var("n/op/I").expect("var");
    let x = [out(&c, "n/op/x"), out(&c, "n/op/I")];
    // T = 1, dt = 0.125: 8 steps, 8 samples (t = 0 … 0.875); with dts = dt the last step's row
    // only shows through the state, so sample 4 s later (T = 1 + dt would change steps).
    let config = SimConfig::new(Method::Euler, 1.0, 0.125, None);
    let rows: Vec<f64> = (0..7).map(|i| f64::from(i) + 1.0).collect(); // 7 = steps − 1 rows
    let short = InputBinding {
        var,
        signal: Signal::Shared(rows.clone().into()),
    };
    let tr = simulate(&k, &config, &[short], &x, &[], &[0.0], 1).expect("steps-1 rows accepted");
    let mut full = rows.clone();
    full.push(7.0);
    let long = InputBinding {
        var,
        signal: Signal::Shared(full.into()),
    };
    let tr_full = simulate(&k, &config, &[long], &x, &[], &[0.0], 1).expect("steps rows");
    assert_bitwise_eq(tr.trace(0, 0), tr_full.trace(0, 0));
    // x_n = dt·Σ_{i<n} row_i, exact in binary (dt = 1/8, integer rows); row i is the input
    // during step i and the sampled input at t = i·dt.
    let mut acc = 0.0;
    for n in 0..8 {
        assert_eq!(tr.trace(0, 0)[n], acc);
        assert_eq!(tr.trace(1, 0)[n], rows.get(n).copied().unwrap_or(7.0));
        acc += 0.125 * rows.get(n).copied().unwrap_or(7.0);
    }
    // Undriven inputs hold the IR default.
    let free = simulate(&k, &config, &[], &x, &[], &[0.0], 1).expect("run");
    assert_eq!(free.trace(1, 0)[3], 0.25);
    assert_eq!(free.trace(0, 0)[4], 4.0 * 0.125 * 0.25);
}

#[test]
fn input_of_wrong_length_or_columns_is_an_error() {
    let (c, k) = with_reference_kernel(integrator());
    let var = c.find_var("n/op/I").expect("var");
    let config = SimConfig::new(Method::Euler, 1.0, 0.125, None);
    let bad = InputBinding {
        var,
        signal: Signal::Shared(vec![0.0; 6].into()),
    };
    assert_eq!(
        simulate(&k, &config, std::slice::from_ref(&bad), &[], &[], &[0.0], 1),
        Err(SolveError::InputLength {
            name: "n/op/I".into(),
            found: 6,
            expected: 8,
            expected_minus_one: 7
        })
    );
    assert_eq!(
        validate_inputs(&k, &config, &[bad], 4),
        Err(SolveError::InputLength {
            name: "n/op/I".into(),
            found: 6,
            expected: 8,
            expected_minus_one: 7
        })
    );
    let cols = InputBinding {
        var,
        signal: Signal::PerPoint {
            points: 3,
            data: vec![0.0; 24].into(),
        },
    };
    assert_eq!(
        validate_inputs(&k, &config, &[cols], 4),
        Err(SolveError::InputColumns {
            name: "n/op/I".into(),
            found: 3,
            expected: 4
        })
    );
    let x = c.find_var("n/op/x").expect("var");
    assert_eq!(
        validate_inputs(
            &k,
            &config,
            &[InputBinding {
                var: x,
                signal: Signal::Constant(1.0)
            }],
            1
        ),
        Err(SolveError::NotAnInput { name: "n/op/x".into() })
    );
}

#[test]
fn per_point_input_columns_follow_global_point_index() {
    let (c, k) = with_reference_kernel(integrator());
    let var = c.find_var("n/op/I").expect("var");
    let config = SimConfig::new(Method::Euler, 1.0, 0.125, None);
    let points = 5;
    // Column j holds j + 1 in every row: lane l of a block starting at point 2 integrates l + 3.
    let data: Arc<[f64]> = (0..8 * points).map(|i| (i % points) as f64 + 1.0).collect();
    let inp = [InputBinding {
        var,
        signal: Signal::PerPoint { points, data },
    }];
    let mut sink = SampleBuffer::default();
    let status = run_block(
        &k,
        &config,
        &inp,
        &[out(&c, "n/op/x")],
        Block {
            first_point: 2,
            lanes: 3,
            params: &[],
            init: &[0.0; 3],
        },
        &mut sink,
    )
    .expect("run");
    assert_eq!(status, vec![PointStatus::Ok; 3]);
    let last = &sink.values[7 * 3..8 * 3];
    for (l, v) in last.iter().enumerate() {
        assert_eq!(*v, 7.0 * 0.125 * (l as f64 + 3.0));
    }
}

#[test]
fn run_without_outputs_still_delivers_every_sample_time() {
    // Sinks count the samples (a sweep checks it got one per time row), so every back end,
    // fused or not, delivers round(T/dts) = 100 samples at k·dts even with no outputs.
    let (c, _) = test_models::exponential_decay();
    for kernel in [compile(&c, Precision::F64), compile_c(&c), compile_jit(&c)] {
        let tr = run_default(
            &c,
            &kernel,
            &SimConfig::new(Method::Euler, 1.0, 1e-3, Some(1e-2)),
            &[],
            2,
        );
        assert_eq!(tr.time.len(), 100, "{:?}", kernel.backend());
        for (k, t) in tr.time.iter().enumerate() {
            assert!((t - k as f64 * 1e-2).abs() < 1e-15);
        }
    }
}
