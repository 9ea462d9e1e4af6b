//! Regime sweeps against analytic references (Stuart–Landau, Montbrió).

use indexmap::IndexMap;

use super::*;
use crate::kernel::Backend;
use crate::model::jacobian::tests::stuart_landau;
use crate::model::test_models;
use crate::solve::{Method, SimConfig};
use crate::sweep::{run, Grid, MemorySink, ParamMap, Statistic, SweepSpec};

fn sweep(
    c: &crate::model::Circuit,
    grid: Grid,
    map: ParamMap,
    sim: SimConfig,
    outputs: &[(&str, &str)],
) -> crate::sweep::SweepResult {
    let dts = sim.sampling_step.unwrap_or(sim.dt);
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = outputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    spec.summaries = Statistic::expand(&[Statistic::Regime, Statistic::Last, Statistic::Min, Statistic::Max]);
    spec.backend = Backend::Jit;
    (spec.block_size, spec.threads) = (4, Some(2));
    let r = run_keeping(c, &spec, false);
    // Keeping traces (another collector path) changes no number, bit for bit.
    let kept = run_keeping(c, &spec, true);
    let (a, b) = (r.summaries.as_ref().unwrap(), kept.summaries.as_ref().unwrap());
    for (x, y) in a.values.iter().flatten().zip(b.values.iter().flatten()) {
        assert_eq!(x.to_bits(), y.to_bits());
    }
    // The block's lanes are scanned together; each periodic column's period and
    // amplitude are those `periodicity` finds in that one trace alone, bit for bit.
    for p in 0..r.labels.len() {
        if Regime::from_code(r.summary(Statistic::Regime, p, 0).unwrap()) != Some(Regime::Periodic) {
            continue;
        }
        for c in 0..r.columns.len() {
            let trace = kept.trace(p, c).unwrap();
            let (period, amplitude, _) = periodicity(|i| trace[i], trace.len(), dts, &RegimeSettings::default());
            assert_eq!(r.summary(Statistic::Period, p, c).unwrap().to_bits(), period.to_bits());
            assert_eq!(
                r.summary(Statistic::Amplitude, p, c).unwrap().to_bits(),
                amplitude.to_bits()
            );
        }
    }
    r
}

/// `spec` run in memory, keeping its traces or not.
fn run_keeping(c: &crate::model::Circuit, spec: &SweepSpec, keep_traces: bool) -> crate::sweep::SweepResult {
    let spec = SweepSpec {
        keep_traces,
        ..spec.clone()
    };
    let mut sink = MemorySink::new();
    run(&spec, c, &mut sink).unwrap();
    sink.into_result().unwrap()
}

