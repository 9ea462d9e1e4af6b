//! Neural mass models against their analysis or a transcription by hand: QIF and MPR fixed
//! points and bistability, the reference circuit's and Net3's Euler loops, Jansen–Rit's
//! alpha rhythm.

use super::*;

#[test]
fn reference_circuit_euler_matches_hand_written_loop() {
    // The loop of shared/bench/montbrio_grid.c, written out here: the kernel + stepper must give
    // the same numbers (to rounding differences of operation order, ≤ 1e-12 after 1000 steps).
    let (c, k) = with_reference_kernel(test_models::reference_circuit().0);
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
        let dvp = vp * vp - 5.0 + 1.0 + in_p - (pi * rp).powi(2);
        let dvi = vi * vi - 5.0 + in_i - (pi * ri).powi(2);
        qif_euler(&mut rp, &mut vp, dvp, dt);
        qif_euler(&mut ri, &mut vi, dvi, dt);
    }
}

/// One Euler step of a QIF population with τ = Δ = 1 (`r' = 1/π + 2rv`), its `v'` computed
/// by the caller from the old state as its model writes it.
fn qif_euler(r: &mut f64, v: &mut f64, dv: f64, dt: f64) {
    let dr = 1.0 / std::f64::consts::PI + 2.0 * *r * *v;
    *r += dt * dr;
    *v += dt * dv;
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

fn load(path: &str) -> Circuit {
    let loaded = crate::model::load_circuit(path, &crate::template::LoadOptions::default())
        .unwrap_or_else(|e| panic!("built-in template {path} loads: {e}"));
    crate::model::passes::lower_edges(&loaded.circuit)
}

#[test]
fn builtin_qif_settles_on_analytic_fixed_points() {
    // The 1.x `qif` circuit (one population, recurrent edge of weight 15 = J) loaded from the
    // built-in library: same fixed points as the hand-built population (SPEC §9), to 1e-6.
    let (c, k) = with_reference_kernel(load("model_templates.neural_mass_models.qif.qif"));
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
    let (c, k) = with_reference_kernel(load("model_templates.montbrio.simple_montbrio.Net3"));
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
        let dve = ve * ve - 5.0 + 15.0 * re - 2.0 * r_i_in - (pi * re).powi(2);
        let dvi = vi * vi - 1.0 - 2.0 * ri + 12.0 * r_e_in - (pi * ri).powi(2);
        qif_euler(&mut re, &mut ve, dve, dt);
        qif_euler(&mut ri, &mut vi, dvi, dt);
    }
}

#[test]
fn builtin_jansen_rit_oscillates_at_alpha_frequency() {
    // Jansen & Rit (1995) with p = 220/s: a limit cycle at ≈ 10.9 Hz (SPEC §9: 10.5–11.2 Hz).
    // Frequency from upward crossings of the mean over 2 s after a 1 s transient (≈ 21
    // periods; crossing times interpolated within dt = 1e-4, so the estimate is good to
    // ≪ 0.1 Hz).
    let (c, k) = with_reference_kernel(load("model_templates.neural_mass_models.jansenrit.JRC"));
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
