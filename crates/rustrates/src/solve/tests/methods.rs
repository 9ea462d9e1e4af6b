//! The steppers against analytic solutions and closed forms: order of convergence, the RK4
//! oscillator, rk45's tolerance, single precision, lanes equal to single runs, divergence.

use super::*;

/// Max |x − e^(−t)| over the samples of the decay model.
fn decay_error(method: Method, dt: f64, precision: Precision) -> f64 {
    let (c, reference) = test_models::exponential_decay();
    let k = compile(&c, precision);
    let tr = run_default(
        &c,
        &k,
        &SimConfig::new(method, 2.0, dt, Some(0.1)),
        &[out(&c, "decay/op/x")],
        1,
    );
    let exact = reference.exact.expect("decay has a closed form");
    tr.time
        .iter()
        .zip(tr.trace(0, 0))
        .map(|(t, x)| (x - exact(*t)[0]).abs())
        .fold(0.0, f64::max)
}

#[test]
fn fixed_step_methods_exponential_decay_converge_at_their_order() {
    // Global error of an order-p method scales as dt^p, so log2(e(dt)/e(dt/2)) → p. At these
    // step sizes (0.1 … 0.0125 on e^(−t)) the leading term dominates: ±0.2 holds with margin
    // (the next term is O(dt) relative, ≤ 10 %, i.e. ≤ 0.15 in log2).
    for (method, order) in [(Method::Euler, 1.0), (Method::Heun, 2.0), (Method::Rk4, 4.0)] {
        let errs: Vec<f64> = (0..4)
            .map(|i| decay_error(method, 0.1 / f64::from(1 << i), Precision::F64))
            .collect();
        for w in errs.windows(2) {
            let observed = (w[0] / w[1]).log2();
            assert!(
                (observed - order).abs() < 0.2,
                "{method:?}: observed order {observed} from {errs:?}"
            );
        }
    }
}

#[test]
fn rk4_harmonic_oscillator_matches_discrete_closed_form_and_conserves_energy() {
    // With z = x + i·v/ω the system is z' = −iω z, so RK4 gives exactly z_n = R(−iωh)^n with
    // R(q) = 1 + q + q²/2 + q³/6 + q⁴/24: an independent reference for every sample, limited
    // only by rounding (≈ n·ε ≈ 1e-12 after 1e4 steps). The energy ½v² + ½ω²x² shrinks by
    // |R|² = 1 − (ωh)⁶/72 + … per step: 8.5e-12 relative after 1e4 steps at ωh = 2π·1e-3.
    let (c, reference) = test_models::harmonic_oscillator();
    let k = compile(&c, Precision::F64);
    let h = 1e-3;
    let tr = run_default(
        &c,
        &k,
        &SimConfig::new(Method::Rk4, 10.0, h, Some(0.01)),
        &[out(&c, "osc/op/x"), out(&c, "osc/op/v")],
        1,
    );
    let w = std::f64::consts::TAU;
    let q = (0.0, -w * h);
    let cmul = |a: (f64, f64), b: (f64, f64)| (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0);
    let q2 = cmul(q, q);
    let q3 = cmul(q2, q);
    let q4 = cmul(q3, q);
    let r = (
        1.0 + q.0 + q2.0 / 2.0 + q3.0 / 6.0 + q4.0 / 24.0,
        q.1 + q2.1 / 2.0 + q3.1 / 6.0 + q4.1 / 24.0,
    );
    let r10 = (0..10).fold((1.0, 0.0), |acc, _| cmul(acc, r));
    let mut z = (1.0, 0.0);
    let e0 = 0.5 * w * w;
    let exact = reference.exact.expect("closed form");
    for (i, t) in tr.time.iter().enumerate() {
        let (x, v) = (tr.trace(0, 0)[i], tr.trace(1, 0)[i]);
        assert!(
            (x - z.0).abs() < 1e-10 && (v / w - z.1).abs() < 1e-10,
            "t={t}: {x},{v} vs {z:?}"
        );
        // Against the continuous solution: phase error (ωh)⁵/120 per step → 8e-9 at t = 10.
        assert!((x - exact(*t)[0]).abs() < 2e-8, "t={t}");
        let e = 0.5 * v * v + 0.5 * w * w * x * x;
        assert!(((e - e0) / e0).abs() < 2e-11, "energy drift {} at t={t}", (e - e0) / e0);
        z = cmul(z, r10);
    }
    assert_eq!(tr.time.len(), 1000);
}