#[test]
fn stuart_landau_fixed_point_below_hopf_cycle_above() {
    // ω = 2. μ < 0: a stable focus at the origin with eigenvalues μ ± iω (the state decays
    // like e^{μt} to ~1e-9 by t = 200, so the Jacobian there differs from the origin's by
    // ~1e-18: 1e-9 is generous). μ > 0: the cycle of radius √μ and period 2π/ω; after the
    // cutoff (t ≥ 150) the radius has converged like e^{−2μt} and rk4 at dt = 0.01 keeps
    // the phase to ~1e-9 per unit time, so period and amplitude are checked to 1e-3
    // relative (the issue's bound; sampling at 0.01 costs ≤ 5e-5 of the amplitude).
    let omega = 2.0;
    let mus = [-0.3, -0.1, 0.1, 0.25, 0.5];
    let values: IndexMap<String, Vec<f64>> = [("mu".to_string(), mus.to_vec())].into_iter().collect();
    let grid = Grid::from_values(&values, false).unwrap();
    let map = ParamMap::new().nodes("mu", &["sl/mu"], &["p"]);
    let sim = SimConfig {
        simulation_time: 200.0,
        dt: 0.01,
        sampling_step: Some(0.01),
        method: Method::Rk4,
        cutoff: 150.0,
    };
    let r = sweep(
        &stuart_landau(0.0, omega),
        grid,
        map,
        sim,
        &[("x", "p/sl/x"), ("z", "p/sl/z")],
    );
    for (p, &mu) in mus.iter().enumerate() {
        let code = r.summary(Statistic::Regime, p, 0).unwrap();
        let (re, im) = (
            r.summary(Statistic::EigRe, p, 0).unwrap(),
            r.summary(Statistic::EigIm, p, 0).unwrap(),
        );
        if mu < 0.0 {
            assert_eq!(Regime::from_code(code), Some(Regime::StableFocus), "mu {mu}");
            assert!(
                (re - mu).abs() < 1e-9 && (im - omega).abs() < 1e-9,
                "mu {mu}: {re} {im}"
            );
            assert!(r.summary(Statistic::Period, p, 0).unwrap().is_nan());
            // A fixed point's amplitude is half its post-cutoff range (taken from the
            // range alone, without the crossing scan).
            for c in 0..2 {
                let (lo, hi) = (
                    r.summary(Statistic::Min, p, c).unwrap(),
                    r.summary(Statistic::Max, p, c).unwrap(),
                );
                assert_eq!(
                    r.summary(Statistic::Amplitude, p, c).unwrap(),
                    0.5 * (hi - lo),
                    "mu {mu}"
                );
            }
        } else {
            assert_eq!(Regime::from_code(code), Some(Regime::Periodic), "mu {mu}");
            assert!(re.is_nan() && im.is_nan());
            for c in 0..2 {
                let period = r.summary(Statistic::Period, p, c).unwrap();
                let amp = r.summary(Statistic::Amplitude, p, c).unwrap();
                let want = std::f64::consts::TAU / omega;
                assert!(
                    (period - want).abs() < 1e-3 * want,
                    "mu {mu}: period {period} vs {want}"
                );
                assert!((amp - mu.sqrt()).abs() < 1e-3 * mu.sqrt(), "mu {mu}: amplitude {amp}");
            }
        }
    }
}

/// The single MPR population as node `p`, and a run long enough for every start to settle
/// (RK4, T = 100, the last 10 time units kept for the regime).
fn montbrio_settling() -> (crate::model::Circuit, SimConfig) {
    let (mut c, _) = test_models::mpr_single();
    c.node_operators = vec![("p".into(), vec!["qif_op".into()])];
    let sim = SimConfig {
        simulation_time: 100.0,
        dt: 0.005,
        sampling_step: Some(0.05),
        method: Method::Rk4,
        cutoff: 90.0,
    };
    (c, sim)
}

/// Asserts that point `p`'s eigenvalue summaries are the leading eigenvalue of the analytic
/// Jacobian [[2v, 2r], [J − 2π²r, 2v]] of the MPR population (J = 15) at its fixed point `r`
/// (v = −1/(2πr)) to 1e-6, and returns its imaginary part.
fn assert_mpr_leading_eigenvalue(res: &crate::sweep::SweepResult, p: usize, r: f64, what: &str) -> f64 {
    let pi2 = std::f64::consts::PI.powi(2);
    let v = -1.0 / (2.0 * std::f64::consts::PI * r);
    let disc = 2.0 * r * (15.0 - 2.0 * pi2 * r);
    let (lre, lim) = if disc >= 0.0 {
        (2.0 * v + disc.sqrt(), 0.0)
    } else {
        (2.0 * v, (-disc).sqrt())
    };
    let (re, im) = (
        res.summary(Statistic::EigRe, p, 0).unwrap(),
        res.summary(Statistic::EigIm, p, 0).unwrap(),
    );
    assert!(
        (re - lre).abs() < 1e-6 && (im - lim).abs() < 1e-6,
        "{what}: {re}+{im}i vs {lre}+{lim}i"
    );
    lim
}

