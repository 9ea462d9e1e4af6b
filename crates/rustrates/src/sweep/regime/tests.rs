//! The classification's and the period scan's unit tests against analytic traces.

use super::*;

#[test]
fn sine_period_and_amplitude() {
    // A 1.7-time-unit sine of amplitude 0.8 sampled at 0.01 over 20 units: linear
    // interpolation at the inflection is exact to O(dts³) ≈ 1e-6 per crossing, so the
    // period is within 1e-5 relative; the sampled max/min miss the peak by at most
    // A(ω dts/2)²/2 ≈ 1.4e-4·A.
    let (p, a, dts) = (1.7, 0.8, 0.01);
    let n = 2000;
    let x = |i: usize| 3.0 + a * (std::f64::consts::TAU * i as f64 * dts / p + 0.3).sin();
    let (period, amp, moves) = periodicity(x, n, dts, &RegimeSettings::default());
    assert!(moves && (period - p).abs() < 1e-5 * p, "{period}");
    assert!((amp - a).abs() < 2e-4 * a, "{amp}");
}

#[test]
fn period_two_cycle_is_found_by_grouping_crossings() {
    // Two unequal humps per period (crossing the mid level twice): the single-crossing
    // intervals alternate, the pairs repeat with period 2.
    let dts = 0.001;
    let x = |i: usize| {
        let t = i as f64 * dts;
        (std::f64::consts::TAU * t).sin() + 0.9 * (2.0 * std::f64::consts::TAU * t).sin()
    };
    let (period, _, _) = periodicity(x, 10_000, dts, &RegimeSettings::default());
    assert!((period - 1.0).abs() < 1e-4, "{period}");
}

#[test]
fn decaying_oscillation_and_incommensurate_sum_are_not_periodic() {
    // Maxima shrinking by 5 % per cycle (beyond period_rtol), and sin t + sin √2 t
    // (quasi-periodic: neither its intervals nor its maxima repeat).
    let s = RegimeSettings::default();
    let decay = |i: usize| {
        let t = i as f64 * 0.01;
        (-0.05 * t).exp() * (std::f64::consts::TAU * t).sin()
    };
    assert!(periodicity(decay, 3000, 0.01, &s).0.is_nan());
    let quasi = |i: usize| {
        let t = i as f64 * 0.01;
        t.sin() + (std::f64::consts::SQRT_2 * t).sin()
    };
    assert!(periodicity(quasi, 20_000, 0.01, &s).0.is_nan());
}

#[test]
fn level_is_set_by_the_first_quarter_and_crossings_counted_in_the_whole_window() {
    // sin(2πt + 0.1) over 5 time units (dts 0.001) crosses 0 upwards at t = k − 0.016,
    // k = 1…5. The first quarter (t < 1.25) sets the level near 0 and holds the k = 1
    // crossing, which counts: 4 cycles, so min_cycles 4 finds the period and 5 does not.
    // Linear interpolation at the zero crossing (an inflection) is exact to O(dts³), so
    // the period is within 1e-6; the sampled extremes miss the peaks by at most
    // (2π·dts/2)²/2 ≈ 5e-6, so the amplitude is within 1e-5.
    let dts = 0.001;
    let n = 5000;
    assert_eq!(level_samples(n), 1250);
    let sine = |i: usize| (std::f64::consts::TAU * i as f64 * dts + 0.1).sin();
    let four = RegimeSettings {
        min_cycles: 4,
        ..RegimeSettings::default()
    };
    let (period, amp, moves) = periodicity(sine, n, dts, &four);
    assert!(moves && (period - 1.0).abs() < 1e-6, "{period}");
    assert!((amp - 1.0).abs() < 1e-5, "{amp}");
    let five = RegimeSettings { min_cycles: 5, ..four };
    assert!(periodicity(sine, n, dts, &five).0.is_nan());
    // A cycle at half its later size in the first quarter: the level (≈ 0) and arm
    // (≈ −0.25) from that range cut every cycle once, at the same phase, so the period
    // is as exact and the amplitude is the whole window's.
    let growing = |i: usize| if i < n / 4 { 0.5 } else { 1.0 } * sine(i);
    let (period, amp, _) = periodicity(growing, n, dts, &four);
    assert!((period - 1.0).abs() < 1e-6, "{period}");
    assert!((amp - 1.0).abs() < 1e-5, "{amp}");
    // A transient that ends after the first quarter: its level (≈ 5) is never crossed
    // again, so no period is found (raise the cutoff).
    let late = |i: usize| if i < n / 4 { 5.0 } else { 0.0 } + sine(i);
    assert!(periodicity(late, n, dts, &four).0.is_nan());
}

#[test]
fn flat_column_does_not_move() {
    let (p, a, moves) = periodicity(|_| 2.5, 100, 0.1, &RegimeSettings::default());
    assert!(p.is_nan() && a == 0.0 && !moves);
}

#[test]
fn multistable_compares_fixed_points_and_cycles() {
    let s = RegimeSettings::default();
    let fp = |x: f64| Attractor {
        regime: Some(Regime::StableNode),
        state: vec![x, 1.0],
        cycles: vec![(f64::NAN, 0.0)],
    };
    let cycle = |p: f64| Attractor {
        regime: Some(Regime::Periodic),
        state: vec![0.0, 0.0],
        cycles: vec![(p, 1.0)],
    };
    let diverged = Attractor {
        regime: Some(Regime::Diverged),
        ..fp(0.0)
    };
    // Same fixed point within attractor_rtol (1e-4 of 1 + 1): not multistable.
    assert_eq!(multistable([fp(0.5), fp(0.5 + 1e-5)].into_iter(), &s), Some(false));
    assert_eq!(multistable([fp(0.5), fp(0.9)].into_iter(), &s), Some(true));
    assert_eq!(multistable([fp(0.5), cycle(2.0)].into_iter(), &s), Some(true));
    assert_eq!(multistable([cycle(2.0), cycle(2.001)].into_iter(), &s), Some(false));
    assert_eq!(multistable([cycle(2.0), cycle(3.0)].into_iter(), &s), Some(true));
    // A diverged end names no attractor: one end left, nothing to compare.
    assert_eq!(multistable([fp(0.5), diverged].into_iter(), &s), None);
}

#[test]
fn classification_rules() {
    let s = RegimeSettings::default();
    let osc = [(1.0, true), (f64::NAN, false)];
    assert_eq!(classify(1e-9, 1.0, Some((-1.0, 0.0)), &osc, &s), Regime::StableNode);
    assert_eq!(classify(1e-9, 1.0, Some((-1.0, 2.0)), &osc, &s), Regime::StableFocus);
    assert_eq!(
        classify(1e-9, 1.0, Some((0.5, 0.0)), &osc, &s),
        Regime::UnstableFixedPoint
    );
    assert_eq!(classify(1e-3, 1.0, None, &osc, &s), Regime::Periodic);
    assert_eq!(classify(1e-3, 1.0, None, &[(f64::NAN, true)], &s), Regime::Irregular);
    assert_eq!(classify(f64::NAN, 1.0, None, &osc, &s), Regime::Diverged);
    assert_eq!(Regime::from_code(4.0), Some(Regime::Periodic));
    assert_eq!(Regime::codes_json()["2"], "stable_focus");
}