#[test]
fn lanes_with_different_params_equal_single_runs_bitwise() {
    let (c, k) = with_reference_kernel(test_models::reference_circuit().0);
    let layout = c.layout();
    let eta_pc = layout.slot[c.find_var("PC/qif_op/eta").expect("var").0 as usize] as usize;
    let eta_iin = layout.slot[c.find_var("IIN/qif_op/eta").expect("var").0 as usize] as usize;
    let etas = [(-5.0, -5.0), (-2.5, 0.0), (0.0, -5.0), (2.5, 2.5), (5.0, -2.5)];
    let lanes = etas.len();
    let outputs = [out(&c, "PC/qif_op/r"), out(&c, "IIN/qif_op/r_in")];
    for method in [Method::Euler, Method::Rk4, Method::Rk45 { rtol: 1e-6, atol: 1e-9 }] {
        let config = SimConfig::new(method, 1.0, 1e-3, Some(1e-2));
        let mut p = default_params(&c, lanes);
        for (l, (a, b)) in etas.iter().enumerate() {
            p[eta_pc * lanes + l] = *a;
            p[eta_iin * lanes + l] = *b;
        }
        let all = simulate(&k, &config, &[], &outputs, &p, &default_init(&c, lanes), lanes).expect("run");
        assert_lanes_equal_single_runs(&all, &k, &c, (&config, &outputs), &p, 0..lanes);
    }
}

#[test]
fn diverging_lane_is_marked_and_others_are_untouched() {
    let (c, k) = with_reference_kernel(blow_up());
    let cs = [-1.0, 1.0, 0.25];
    let dt = 1e-3;
    let config = SimConfig::new(Method::Rk4, 1.5, dt, Some(1e-2));
    let x = [out(&c, "n/op/x")];
    let all = simulate(&k, &config, &[], &x, &cs, &[1.0; 3], 3).expect("run");
    match all.status[1] {
        // Analytic blow-up at 1/c = 1. RK4 follows the solution until h·x ≈ 1 (t ≈ 1 − dt);
        // from there each step raises h·x to a high power (the stages nest x²), so the state
        // overflows a few steps later: measured 3 steps at dt = 1e-3. Allow 4 steps.
        PointStatus::NonFinite { t } => {
            assert!(t > 1.0 - dt && t <= 1.0 + 4.0 * dt + 1e-12, "marked at {t}")
        }
        s => panic!("lane 1 not marked: {s:?}"),
    }
    let n_before = all.time.iter().filter(|t| **t < 1.0).count();
    assert!(all.trace(0, 1)[..n_before - 1].iter().all(|v| v.is_finite()));
    assert!(all.trace(0, 1)[n_before + 1..].iter().all(|v| v.is_nan()));
    assert_eq!(all.status[0], PointStatus::Ok);
    assert_eq!(all.status[2], PointStatus::Ok);
    for l in [0, 2] {
        let one = simulate(&k, &config, &[], &x, &[cs[l]], &[1.0], 1).expect("run");
        assert_bitwise_eq(all.trace(0, l), one.trace(0, 0));
        // and the lane is right: x = 1/(1 − c t) to RK4 accuracy.
        let end = all.time.len() - 1;
        let exact = 1.0 / (1.0 - cs[l] * all.time[end]);
        assert!((all.trace(0, l)[end] - exact).abs() < 1e-9 * exact);
    }
}

#[test]
fn f32_path_matches_f64_on_decay() {
    // RK4 at dt = 0.01 has global error ≈ 1e-10, far below f32 rounding; 200 steps of f32
    // rounding (ε = 6e-8 each) stay below 1e-5 relative.
    let (c, _) = test_models::exponential_decay();
    let k64 = compile(&c, Precision::F64);
    let k32 = compile(&c, Precision::F32);
    let config = SimConfig::new(Method::Rk4, 2.0, 0.01, None);
    let x = [out(&c, "decay/op/x")];
    let a = run_default(&c, &k64, &config, &x, 2);
    let b = run_default(&c, &k32, &config, &x, 2);
    let mut worst = 0.0f64;
    for (u, v) in a.trace(0, 1).iter().zip(b.trace(0, 1)) {
        worst = worst.max(((u - v) / u).abs());
    }
    assert!(worst < 1e-5 && worst > 0.0, "f32 deviation {worst}");
}