#[test]
fn montbrio_bistable_range_two_starts_find_both_fixed_points() {
    // One MPR population (τ = Δ = 1, J = 15): three fixed points (bistable) for
    // η ∈ (−5.7435, −3.1361), one outside. Two starts per η (as grid keys setting the
    // initial r and v): near the low state and near the high one. Each run must settle
    // on the lowest / highest root of the quartic (`mpr_fixed_points`, bisection: an
    // independent method), and its leading eigenvalue must be that of the analytic
    // Jacobian [[2v, 2r], [J − 2π²r, 2v]] at v = −1/(2πr). The slowest decay here is
    // ~0.3/unit time, so by t = 100 the state is within ~1e-12: 1e-6 (the issue's bound).
    let etas = [-7.0, -6.0, -5.5, -5.0, -4.0, -3.5, -2.5];
    let starts = [(0.01, -2.0), (1.1, -0.15)];
    let mut cols = vec![Vec::new(); 3];
    for &eta in &etas {
        for &(r0, v0) in &starts {
            cols[0].push(eta);
            cols[1].push(r0);
            cols[2].push(v0);
        }
    }
    let grid = Grid::from_columns(vec!["eta".into(), "r0".into(), "v0".into()], cols).unwrap();
    let map = ParamMap::new()
        .nodes("eta", &["qif_op/eta"], &["p"])
        .nodes("r0", &["qif_op/r"], &["p"])
        .nodes("v0", &["qif_op/v"], &["p"]);
    let (c, sim) = montbrio_settling();
    let r = sweep(&c, grid, map, sim, &[("r", "p/qif_op/r"), ("v", "p/qif_op/v")]);
    for (e, &eta) in etas.iter().enumerate() {
        let roots = test_models::mpr_fixed_points(eta, 0.0, 15.0, 1.0);
        let bistable = eta > -5.7435 && eta < -3.1361;
        assert_eq!(roots.len(), if bistable { 3 } else { 1 }, "eta {eta}: {roots:?}");
        let finals: Vec<f64> = (0..2)
            .map(|s| r.summary(Statistic::Last, 2 * e + s, 0).unwrap())
            .collect();
        for (s, want) in [(0, roots[0]), (1, roots[roots.len() - 1])] {
            let p = 2 * e + s;
            let code = Regime::from_code(r.summary(Statistic::Regime, p, 0).unwrap());
            assert!(
                matches!(code, Some(Regime::StableNode | Regime::StableFocus)),
                "eta {eta} start {s}: {code:?}"
            );
            assert!(
                (finals[s] - want).abs() < 1e-6,
                "eta {eta} start {s}: r {} vs {want}",
                finals[s]
            );
            let lim = assert_mpr_leading_eigenvalue(&r, p, want, &format!("eta {eta} start {s}"));
            assert_eq!(code == Some(Regime::StableFocus), lim > 0.0);
        }
        // Bistable exactly where the two starts end apart.
        assert_eq!((finals[0] - finals[1]).abs() > 1e-3, bistable, "eta {eta}: {finals:?}");
    }
}

#[test]
fn montbrio_initial_conditions_find_both_bistability_boundaries() {
    // η on a 0.05 grid over (−7, −2), three starts per point (`initial_conditions`: near
    // the low state, and near the high state at either end of its range, which moves from
    // r ≈ 0.82 at the lower fold to 1.27 at the upper one). `multistable` must be 1 exactly inside the
    // analytic bistable range (−5.7435, −3.1361) — the quartic's root count, an
    // independent method — except within one cell of a boundary, where the decay rate
    // goes to zero at the fold and an end may still be moving (then NaN or either
    // answer); so the first and last multistable points bracket the boundaries within
    // the cell width.
    let etas: Vec<f64> = (0..=100).map(|i| -7.0 + 0.05 * f64::from(i)).collect();
    let values: IndexMap<String, Vec<f64>> = [("eta".to_string(), etas.clone())].into_iter().collect();
    let grid = Grid::from_values(&values, false).unwrap();
    let map = ParamMap::new().nodes("eta", &["qif_op/eta"], &["p"]);
    let (c, sim) = montbrio_settling();
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = vec![("r".into(), "p/qif_op/r".into())];
    spec.summaries = vec![Statistic::Regime, Statistic::Multistable, Statistic::Last];
    spec.initial_conditions = test_models::mpr_bistable_starts();
    spec.keep_traces = false;
    spec.backend = Backend::Jit;
    (spec.block_size, spec.threads) = (16, Some(2));
    let mut sink = MemorySink::new();
    run(&spec, &c, &mut sink).unwrap();
    let r = sink.into_result().unwrap();
    let (lo, hi) = (-5.7435, -3.1361);
    let cell = 0.05;
    let mut flagged = Vec::new();
    for (p, &eta) in etas.iter().enumerate() {
        let flag = r.summary(Statistic::Multistable, p, 0).unwrap();
        let near = (eta - lo).abs() <= cell || (eta - hi).abs() <= cell;
        if !near {
            let bistable = eta > lo && eta < hi;
            assert_eq!(flag, f64::from(u8::from(bistable)), "eta {eta}");
            // The reported statistics are the first (low) start's: the lowest root.
            let want = test_models::mpr_fixed_points(eta, 0.0, 15.0, 1.0)[0];
            assert!(
                (r.summary(Statistic::Last, p, 0).unwrap() - want).abs() < 1e-6,
                "eta {eta}"
            );
        }
        if flag == 1.0 {
            flagged.push(eta);
        }
    }
    let (first, last) = (flagged[0], flagged[flagged.len() - 1]);
    assert!(
        (first - lo).abs() <= cell && (last - hi).abs() <= cell,
        "{first} … {last}"
    );
    // Without two starts, `multistable` is a settings error naming the setting.
    spec.initial_conditions.truncate(1);
    let err = run(&spec, &c, &mut MemorySink::new()).unwrap_err();
    assert!(err.to_string().contains("initial_conditions"), "{err}");
}

