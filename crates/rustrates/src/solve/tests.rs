//! Solver tests against independent references (analytic solutions, discrete closed forms,
//! algebraic fixed points, single-lane runs).

use std::sync::Arc;

use super::*;
use crate::kernel::test_kit::assert_lanes_equal_single_runs;
use crate::kernel::{Backend, KernelOptions, Precision};
use crate::model::test_models::{self, Builder};
use crate::model::{BinOp, Circuit, Expr, VarKind};

fn compile(c: &Circuit, precision: Precision) -> Kernel {
    Kernel::compile(
        c,
        &KernelOptions {
            backend: Backend::Reference,
            precision,
            ..KernelOptions::default()
        },
    )
    .expect("the reference back end always compiles")
}

fn out(c: &Circuit, name: &str) -> OutputBinding {
    OutputBinding {
        key: name.into(),
        var: c.find_var(name).expect("test models name their vars"),
    }
}

fn run_default(c: &Circuit, k: &Kernel, cfg: &SimConfig, outputs: &[OutputBinding], lanes: usize) -> Trajectories {
    simulate(
        k,
        cfg,
        &[],
        outputs,
        &default_params(c, lanes),
        &default_init(c, lanes),
        lanes,
    )
    .expect("valid run")
}

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

fn assert_bitwise_eq(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "sample {i}: {x} vs {y}");
    }
}