#[test]
fn rk45_meets_tolerance_with_fewer_steps_than_rk4() {
    // Global error of an error-per-step controller stays within ~10× the tolerance on smooth
    // problems (issue 4's acceptance bound).
    let (c, reference) = test_models::harmonic_oscillator();
    let k = compile(&c, Precision::F64);
    let exact = reference.exact.expect("closed form");
    let (rtol, atol) = (1e-6, 1e-8);
    let prep_cfg = SimConfig::new(Method::Rk45 { rtol, atol }, 5.0, 1e-2, Some(0.05));
    let outputs = [out(&c, "osc/op/x"), out(&c, "osc/op/v")];
    let p = default_params(&c, 1);
    let y0 = default_init(&c, 1);
    let block = Block {
        first_point: 0,
        lanes: 1,
        params: &p,
        init: &y0,
    };
    let prep = prepare(&k, &prep_cfg, &[], &outputs, &block).expect("valid");
    let mut sink = SampleBuffer::default();
    let problem = adaptive::Problem {
        kernel: &k,
        prep: &prep,
        block: &block,
        tol: adaptive::Tolerance { rtol, atol },
    };
    let (status, stats) = adaptive::run_with_stats::<f64>(problem, &mut sink, &RunOptions::default());
    assert_eq!(status, vec![PointStatus::Ok]);
    let w = std::f64::consts::TAU;
    let mut worst = 0.0f64;
    for (i, t) in sink.time.iter().enumerate() {
        let e = exact(*t);
        // Scale by the oscillation amplitude in each component (x: 1, v: ω).
        worst = worst
            .max((sink.values[2 * i] - e[0]).abs())
            .max((sink.values[2 * i + 1] - e[1]).abs() / w);
    }
    assert!(worst < 10.0 * (rtol + atol), "rk45 error {worst}");
    // RK4 needs dt small enough for the same error: (ωh)⁴·ωT/120 ≲ worst → count its steps.
    let mut h = 0.1;
    while {
        let tr = run_default(
            &c,
            &k,
            &SimConfig::new(Method::Rk4, 5.0, h, Some(0.05f64.max(h))),
            &outputs[..1],
            1,
        );
        tr.time
            .iter()
            .zip(tr.trace(0, 0))
            .map(|(t, x)| (x - exact(*t)[0]).abs())
            .fold(0.0, f64::max)
            > worst
    } {
        h /= 2.0;
    }
    let rk4_steps = (5.0 / h).round() as u64;
    assert!(
        stats.accepted + stats.rejected < rk4_steps,
        "rk45 {stats:?} vs rk4 {rk4_steps} steps"
    );
}

#[test]
fn rk45_masked_block_equals_lane_by_lane_bitwise() {
    // The masked block stepper (all lanes per kernel call, each with its own t and h) does the
    // same arithmetic per lane as the lane-by-lane stepper: identical bits and counts, also
    // with a lane that fails (a NaN parameter) beside healthy ones.
    let (c, k) = with_reference_kernel(test_models::reference_circuit().0);
    let eta = slot_of(&c, "PC/qif_op/eta");
    let lanes = 4;
    let mut p = default_params(&c, lanes);
    p[eta * lanes..(eta + 1) * lanes].copy_from_slice(&[-5.0, 0.0, f64::NAN, 4.0]);
    let init = default_init(&c, lanes);
    let outputs = [out(&c, "PC/qif_op/r"), out(&c, "IIN/qif_op/r_in")];
    let config = SimConfig::new(Method::Rk45 { rtol: 1e-6, atol: 1e-9 }, 2.0, 1e-3, Some(1e-2));
    let block = Block {
        first_point: 0,
        lanes,
        params: &p,
        init: &init,
    };
    let prep = prepare(&k, &config, &[], &outputs, &block).expect("valid");
    let problem = adaptive::Problem {
        kernel: &k,
        prep: &prep,
        block: &block,
        tol: adaptive::Tolerance { rtol: 1e-6, atol: 1e-9 },
    };
    let mut masked = SampleBuffer::default();
    let (s1, n1) = adaptive::run_masked::<f64>(problem, &mut masked);
    let mut lanewise = SampleBuffer::default();
    let (s2, n2) = adaptive::run_stats::<f64>(problem, &mut lanewise, &RunOptions::default());
    assert_eq!(s1, s2);
    assert_eq!(n1, n2);
    assert!(
        matches!(s1[2], PointStatus::StepTooSmall { .. } | PointStatus::NonFinite { .. }),
        "{s1:?}"
    );
    assert_eq!(s1[0], PointStatus::Ok);
    assert_eq!(masked.time, lanewise.time);
    assert_bitwise_eq(&masked.values, &lanewise.values);
}