#[test]
fn random_start_values_are_uniform_within_bounds_and_keyed() {
    let rs = RandomStarts {
        n: 1,
        seed: 7,
        bounds: vec![("a".into(), -3.0, 1.0)],
    };
    // 20,000 draws over points and starts: in [−3, 1), mean −1 and variance 16/12 of the
    // uniform law; the standard error of the mean is √(16/12/20000) ≈ 0.0082, so 0.04 is
    // ~5σ; of the variance ≈ 16/12·√(0.8/20000)·… ≈ 0.0084, so 0.05 is ~6σ.
    let xs: Vec<f64> = (0..200)
        .flat_map(|p| (0..100).map(move |k| (p, k)))
        .map(|(p, k)| rs.value(p, k, 0))
        .collect();
    assert!(xs.iter().all(|&x| (-3.0..1.0).contains(&x)));
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
    assert!((mean + 1.0).abs() < 0.04, "{mean}");
    assert!((var - 16.0 / 12.0).abs() < 0.05, "{var}");
    // Every key changes the draw.
    let other_seed = RandomStarts { seed: 8, ..rs.clone() };
    assert_ne!(rs.value(3, 2, 0), other_seed.value(3, 2, 0));
    assert_ne!(rs.value(3, 2, 0), rs.value(4, 2, 0));
    assert_ne!(rs.value(3, 2, 0), rs.value(3, 3, 0));
    let two = RandomStarts {
        bounds: vec![("a".into(), -3.0, 1.0), ("b".into(), -3.0, 1.0)],
        ..rs.clone()
    };
    assert_ne!(two.value(3, 2, 0), two.value(3, 2, 1));
    assert_eq!(rs.value(3, 2, 0), two.value(3, 2, 0));
}

/// The Montbrió sweep of the random-starts test: η per point, `n` random starts.
fn montbrio_random_starts(
    etas: &[f64],
    random: Option<RandomStarts>,
    init: Option<(&[f64], &[f64])>,
    block_size: usize,
    threads: usize,
    chunk_size: usize,
) -> crate::sweep::SweepResult {
    let mut keys = vec!["eta".to_string()];
    let mut cols = vec![etas.to_vec()];
    let mut map = ParamMap::new().nodes("eta", &["qif_op/eta"], &["p"]);
    if let Some((r0, v0)) = init {
        keys.extend(["r0".to_string(), "v0".to_string()]);
        cols.extend([r0.to_vec(), v0.to_vec()]);
        map = map
            .nodes("r0", &["qif_op/r"], &["p"])
            .nodes("v0", &["qif_op/v"], &["p"]);
    }
    let grid = Grid::from_columns(keys, cols).unwrap();
    let (c, sim) = montbrio_settling();
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = vec![("r".into(), "p/qif_op/r".into()), ("v".into(), "p/qif_op/v".into())];
    spec.summaries = vec![Statistic::Regime, Statistic::EigRe, Statistic::EigIm, Statistic::Last];
    if random.is_some() {
        spec.summaries.insert(1, Statistic::Multistable);
    }
    spec.random_starts = random;
    spec.keep_traces = false;
    spec.backend = Backend::Jit;
    (spec.block_size, spec.threads, spec.chunk_size) = (block_size, Some(threads), chunk_size);
    let mut sink = MemorySink::new();
    run(&spec, &c, &mut sink).unwrap();
    sink.into_result().unwrap()
}