#[test]
fn lanes_with_different_params_equal_single_runs_bitwise() {
    let (c, _) = test_models::reference_circuit();
    let k = compile(&c, Precision::F64);
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
fn reference_circuit_euler_matches_hand_written_loop() {
    // The loop of shared/bench/montbrio_grid.c, written out here: the kernel + stepper must give
    // the same numbers (to rounding differences of operation order, ≤ 1e-12 after 1000 steps).
    let (c, _) = test_models::reference_circuit();
    let k = compile(&c, Precision::F64);
    let tr = run_default(
        &c,
        &k,
        &SimConfig::new(Method::Euler, 1.0, 1e-3, None),
        &[out(&c, "PC/qif_op/r"), out(&c, "IIN/qif_op/v")],
        1,
    );
    let pi = std::f64::consts::PI;
    let (mut rp, mut vp, mut ri, mut vi) = (0.01f64, -2.0f64, 0.01f64, -2.0f64);
    let dt = 1e-3;
    for n in 0..1000 {
        assert!((tr.trace(0, 0)[n] - rp).abs() < 1e-12 * rp.abs().max(1.0), "step {n}");
        assert!((tr.trace(1, 0)[n] - vi).abs() < 1e-12 * vi.abs().max(1.0), "step {n}");
        let in_p = 15.0 * rp - 10.0 * ri;
        let in_i = 10.0 * rp;
        let drp = 1.0 / pi + 2.0 * rp * vp;
        let dvp = vp * vp - 5.0 + 1.0 + in_p - (pi * rp).powi(2);
        let dri = 1.0 / pi + 2.0 * ri * vi;
        let dvi = vi * vi - 5.0 + in_i - (pi * ri).powi(2);
        rp += dt * drp;
        vp += dt * dvp;
        ri += dt * dri;
        vi += dt * dvi;
    }
}

#[test]
fn sampling_gives_round_t_over_dts_rows_before_each_step() {
    let (c, _) = test_models::exponential_decay();
    let k = compile(&c, Precision::F64);
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
    let (c, _) = test_models::exponential_decay();
    let k = compile(&c, Precision::F64);
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
    let c = integrator();
    let k = compile(&c, Precision::F64);
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
    let c = integrator();
    let k = compile(&c, Precision::F64);
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
    let c = integrator();
    let k = compile(&c, Precision::F64);
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

/// `x' = c·x²`, x(0) = 1: blows up at t = 1/c for c > 0, x = 1/(1 − c t).
fn blow_up() -> Circuit {
    let mut b = Builder::new("blowup");
    let x = b.var("n/op/x", VarKind::State, 1.0);
    let cc = b.var("n/op/c", VarKind::Param, 1.0);
    let (xe, ce) = (b.v(x), b.v(cc));
    let x2 = b.mul(xe, xe);
    let rhs = b.mul(ce, x2);
    b.ode(x, rhs);
    b.c
}

#[test]
fn diverging_lane_is_marked_and_others_are_untouched() {
    let c = blow_up();
    let k = compile(&c, Precision::F64);
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

fn settle(c: &Circuit, etas: &[f64], init_rv: &[(f64, f64)], t: f64) -> Trajectories {
    let k = compile(c, Precision::F64);
    let lanes = etas.len();
    let layout = c.layout();
    let eta = layout.slot[c.find_var("p/qif_op/eta").expect("var").0 as usize] as usize;
    let mut p = default_params(c, lanes);
    p[eta * lanes..(eta + 1) * lanes].copy_from_slice(etas);
    let mut y = default_init(c, lanes);
    for (l, (r, v)) in init_rv.iter().enumerate() {
        y[l] = *r;
        y[lanes + l] = *v;
    }
    simulate(
        &k,
        &SimConfig::new(Method::Rk4, t, 1e-2, Some(0.1)),
        &[],
        &[out(c, "p/qif_op/r")],
        &p,
        &y,
        lanes,
    )
    .expect("run")
}

#[test]
fn mpr_population_settles_on_analytic_fixed_points() {
    // A fixed point of the ODE is a fixed point of every RK map, so the run converges to the
    // analytic root itself; 300 time units of decay at rate ≥ 0.3 leave < 1e-30 of any offset.
    let (c, _) = test_models::mpr_single();
    let etas = [-8.0, -6.0, -2.0, 0.0, 3.0];
    let tr = settle(&c, &etas, &[(0.01, -2.0); 5], 300.0);
    for (l, eta) in etas.iter().enumerate() {
        let roots = test_models::mpr_fixed_points(*eta, 0.0, 15.0, 1.0);
        assert_eq!(roots.len(), 1, "eta {eta}: {roots:?}");
        let r = *tr.trace(0, l).last().expect("samples");
        assert!((r - roots[0]).abs() < 1e-6, "eta {eta}: {r} vs {}", roots[0]);
    }
}

#[test]
fn mpr_bistable_reaches_both_stable_points_and_oscillates_at_0528() {
    let (c, _) = test_models::mpr_single();
    let roots = test_models::mpr_fixed_points(-5.0, 0.0, 15.0, 1.0);
    // Low start (PyRates' r 0.01, v −2) and a start on the high branch (r 1.2, v −0.1).
    let tr = settle(&c, &[-5.0, -5.0], &[(0.01, -2.0), (1.2, -0.1)], 200.0);
    assert!((tr.trace(0, 0).last().expect("s") - roots[0]).abs() < 1e-6);
    assert!((tr.trace(0, 1).last().expect("s") - roots[2]).abs() < 1e-6);
    // Damped oscillation around the focus: frequency from the zero crossings of r − r*,
    // started 1e-3 off the focus (linear regime). The linearisation at (r*, v* = −Δ/(2π r*))
    // has eigenvalues 2v* ± i·sqrt(2r*(2π²r* − J)): ≈ 0.528 cycles per τ (SPEC §9).
    let rs = roots[2];
    let vs = -1.0 / (2.0 * std::f64::consts::PI * rs);
    let k = compile(&c, Precision::F64);
    let lanes = 1;
    let mut y = default_init(&c, lanes);
    y[0] = rs + 1e-3;
    y[1] = vs;
    let dt = 1e-3;
    let tr = simulate(
        &k,
        &SimConfig::new(Method::Rk4, 12.0, dt, None),
        &[],
        &[out(&c, "p/qif_op/r")],
        &default_params(&c, 1),
        &y,
        1,
    )
    .expect("run");
    let r = tr.trace(0, 0);
    let mut crossings = Vec::new();
    for i in 1..r.len() {
        let (a, b) = (r[i - 1] - rs, r[i] - rs);
        if a < 0.0 && b >= 0.0 {
            crossings.push(tr.time[i - 1] + dt * a / (a - b));
        }
    }
    assert!(crossings.len() >= 5, "{crossings:?}");
    let periods = (crossings.len() - 1) as f64;
    let freq = periods / (crossings[crossings.len() - 1] - crossings[0]);
    let pi2 = std::f64::consts::PI.powi(2);
    let linear = (2.0 * rs * (2.0 * pi2 * rs - 15.0)).sqrt() / std::f64::consts::TAU;
    assert!((freq - 0.528).abs() < 0.01 * 0.528, "measured {freq}");
    assert!(
        (freq - linear).abs() < 0.01 * linear,
        "measured {freq}, linearised {linear}"
    );
}

/// x'(t) = −x(t − 1), x = 1 on [−1, 0], by the method of steps: on [n, n+1] the solution is
/// a polynomial P_n(s), s = t − n, with P_n(s) = P_{n−1}(1) − ∫₀ˢ P_{n−1}, P_{−1} = 1
/// (so x = 1 − t on [0, 1], 1 − t + (t−1)²/2 on [1, 2], …). Coefficients ascending.
fn delay_exact(t: f64) -> f64 {
    let mut poly = vec![1.0];
    let mut n = -1.0;
    loop {
        let at_one: f64 = poly.iter().sum();
        let mut next = vec![at_one];
        next.extend(poly.iter().enumerate().map(|(i, c)| -c / (i as f64 + 1.0)));
        poly = next;
        n += 1.0;
        if t <= n + 1.0 {
            let s = t - n;
            return poly.iter().rev().fold(0.0, |acc, c| acc * s + c);
        }
    }
}

fn delay_model() -> Circuit {
    let mut b = Builder::new("dde");
    let x = b.var("n/op/x", VarKind::State, 1.0);
    let one = b.k(1.0);
    let past = b.c.add_expr(Expr::Past(x, one));
    let rhs = b.neg(past);
    b.ode(x, rhs);
    b.c
}

fn delay_error(method: Method, dt: f64) -> f64 {
    let c = delay_model();
    let k = compile(&c, Precision::F64);
    let tr = run_default(
        &c,
        &k,
        &SimConfig::new(method, 8.0, dt, Some(0.5)),
        &[out(&c, "n/op/x")],
        1,
    );
    tr.time
        .iter()
        .zip(tr.trace(0, 0))
        .map(|(t, x)| (x - delay_exact(*t)).abs())
        .fold(0.0, f64::max)
}

#[test]
fn delay_equation_matches_method_of_steps_at_method_order() {
    // Steps land on the derivative jumps at t = 0, 1, 2, … (dt divides 1), so each method keeps
    // its order; RK4's mid-step stages read the history through the cubic Hermite
    // interpolant (local error O(dt⁴)), so at least order 3 is required (issue 4). Up to
    // t = 8 the pieces reach degree 8, so no method is exact on them (on [0, 3] RK4 is).
    for (method, order, slack) in [
        (Method::Euler, 1.0, 0.2),
        (Method::Heun, 2.0, 0.2),
        (Method::Rk4, 3.0, -1.5),
    ] {
        let errs: Vec<f64> = (0..3).map(|i| delay_error(method, 0.1 / f64::from(1 << i))).collect();
        for w in errs.windows(2) {
            let observed = (w[0] / w[1]).log2();
            if slack > 0.0 {
                assert!(
                    (observed - order).abs() < slack,
                    "{method:?}: order {observed} from {errs:?}"
                );
            } else {
                assert!(observed > order - 0.2, "{method:?}: order {observed} from {errs:?}");
            }
        }
    }
    // The polynomial recursion reproduces the hand-derived pieces.
    assert!((delay_exact(0.5) - 0.5).abs() < 1e-15);
    assert!((delay_exact(1.5) - (1.0 - 1.5 + 0.125)).abs() < 1e-15);
}

#[test]
fn lanes_with_different_delays_equal_single_runs_bitwise() {
    let mut b = Builder::new("dde2");
    let x = b.var("n/op/x", VarKind::State, 1.0);
    let d = b.var("n/op/d", VarKind::Param, 1.0);
    let de = b.v(d);
    let past = b.c.add_expr(Expr::Past(x, de));
    let rhs = b.neg(past);
    b.ode(x, rhs);
    let c = b.c;
    let k = compile(&c, Precision::F64);
    let delays = [0.5, 1.0, 1.7];
    let config = SimConfig::new(Method::Rk4, 4.0, 1e-2, Some(0.05));
    let x = [out(&c, "n/op/x")];
    let all = simulate(&k, &config, &[], &x, &delays, &[1.0; 3], 3).expect("run");
    for (l, dl) in delays.iter().enumerate() {
        let one = simulate(&k, &config, &[], &x, &[*dl], &[1.0], 1).expect("run");
        assert_bitwise_eq(all.trace(0, l), one.trace(0, 0));
        // On [0, d] the solution is 1 − t exactly (RK4 integrates a linear x exactly).
        let i = all.time.iter().position(|t| *t >= dl - 1e-12).expect("sample");
        assert!((all.trace(0, l)[i] - (1.0 - all.time[i])).abs() < 1e-12);
    }
}

/// Ornstein–Uhlenbeck `x' = −x + σ·randn()/sqrt(dt)` (Euler–Maruyama).
fn ou(dt: f64, sigma: f64) -> Circuit {
    let mut b = Builder::new("ou");
    let x = b.var("n/op/x", VarKind::State, 0.0);
    let xe = b.v(x);
    let nx = b.neg(xe);
    let noise = b.c.add_expr(Expr::Randn);
    let scale = b.k(sigma / dt.sqrt());
    let term = b.bin(BinOp::Mul, scale, noise);
    let rhs = b.add(nx, term);
    b.ode(x, rhs);
    b.c
}

#[test]
fn ou_noise_has_theoretical_moments_and_is_reproducible_per_point() {
    // Euler–Maruyama on x' = −x + σ ξ/√dt: x_{n+1} = (1−dt) x_n + σ√dt ξ_n, stationary variance
    // σ²/(2 − dt). At t = 10 (e^(−20) of the start forgotten) the 4000 lanes are independent
    // draws: standard errors sqrt(var/n) for the mean and var·sqrt(2/n) for the variance; 3 SE.
    let (dt, sigma) = (1e-2, 0.5);
    let c = ou(dt, sigma);
    let k = compile(&c, Precision::F64);
    let lanes = 4000;
    let config = SimConfig::new(Method::Euler, 10.0 + dt, dt, None);
    let mut sink = SampleBuffer::default();
    run_block(
        &k,
        &config,
        &[],
        &[out(&c, "n/op/x")],
        Block {
            first_point: 0,
            lanes,
            params: &[],
            init: &vec![0.0; lanes],
        },
        &mut sink,
    )
    .expect("run");
    let last = &sink.values[(sink.time.len() - 1) * lanes..];
    let n = lanes as f64;
    let mean = last.iter().sum::<f64>() / n;
    let var = last.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let theory = sigma * sigma / (2.0 - dt);
    assert!(mean.abs() < 3.0 * (theory / n).sqrt(), "mean {mean}");
    assert!(
        (var - theory).abs() < 3.0 * theory * (2.0 / n).sqrt(),
        "var {var} vs {theory}"
    );
    // Point 7 run alone (block starting at 7) equals lane 7 of the big block, bit for bit.
    let mut one = SampleBuffer::default();
    run_block(
        &k,
        &config,
        &[],
        &[out(&c, "n/op/x")],
        Block {
            first_point: 7,
            lanes: 1,
            params: &[],
            init: &[0.0],
        },
        &mut one,
    )
    .expect("run");
    for (kk, v) in one.values.iter().enumerate() {
        assert_eq!(v.to_bits(), sink.values[kk * lanes + 7].to_bits());
    }
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
    let (status, stats) = adaptive::run_with_stats::<f64>(
        &k,
        &prep,
        &block,
        adaptive::Tolerance { rtol, atol },
        &mut sink,
        &RunOptions::default(),
    );
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

fn load(path: &str) -> Circuit {
    let loaded = crate::model::load_circuit(path, &crate::template::LoadOptions::default())
        .unwrap_or_else(|e| panic!("built-in template {path} loads: {e}"));
    crate::model::passes::lower_edges(&loaded.circuit)
}

fn slot_of(c: &Circuit, name: &str) -> usize {
    c.layout().slot[c.find_var(name).unwrap_or_else(|| panic!("{name} exists")).0 as usize] as usize
}

#[test]
fn builtin_qif_settles_on_analytic_fixed_points() {
    // The 1.x `qif` circuit (one population, recurrent edge of weight 15 = J) loaded from the
    // built-in library: same fixed points as the hand-built population (SPEC §9), to 1e-6.
    let c = load("model_templates.neural_mass_models.qif.qif");
    let k = compile(&c, Precision::F64);
    let etas = [-8.0, -6.0, -2.0, 0.0, 3.0];
    let lanes = etas.len();
    let eta = slot_of(&c, "p/qif_op/eta");
    let mut p = default_params(&c, lanes);
    p[eta * lanes..(eta + 1) * lanes].copy_from_slice(&etas);
    let tr = simulate(
        &k,
        &SimConfig::new(Method::Rk4, 300.0, 1e-2, Some(1.0)),
        &[],
        &[out(&c, "p/qif_op/r")],
        &p,
        &default_init(&c, lanes),
        lanes,
    )
    .expect("run");
    for (l, e) in etas.iter().enumerate() {
        let root = test_models::mpr_fixed_points(*e, 0.0, 15.0, 1.0)[0];
        let r = *tr.trace(0, l).last().expect("samples");
        assert!((r - root).abs() < 1e-6, "eta {e}: {r} vs {root}");
    }
}

#[test]
fn builtin_net3_matches_hand_built_equations() {
    // The seed's Net3 (simple_montbrio) against SPEC §8's equations integrated by hand with
    // Euler: PC r' = Δ/(πτ²) + 2rv/τ, v' = (v² + η + inp)/τ + J_e(r + r_e) − J_i r_i − τ(πr)²,
    // IIN likewise with its own constants, edges of weight 5; same arithmetic up to order
    // of operations (1e-10 after 2000 steps of an O(1) system).
    let c = load("model_templates.montbrio.simple_montbrio.Net3");
    let k = compile(&c, Precision::F64);
    let dt = 5e-4;
    let tr = run_default(
        &c,
        &k,
        &SimConfig::new(Method::Euler, 1.0, dt, None),
        &[out(&c, "PC/Op_e/r"), out(&c, "IIN/Op_i/r")],
        1,
    );
    let pi = std::f64::consts::PI;
    let (mut re, mut ve, mut ri, mut vi) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for n in 0..2000 {
        assert!(
            (tr.trace(0, 0)[n] - re).abs() < 1e-10,
            "PC r at step {n}: {} vs {re}",
            tr.trace(0, 0)[n]
        );
        assert!((tr.trace(1, 0)[n] - ri).abs() < 1e-10, "IIN r at step {n}");
        let (r_i_in, r_e_in) = (5.0 * ri, 5.0 * re);
        let dre = 1.0 / pi + 2.0 * re * ve;
        let dve = ve * ve - 5.0 + 15.0 * re - 2.0 * r_i_in - (pi * re).powi(2);
        let dri = 1.0 / pi + 2.0 * ri * vi;
        let dvi = vi * vi - 1.0 - 2.0 * ri + 12.0 * r_e_in - (pi * ri).powi(2);
        re += dt * dre;
        ve += dt * dve;
        ri += dt * dri;
        vi += dt * dvi;
    }
}

#[test]
fn builtin_jansen_rit_oscillates_at_alpha_frequency() {
    // Jansen & Rit (1995) with p = 220/s: a limit cycle at ≈ 10.9 Hz (SPEC §9: 10.5–11.2 Hz).
    // Frequency from upward crossings of the mean over 2 s after a 1 s transient (≈ 21
    // periods; crossing times interpolated within dt = 1e-4, so the estimate is good to
    // ≪ 0.1 Hz).
    let c = load("model_templates.neural_mass_models.jansenrit.JRC");
    let k = compile(&c, Precision::F64);
    let u = c.find_var("pc/rpo_e_in/u").expect("extrinsic input");
    let dt = 1e-4;
    let mut config = SimConfig::new(Method::Rk4, 3.0, dt, None);
    config.cutoff = 1.0;
    let inputs = [InputBinding {
        var: u,
        signal: Signal::Constant(220.0),
    }];
    let tr = simulate(
        &k,
        &config,
        &inputs,
        &[out(&c, "pc/rpo_e_in/v")],
        &default_params(&c, 1),
        &default_init(&c, 1),
        1,
    )
    .expect("run");
    let x = tr.trace(0, 0);
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    let mut ups = Vec::new();
    for i in 1..x.len() {
        let (a, b) = (x[i - 1] - mean, x[i] - mean);
        if a < 0.0 && b >= 0.0 {
            ups.push(tr.time[i - 1] + dt * a / (a - b));
        }
    }
    assert!(ups.len() > 10, "no oscillation: {} crossings", ups.len());
    let f = (ups.len() - 1) as f64 / (ups[ups.len() - 1] - ups[0]);
    assert!((10.5..=11.2).contains(&f), "JRC frequency {f} Hz");
}

#[test]
fn rk45_delay_equation_within_ten_times_tolerance() {
    // x'(t) = −x(t − 1) against the method of steps up to t = 8; rk45 steps onto t = 1, 2, …
    // where the derivatives jump, and reads the history through Hermite interpolation of its
    // accepted points. Issue 4's bound: global error within 10× the tolerance (|x| ≤ 1, so
    // rtol + atol bounds the per-step scale).
    let c = delay_model();
    let k = compile(&c, Precision::F64);
    for (rtol, atol) in [(1e-3, 1e-6), (1e-6, 1e-9)] {
        let tr = run_default(
            &c,
            &k,
            &SimConfig::new(Method::Rk45 { rtol, atol }, 8.0, 1e-2, Some(0.05)),
            &[out(&c, "n/op/x")],
            1,
        );
        assert_eq!(tr.status, vec![PointStatus::Ok]);
        let worst = tr
            .time
            .iter()
            .zip(tr.trace(0, 0))
            .map(|(t, x)| (x - delay_exact(*t)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 10.0 * (rtol + atol), "rtol {rtol}: error {worst}");
    }
}

const JRC_DELAY_YAML: &str = r#"
JRC_d:
  base: CircuitTemplate
  nodes:
    pc: model_templates.neural_mass_models.jansenrit.PC
    ein: model_templates.neural_mass_models.jansenrit.IN
    iin: model_templates.neural_mass_models.jansenrit.IN
  edges:
    - [pc/pro/m, ein/rpo_e/m_in, null, {weight: 135.0}]
    - [pc/pro/m, iin/rpo_e/m_in, null, {weight: 33.75}]
    - [ein/pro/m, pc/rpo_e_in/m_in, null, {weight: 108.0, delay: 0.004}]
    - [iin/pro/m, pc/rpo_i/m_in, null, {weight: 33.75}]

PairEdge:
  base: CircuitTemplate
  circuits:
    jrc1: JRC_d
    jrc2: JRC_d
  edges:
    - [jrc1/pc/pro/m, jrc2/pc/rpo_e_in/m_in, null, {weight: 20.0, delay: 0.004}]
    - [jrc2/pc/pro/m, jrc1/pc/rpo_e_in/m_in, null, {weight: 40.0, delay: 0.004}]

rpo_e_in_past:
  base: model_templates.neural_mass_models.jansenrit.rpo_e_in
  equations:
    replace:
      "h*(m_in + u)/tau": "h*(past(m_in, 0.004) + u)/tau"

PC_past:
  base: NodeTemplate
  operators:
    - rpo_e_in_past
    - model_templates.neural_mass_models.jansenrit.rpo_i
    - model_templates.neural_mass_models.jansenrit.pro

JRC_p:
  base: CircuitTemplate
  nodes:
    pc: PC_past
    ein: model_templates.neural_mass_models.jansenrit.IN
    iin: model_templates.neural_mass_models.jansenrit.IN
  edges:
    - [pc/pro/m, ein/rpo_e/m_in, null, {weight: 135.0}]
    - [pc/pro/m, iin/rpo_e/m_in, null, {weight: 33.75}]
    - [ein/pro/m, pc/rpo_e_in_past/m_in, null, {weight: 108.0}]
    - [iin/pro/m, pc/rpo_i/m_in, null, {weight: 33.75}]

PairPast:
  base: CircuitTemplate
  circuits:
    jrc1: JRC_p
    jrc2: JRC_p
  edges:
    - [jrc1/pc/pro/m, jrc2/pc/rpo_e_in_past/m_in, null, {weight: 20.0}]
    - [jrc2/pc/pro/m, jrc1/pc/rpo_e_in_past/m_in, null, {weight: 40.0}]
"#;

#[test]
fn delay_coupled_jansen_rit_edge_delay_equals_past_in_equation() {
    // Issue 4: the same delayed coupling written as edge delays (Σ w·m(t − d)) and as
    // past(m_in, d) in the receiving equation (past(Σ w·m)(t − d)) gives the same traces.
    // Both read algebraic histories at the same times through the same interpolation, which
    // is linear in the data, so they differ only by rounding (1e-9 relative after 5000 steps
    // of a system whose potentials are O(1e-2) V).
    let load_in = |name: &str| crate::model::passes::lower_edges(&test_models::from_yaml(JRC_DELAY_YAML, name));
    let edge = load_in("PairEdge");
    let past = load_in("PairPast");
    for method in [Method::Euler, Method::Rk4] {
        let config = SimConfig::new(method, 0.5, 1e-4, Some(1e-3));
        let mut traces = Vec::new();
        for (c, op) in [(&edge, "rpo_e_in"), (&past, "rpo_e_in_past")] {
            let k = compile(c, Precision::F64);
            let outs = [
                out(c, &format!("jrc1/pc/{op}/v")),
                out(c, &format!("jrc2/pc/{op}/v")),
                out(c, "jrc1/pc/rpo_i/v"),
            ];
            traces.push(run_default(c, &k, &config, &outs, 1));
        }
        let scale = traces[0].data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 1e-3, "the columns are active: {scale}");
        // The delay matters: with the edge delays set to 0 per lane the traces move.
        let k = compile(&edge, Precision::F64);
        let mut p = default_params(&edge, 1);
        for v in &edge.layout().params {
            if edge.var(*v).name.ends_with("/delay") {
                p[edge.layout().slot[v.0 as usize] as usize] = 0.0;
            }
        }
        let outs = [
            out(&edge, "jrc1/pc/rpo_e_in/v"),
            out(&edge, "jrc2/pc/rpo_e_in/v"),
            out(&edge, "jrc1/pc/rpo_i/v"),
        ];
        let undelayed = simulate(&k, &config, &[], &outs, &p, &default_init(&edge, 1), 1).expect("run");
        let moved = traces[0]
            .data
            .iter()
            .zip(&undelayed.data)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(moved > 1e-2 * scale, "delay has no effect: {moved}");
        for (a, b) in traces[0].data.iter().zip(&traces[1].data) {
            assert!((a - b).abs() <= 1e-9 * scale, "{method:?}: {a} vs {b}");
        }
    }
}

const GAMMA_YAML: &str = r#"
src_op:
  base: OperatorTemplate
  equations: "s' = 0.0*s"
  variables:
    s: output(0.0)

tgt_op:
  base: OperatorTemplate
  equations: "y' = m_in"
  variables:
    y: output(0.0)
    m_in: input(0.0)

src:
  base: NodeTemplate
  operators: [src_op]

tgt:
  base: NodeTemplate
  operators: [tgt_op]

Chain:
  base: CircuitTemplate
  nodes:
    a: src
    b: tgt
  edges:
    - [a/src_op/s, b/tgt_op/m_in, null, {weight: 1.0, delay: 1.0, spread: 0.5}]
"#;

#[test]
fn gamma_chain_impulse_response_is_gamma_density() {
    // delay 1, spread 0.5: n = round((1/0.5)²) = 4 stages at rate k = n/delay = 4. A unit
    // impulse into the source makes z₁(0⁺) = k, and then z_n(t) = kⁿ tⁿ⁻¹ e^(−kt)/(n−1)!, the
    // gamma density with mean n/k = 1 and standard deviation √n/k = 0.5. RK4 at dt = 1e-3 is
    // accurate to ~1e-12 here; 1e-9 absolute.
    let c = crate::model::passes::lower_edges(&test_models::from_yaml(GAMMA_YAML, "Chain"));
    let layout = c.layout();
    let chain: Vec<_> = layout
        .states
        .iter()
        .filter(|v| c.var(**v).name.contains("/z"))
        .collect();
    assert_eq!(chain.len(), 4, "n = round((delay/spread)²)");
    let z1 = layout
        .states
        .iter()
        .position(|v| c.var(*v).name.ends_with("/z1"))
        .expect("first stage");
    let k = compile(&c, Precision::F64);
    let mut y0 = default_init(&c, 1);
    y0[z1] = 4.0;
    let tr = simulate(
        &k,
        &SimConfig::new(Method::Rk4, 4.0, 1e-3, Some(1e-2)),
        &[],
        &[out(&c, "b/tgt_op/m_in")],
        &default_params(&c, 1),
        &y0,
        1,
    )
    .expect("run");
    let mut mass = 0.0;
    for (t, v) in tr.time.iter().zip(tr.trace(0, 0)) {
        let g = 4f64.powi(4) * t.powi(3) * (-4.0 * t).exp() / 6.0;
        assert!((v - g).abs() < 1e-9, "t={t}: {v} vs {g}");
        mass += v * 1e-2;
    }
    assert!((mass - 1.0).abs() < 0.01, "density integrates to {mass} over [0, 4)");
}

fn compile_c(c: &Circuit) -> Kernel {
    let dir = std::env::temp_dir().join("rustrates-solve-tests-cache");
    Kernel::compile(
        c,
        &KernelOptions {
            backend: Backend::C,
            cache_dir: Some(dir),
            ..KernelOptions::default()
        },
    )
    .expect("the test machine has a C compiler")
}

#[test]
fn fused_c_path_matches_reference_stepping() {
    // The C back end integrates stretches between samples itself (Kernel::steps). Against the
    // reference kernel stepped here: 1e-12 relative (the back ends' agreement contract; the
    // arithmetic of a step is the same, only libm calls and hoisted divisions may round
    // differently), and lanes equal their single runs bit for bit.
    let (c, _) = test_models::reference_circuit();
    let kc = compile_c(&c);
    let kr = compile(&c, Precision::F64);
    let eta = slot_of(&c, "PC/qif_op/eta");
    let lanes = 3;
    let mut p = default_params(&c, lanes);
    p[eta * lanes..(eta + 1) * lanes].copy_from_slice(&[-5.0, 0.0, 4.0]);
    let outputs = [out(&c, "PC/qif_op/r"), out(&c, "IIN/qif_op/r_in")];
    for method in [Method::Euler, Method::Rk4] {
        let config = SimConfig::new(method, 2.0, 1e-3, Some(1e-2));
        let fused = simulate(&kc, &config, &[], &outputs, &p, &default_init(&c, lanes), lanes).expect("run");
        let stepped = simulate(&kr, &config, &[], &outputs, &p, &default_init(&c, lanes), lanes).expect("run");
        assert_eq!(fused.time, stepped.time);
        for (x, y) in fused.data.iter().zip(&stepped.data) {
            assert!((x - y).abs() <= 1e-12 * x.abs().max(1e-3), "{method:?}: {x} vs {y}");
        }
        assert_lanes_equal_single_runs(&fused, &kc, &c, (&config, &outputs), &p, 0..lanes);
    }
}

#[test]
fn fused_c_path_marks_divergence_at_the_exact_step() {
    // The stretch in which a lane diverges is replayed step by step: the mark equals the
    // stepwise reference path's, and the healthy lanes equal their single runs bit for bit.
    let c = blow_up();
    let kc = compile_c(&c);
    let kr = compile(&c, Precision::F64);
    let cs = [-1.0, 1.0, 0.25];
    let config = SimConfig::new(Method::Rk4, 1.5, 1e-3, Some(5e-2));
    let x = [out(&c, "n/op/x")];
    let fused = simulate(&kc, &config, &[], &x, &cs, &[1.0; 3], 3).expect("run");
    let stepped = simulate(&kr, &config, &[], &x, &cs, &[1.0; 3], 3).expect("run");
    assert_eq!(fused.status, stepped.status);
    assert!(matches!(fused.status[1], PointStatus::NonFinite { .. }));
    for l in [0, 2] {
        let one = simulate(&kc, &config, &[], &x, &[cs[l]], &[1.0], 1).expect("run");
        assert_bitwise_eq(fused.trace(0, l), one.trace(0, 0));
    }
    let n_ok = fused.time.iter().filter(|t| **t < 0.95).count();
    assert!(fused.trace(0, 1)[..n_ok].iter().all(|v| v.is_finite()));
    assert!(fused.trace(0, 1)[n_ok + 2..].iter().all(|v| v.is_nan()));
}

fn compile_jit(c: &Circuit) -> Kernel {
    Kernel::compile(
        c,
        &KernelOptions {
            backend: Backend::Jit,
            ..KernelOptions::default()
        },
    )
    .expect("the JIT compiles the test models")
}

#[test]
fn fused_recording_takes_the_same_samples_as_solver_sampling() {
    // With only state outputs the fused back ends record the samples themselves, many per
    // call; an algebraic output makes the solver sample between calls of one sample stretch
    // each instead. Same steps, same arithmetic: the state columns must agree bit for bit,
    // over 3000 steps (several calls of ≤ 1024 steps), with a cutoff that falls inside a
    // call, for strides 1 and 7. Both also stay within 1e-12 relative of the reference
    // kernel stepped by the solver (the back ends' contract). 64 lanes: the block width the
    // back ends have constant-offset copies for; the first and last lane equal their
    // single-lane runs (the generic copies) bit for bit.
    let (c, _) = test_models::reference_circuit();
    let algebraic = c
        .vars
        .iter()
        .find(|v| v.kind == VarKind::Algebraic)
        .expect("the reference circuit has algebraics (its lowered edges)")
        .name
        .clone();
    let states = [out(&c, "PC/qif_op/r"), out(&c, "IIN/qif_op/v")];
    let mixed = [states[0].clone(), states[1].clone(), out(&c, &algebraic)];
    let eta = slot_of(&c, "PC/qif_op/eta");
    let lanes = 64;
    let mut p = default_params(&c, lanes);
    for l in 0..lanes {
        p[eta * lanes + l] = -5.0 + 10.0 * l as f64 / (lanes - 1) as f64;
    }
    let init = default_init(&c, lanes);
    let kr = compile(&c, Precision::F64);
    for kernel in [compile_c(&c), compile_jit(&c)] {
        for (method, dts) in [(Method::Euler, 1e-3), (Method::Euler, 7e-3), (Method::Rk4, 7e-3)] {
            let config = SimConfig {
                cutoff: 0.5,
                ..SimConfig::new(method, 3.0, 1e-3, Some(dts))
            };
            let recorded = simulate(&kernel, &config, &[], &states, &p, &init, lanes).expect("run");
            let sampled = simulate(&kernel, &config, &[], &mixed, &p, &init, lanes).expect("run");
            let stepped = simulate(&kr, &config, &[], &states, &p, &init, lanes).expect("run");
            let what = format!("{:?} {method:?} dts {dts}", kernel.backend());
            assert_eq!(recorded.time, sampled.time, "{what}");
            assert_eq!(recorded.time, stepped.time, "{what}");
            assert!(
                (recorded.time[0] - 0.5).abs() < 1e-12 * 0.5 + dts,
                "{what}: cutoff applied"
            );
            for o in 0..states.len() {
                for l in 0..lanes {
                    assert_bitwise_eq(recorded.trace(o, l), sampled.trace(o, l));
                    for (x, y) in recorded.trace(o, l).iter().zip(stepped.trace(o, l)) {
                        assert!((x - y).abs() <= 1e-12 * y.abs().max(1e-3), "{what}: {x} vs {y}");
                    }
                }
            }
            assert_lanes_equal_single_runs(&recorded, &kernel, &c, (&config, &states), &p, [0, lanes - 1]);
        }
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

#[test]
fn fused_recording_keeps_diverged_lanes_nan_in_later_calls() {
    // x' = c·x², x(0) = 1 blows up at t = 1/c. With c = 1 the lane diverges near step 1000,
    // inside the first fused call (1024 steps at stride 1); the call is replayed step by step,
    // and the calls after it record the frozen lane as NaN (the bits `f64::NAN` has, like the
    // solver's own sampling) while the other lanes equal their single runs bit for bit. The
    // mark equals the one of the reference kernel stepped by the solver.
    let c = blow_up();
    let kr = compile(&c, Precision::F64);
    let cs = [-1.0, 1.0, 0.25];
    let config = SimConfig::new(Method::Rk4, 3.0, 1e-3, Some(1e-3));
    let x = [out(&c, "n/op/x")];
    let stepped = simulate(&kr, &config, &[], &x, &cs, &[1.0; 3], 3).expect("run");
    for kernel in [compile_c(&c), compile_jit(&c)] {
        let fused = simulate(&kernel, &config, &[], &x, &cs, &[1.0; 3], 3).expect("run");
        assert_eq!(fused.status, stepped.status, "{:?}", kernel.backend());
        let PointStatus::NonFinite { t } = fused.status[1] else {
            panic!("lane 1 not marked: {:?}", fused.status[1]);
        };
        let trace = fused.trace(0, 1);
        let first_nan = fused
            .time
            .iter()
            .position(|&s| s >= t - 1e-9)
            .expect("mark within the run");
        assert!(
            first_nan < 1024 && fused.time.len() > 2048,
            "diverges in the first of ≥ 3 calls"
        );
        assert!(trace[..first_nan].iter().all(|v| v.is_finite()));
        for v in &trace[first_nan..] {
            assert_eq!(v.to_bits(), f64::NAN.to_bits());
        }
        for l in [0, 2] {
            let one = simulate(&kernel, &config, &[], &x, &[cs[l]], &[1.0], 1).expect("run");
            assert_bitwise_eq(fused.trace(0, l), one.trace(0, 0));
        }
    }
}

#[test]
fn compiled_back_ends_through_solver_hooks_match_reference() {
    // Delays and noise reach the solver through KernelCtx hooks from generated code too: the
    // JIT and C kernels, stepped by every method, agree with the reference kernel to 1e-12
    // relative (the back ends' contract) on a delayed, noisy, time-dependent model.
    let mut b = Builder::new("hooks");
    let x = b.var("n/op/x", VarKind::State, 1.0);
    let d = b.var("n/op/d", VarKind::Param, 0.3);
    let de = b.v(d);
    let past = b.c.add_expr(Expr::Past(x, de));
    let np = b.neg(past);
    let noise = b.c.add_expr(Expr::Randn);
    let s = b.k(0.1);
    let sn = b.mul(s, noise);
    let tt = b.c.add_expr(Expr::Time);
    let sin = b.call(crate::model::Func::Sin, vec![tt]);
    let r1 = b.add(np, sn);
    let rhs = b.add(r1, sin);
    b.ode(x, rhs);
    let c = b.c;
    let kr = compile(&c, Precision::F64);
    let kj = Kernel::compile(
        &c,
        &KernelOptions {
            backend: Backend::Jit,
            ..KernelOptions::default()
        },
    )
    .expect("jit");
    let kc = compile_c(&c);
    let lanes = 3;
    let p = [0.3, 0.5, 0.7];
    let outputs = [out(&c, "n/op/x")];
    for method in [Method::Euler, Method::Rk4, Method::Rk45 { rtol: 1e-6, atol: 1e-9 }] {
        let config = SimConfig::new(method, 2.0, 1e-2, Some(5e-2));
        let want = simulate(&kr, &config, &[], &outputs, &p, &[1.0; 3], lanes).expect("run");
        for k in [&kj, &kc] {
            let got = simulate(k, &config, &[], &outputs, &p, &[1.0; 3], lanes).expect("run");
            for (x, y) in got.data.iter().zip(&want.data) {
                assert!(
                    (x - y).abs() <= 1e-12 * y.abs().max(1e-3),
                    "{:?} {method:?}: {x} vs {y}",
                    k.backend()
                );
            }
        }
    }
}

#[test]
fn rk45_masked_block_equals_lane_by_lane_bitwise() {
    // The masked block stepper (all lanes per kernel call, each with its own t and h) does the
    // same arithmetic per lane as the lane-by-lane stepper: identical bits and counts, also
    // with a lane that fails (a NaN parameter) beside healthy ones.
    let (c, _) = test_models::reference_circuit();
    let k = compile(&c, Precision::F64);
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
    let tol = adaptive::Tolerance { rtol: 1e-6, atol: 1e-9 };
    let mut masked = SampleBuffer::default();
    let (s1, n1) = adaptive::run_masked::<f64>(&k, &prep, &block, tol, &mut masked);
    let mut lanewise = SampleBuffer::default();
    let (s2, n2) = adaptive::run_stats::<f64>(&k, &prep, &block, tol, &mut lanewise, &RunOptions::default());
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