#[test]
fn montbrio_random_starts_find_both_attractors_inside_the_bistable_range() {
    // Single MPR population (τ = Δ = 1, J = 15), bistable for η ∈ (−5.7435, −3.1361).
    // Eight random starts per η, r ∈ [0, 2.5), v ∈ [−2.5, 0). A second method: each start
    // run on its own (its r and v as grid keys, from `RandomStarts::value`), whose ends
    // must be the lowest or highest root of the quartic (`mpr_fixed_points`) ≤ 1e-6 with
    // the analytic Jacobian's leading eigenvalue ≤ 1e-6 (the slowest decay is ~0.3 per
    // unit time: by t = 100 the state is within ~1e-12); both roots reached inside the
    // range, the one root outside; `multistable` says the same; and the random-start
    // sweep reports the first start's end, bit for bit that of its single run.
    let etas = [-7.0, -6.2, -5.3, -4.6, -3.8, -3.4, -2.5];
    let n = 8;
    let random = RandomStarts {
        n,
        seed: 2026,
        bounds: vec![("p/qif_op/r".into(), 0.0, 2.5), ("p/qif_op/v".into(), -2.5, 0.0)],
    };
    let r = montbrio_random_starts(&etas, Some(random.clone()), None, 4, 2, 0);
    let (mut eta_col, mut r0, mut v0) = (Vec::new(), Vec::new(), Vec::new());
    for (p, &eta) in etas.iter().enumerate() {
        for k in 0..n {
            eta_col.push(eta);
            r0.push(random.value(p, k, 0));
            v0.push(random.value(p, k, 1));
        }
    }
    let single = montbrio_random_starts(&eta_col, None, Some((&r0, &v0)), 16, 2, 0);
    for (p, &eta) in etas.iter().enumerate() {
        let roots = test_models::mpr_fixed_points(eta, 0.0, 15.0, 1.0);
        let bistable = eta > -5.7435 && eta < -3.1361;
        assert_eq!(roots.len(), if bistable { 3 } else { 1 }, "eta {eta}: {roots:?}");
        let stable = [roots[0], roots[roots.len() - 1]];
        let mut reached = [false, false];
        for k in 0..n {
            let q = p * n + k;
            let end = single.summary(Statistic::Last, q, 0).unwrap();
            let which = usize::from((end - stable[1]).abs() < (end - stable[0]).abs());
            let want = stable[which];
            assert!((end - want).abs() < 1e-6, "eta {eta} start {k}: r {end} vs {want}");
            reached[which] = true;
            assert_mpr_leading_eigenvalue(&single, q, want, &format!("eta {eta} start {k}"));
        }
        assert_eq!(reached, [true, bistable], "eta {eta}");
        assert_eq!(
            r.summary(Statistic::Multistable, p, 0),
            Some(f64::from(u8::from(bistable))),
            "eta {eta}"
        );
        for stat in [Statistic::Regime, Statistic::EigRe, Statistic::EigIm, Statistic::Last] {
            for c in 0..2 {
                assert_eq!(
                    r.summary(stat, p, c).unwrap().to_bits(),
                    single.summary(stat, p * n, c).unwrap().to_bits(),
                    "eta {eta} {stat:?}"
                );
            }
        }
    }
    // The same seeds whatever the threads, block size or chunking: bit for bit.
    for (block, threads, chunk) in [(1, 1, 0), (3, 2, 2), (64, 1, 5)] {
        let again = montbrio_random_starts(&etas, Some(random.clone()), None, block, threads, chunk);
        let (a, b) = (r.summaries.as_ref().unwrap(), again.summaries.as_ref().unwrap());
        for (x, y) in a.values.iter().flatten().zip(b.values.iter().flatten()) {
            assert_eq!(
                x.to_bits(),
                y.to_bits(),
                "block {block} threads {threads} chunk {chunk}"
            );
        }
    }
}

#[test]
fn random_starts_bad_settings_are_clear_errors() {
    let (mut c, _) = test_models::mpr_single();
    c.node_operators = vec![("p".into(), vec!["qif_op".into()])];
    let grid = Grid::from_columns(vec!["eta".into()], vec![vec![-5.0]]).unwrap();
    let map = ParamMap::new().nodes("eta", &["qif_op/eta"], &["p"]);
    let sim = SimConfig {
        simulation_time: 1.0,
        dt: 0.01,
        sampling_step: None,
        method: Method::Euler,
        cutoff: 0.0,
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = vec![("r".into(), "p/qif_op/r".into())];
    spec.summaries = vec![Statistic::Regime, Statistic::Multistable];
    spec.backend = Backend::Reference;
    let with = |n: usize, bounds: Vec<(&str, f64, f64)>| RandomStarts {
        n,
        seed: 0,
        bounds: bounds.into_iter().map(|(k, a, b)| (k.to_string(), a, b)).collect(),
    };
    spec.random_starts = Some(with(4, vec![("p/qif_op/rr", 0.0, 1.0)]));
    let err = run(&spec, &c, &mut MemorySink::new()).unwrap_err();
    assert_eq!(err.problems()[0].argument, "random_starts");
    assert!(err.to_string().contains("did you mean 'p/qif_op/r'"), "{err}");
    spec.random_starts = Some(with(4, vec![("p/qif_op/r", 1.0, 0.0)]));
    let err = run(&spec, &c, &mut MemorySink::new()).unwrap_err();
    assert!(err.to_string().contains("low ≤ high"), "{err}");
    // One random start and no initial_conditions: `multistable` has nothing to compare.
    spec.random_starts = Some(with(1, vec![("p/qif_op/r", 0.0, 1.0)]));
    let err = run(&spec, &c, &mut MemorySink::new()).unwrap_err();
    assert!(err.to_string().contains("gives 1 start(s)"), "{err}");
    spec.random_starts = Some(with(0, vec![]));
    let problems = run(&spec, &c, &mut MemorySink::new()).unwrap_err().problems();
    assert!(
        problems.iter().filter(|p| p.argument == "random_starts").count() == 2,
        "{problems:?}"
    );
}

#[test]
fn delayed_circuit_regime_is_a_clear_error() {
    let mut b = test_models::Builder::new("d");
    let x = b.var("n/o/x", crate::model::VarKind::State, 1.0);
    let d = b.k(0.5);
    let past = b.c.add_expr(crate::model::Expr::Past(x, d));
    let k = b.var("n/o/k", crate::model::VarKind::Param, 1.0);
    let ke = b.v(k);
    let rhs = b.mul(ke, past);
    b.ode(x, rhs);
    b.c.node_operators = vec![("n".into(), vec!["o".into()])];
    let grid = Grid::from_columns(vec!["k".into()], vec![vec![-1.0]]).unwrap();
    let map = ParamMap::new().nodes("k", &["o/k"], &["n"]);
    let mut spec = SweepSpec::new(
        grid,
        map,
        SimConfig {
            simulation_time: 1.0,
            dt: 0.01,
            sampling_step: None,
            method: Method::Euler,
            cutoff: 0.0,
        },
    );
    spec.outputs = vec![("x".into(), "n/o/x".into())];
    spec.summaries = vec![Statistic::Regime];
    spec.backend = Backend::Reference;
    let err = run(&spec, &b.c, &mut MemorySink::new()).unwrap_err();
    assert!(
        err.to_string().contains("summary `regime`") && err.to_string().contains("delayed read"),
        "{err}"
    );
}
