use indexmap::IndexMap;

use super::*;
use crate::kernel::Backend;
use crate::model::jacobian::tests::stuart_landau;
use crate::model::test_models;
use crate::solve::{Method, SimConfig};
use crate::sweep::regime::Regime;
use crate::sweep::tests::{in_memory, in_memory_with};
use crate::sweep::{ParamMap, Statistic};

fn grid(keys: &[(&str, Vec<f64>)]) -> Grid {
    let values: IndexMap<String, Vec<f64>> = keys.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    Grid::from_values(&values, true).unwrap()
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect()
}

fn codes(r: &SweepResult, stat: Statistic) -> Vec<f64> {
    let nc = r.columns.len();
    let i = r
        .summaries
        .as_ref()
        .unwrap()
        .stats
        .iter()
        .position(|s| *s == stat)
        .unwrap();
    (0..r.labels.len())
        .map(|p| r.summaries.as_ref().unwrap().values[i][p * nc])
        .collect()
}

/// `(value, label)` of every point, sorted by value (1-D).
fn sorted(r: &SweepResult, stat: Statistic) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = r.grid_values[0].iter().copied().zip(codes(r, stat)).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

#[test]
fn lattice_levels_and_axis_round_trip() {
    let axis = Axis {
        coarse: vec![-1.0, 0.0, 3.0],
        scale: 4,
    };
    assert_eq!(axis.nodes(), 9);
    assert_eq!(axis.value(2), -0.5);
    assert_eq!(axis.value(6), 1.5);
    for n in 0..9 {
        assert_eq!(axis.node_of(axis.value(n)), Some(n));
    }
    assert_eq!(axis.node_of(3.5), None);
    // Levels with L = 2: multiples of 4 are level 0, of 2 level 1, odd level 2; in 2-D
    // the finer of the two indices decides.
    assert_eq!(level_of((8, 0), 2, false), 0);
    assert_eq!(level_of((6, 0), 2, false), 1);
    assert_eq!(level_of((5, 0), 2, false), 2);
    assert_eq!(level_of((4, 2), 2, true), 1);
    assert_eq!(level_of((4, 3), 2, true), 2);
}

#[test]
fn regular_view_fills_each_node_from_the_nearest_point() {
    // Coarse x ∈ {0, 4}, y ∈ {0, 4} (level 0), one level-2 point at (1, 1): the 5 × 5
    // lattice of step 1. Chebyshev distance decides; (2, 2) is 1 step from (1, 1) and 2
    // from every corner, (3, 3) is 1 from (4, 4).
    let keys = vec!["x".to_string(), "y".to_string(), LEVEL_KEY.to_string()];
    let values = vec![
        vec![0.0, 4.0, 0.0, 4.0, 1.0],
        vec![0.0, 0.0, 4.0, 4.0, 1.0],
        vec![0.0, 0.0, 0.0, 0.0, 2.0],
    ];
    let view = regular_view(&keys, &values).unwrap();
    assert_eq!(view.axes, vec![linspace(0.0, 4.0, 5), linspace(0.0, 4.0, 5)]);
    let at = |x: usize, y: usize| view.source[y * 5 + x];
    assert_eq!((at(0, 0), at(4, 0), at(0, 4), at(4, 4), at(1, 1)), (0, 1, 2, 3, 4));
    assert_eq!((at(2, 2), at(0, 2), at(3, 3), at(4, 1), at(1, 4)), (4, 4, 3, 1, 2));
    // Not refined: no view.
    assert_eq!(regular_view(&keys[..2], &values[..2]), None);
}

#[test]
fn refine_settings_errors_name_what_to_fix() {
    let map = ParamMap::new().nodes("mu", &["sl/mu"], &["p"]);
    let sim = SimConfig::new(Method::Rk4, 1.0, 0.01, None);
    let mut spec = SweepSpec::new(grid(&[("mu", vec![-1.0, 1.0])]), map, sim);
    spec.summaries = vec![Statistic::Mean];
    let refine = |levels, criterion, tolerance| Refine {
        levels,
        criterion,
        tolerance,
    };
    let err = |spec: &SweepSpec, r: Refine| check(spec, &r).unwrap_err().to_string();
    assert!(err(&spec, refine(2, Criterion::Regime, 0.0)).contains("add `regime` to the summaries"));
    assert!(err(&spec, refine(0, Criterion::Summary(Statistic::Mean), 0.0)).contains("levels must be 1"));
    assert!(err(&spec, refine(2, Criterion::Summary(Statistic::Mean), -1.0)).contains("tolerance"));
    assert!(check(&spec, &refine(2, Criterion::Summary(Statistic::Mean), 0.1)).is_ok());
    spec.param_grid = Grid::from_columns(vec!["mu".into()], vec![vec![1.0]]).unwrap();
    assert!(err(&spec, refine(2, Criterion::Summary(Statistic::Mean), 0.0)).contains("at least 2"));
    spec.param_grid =
        Grid::from_columns(vec!["a".into(), "b".into()], vec![vec![0., 1., 0.], vec![0., 0., 1.]]).unwrap();
    assert!(err(&spec, refine(2, Criterion::Summary(Statistic::Mean), 0.0)).contains("Cartesian"));
}

#[test]
fn stuart_landau_hopf_found_within_the_finest_cell() {
    // x' = μx − ωz − x r², z' = ωx + μz − z r² (ω = 2): a stable focus for μ < 0, a cycle
    // for μ > 0 (Hopf at μ = 0 exactly). Coarse μ every 0.5 from −1.03, 3 levels: finest
    // step 1/16, lattice nodes −0.03 and 0.0325 either side of 0. At |μ| ≥ 0.03 the
    // transient decays like e^{−|μ|t}: by the cutoff (t = 500) below 1e-6, so both sides
    // classify as the analytic answer.
    let mut spec = stuart_landau_sweep((500.0, 600.0), vec![Statistic::Regime], Backend::Jit);
    spec.refine = Some(Refine {
        levels: 3,
        criterion: Criterion::Regime,
        tolerance: 0.0,
    });
    let (r, summary) = in_memory_with(&spec, &stuart_landau(0.0, 2.0), RunControl::default());
    // The one boundary cell halved three times: 5 coarse + 3 points, not the 33 nodes.
    assert_eq!(r.labels.len(), 8, "{:?}", r.grid_values);
    assert_eq!(summary.points_run, 8);
    let step = 0.5 / 8.0;
    let points = sorted(&r, Statistic::Regime);
    for &(mu, code) in &points {
        let want = if mu < 0.0 {
            Regime::StableFocus
        } else {
            Regime::Periodic
        };
        assert_eq!(Regime::from_code(code), Some(want), "mu {mu}");
    }
    let switch = points.windows(2).find(|w| w[0].1 != w[1].1).unwrap();
    assert!(switch[0].0 < 0.0 && switch[1].0 > 0.0);
    assert!((switch[1].0 - switch[0].0 - step).abs() < 1e-12, "{switch:?}");
    // Levels: the coarse points 0, then one point per level 1, 2, 3.
    let mut levels = r.grid_values[1].clone();
    levels.sort_by(f64::total_cmp);
    assert_eq!(levels, [0., 0., 0., 0., 0., 1., 2., 3.]);
    // The regular view labels all 33 lattice nodes as the analytic answer.
    let view = regular_result(&r).unwrap();
    assert_eq!(view.labels.len(), 33);
    for (mu, code) in view.grid_values[0].iter().zip(codes(&view, Statistic::Regime)) {
        let want = if *mu < 0.0 {
            Regime::StableFocus
        } else {
            Regime::Periodic
        };
        assert_eq!(Regime::from_code(code), Some(want), "mu {mu}");
    }
    // With traces kept, every point's trace and summaries are those of a plain sweep of
    // the same point set, bit for bit (the passes and the replay lose nothing).
    spec.keep_traces = true;
    let kept = in_memory(&spec, &stuart_landau(0.0, 2.0));
    let mut plain = spec.clone();
    plain.refine = None;
    plain.param_grid = Grid::from_columns(vec!["mu".into()], vec![kept.grid_values[0].clone()]).unwrap();
    let direct = in_memory(&plain, &stuart_landau(0.0, 2.0));
    assert_eq!(kept.grid_values[0], r.grid_values[0]);
    assert_eq!(kept.traces.as_ref().unwrap().len(), 8 * 5000);
    assert!(kept
        .traces
        .iter()
        .flatten()
        .zip(direct.traces.iter().flatten())
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    let bits = |r: &SweepResult| -> Vec<u64> {
        r.summaries
            .iter()
            .flat_map(|s| s.values.iter().flatten().map(|v| v.to_bits()))
            .collect()
    };
    assert_eq!(bits(&kept), bits(&direct));
    assert_eq!(kept.status, direct.status);
}

/// The coarse Stuart–Landau sweep of μ (every 0.5 from −1.03) by RK4 at dt = 0.02, sampled
/// every step, `(cutoff, simulation_time)`, x's `summaries` only.
fn stuart_landau_sweep(
    (cutoff, simulation_time): (f64, f64),
    summaries: Vec<Statistic>,
    backend: Backend,
) -> SweepSpec {
    let mus: Vec<f64> = (0..5).map(|i| -1.03 + 0.5 * f64::from(i)).collect();
    let map = ParamMap::new().nodes("mu", &["sl/mu"], &["p"]);
    let sim = SimConfig {
        cutoff,
        ..SimConfig::new(Method::Rk4, simulation_time, 0.02, Some(0.02))
    };
    let mut spec = SweepSpec::new(grid(&[("mu", mus)]), map, sim);
    spec.outputs = vec![("x".into(), "p/sl/x".into())];
    spec.summaries = summaries;
    spec.keep_traces = false;
    spec.backend = backend;
    spec
}

fn stuart_landau_refined(backend: Backend) -> SweepSpec {
    let summaries = Statistic::expand(&[Statistic::Regime, Statistic::Mean]);
    let mut spec = stuart_landau_sweep((40.0, 60.0), summaries, backend);
    spec.refine = Some(Refine {
        levels: 4,
        criterion: Criterion::Regime,
        tolerance: 0.0,
    });
    spec
}

/// The result's summaries, every statistic and column, as bits (NaN compared by its bits).
fn summary_bits(r: &SweepResult) -> Vec<Vec<u64>> {
    let s = r.summaries.as_ref().unwrap();
    s.values
        .iter()
        .map(|v| v.iter().map(|x| x.to_bits()).collect())
        .collect()
}

#[test]
fn every_refine_pass_runs_on_one_kernel_compiled_once() {
    // Auto resolves once (for the coarse grid) and every pass reuses that kernel: one
    // build for all passes. The results are a plain sweep's of the same points on that
    // back end, bit for bit (a second kernel, compiled by the plain sweep itself).
    let circuit = stuart_landau(0.0, 2.0);
    let spec = stuart_landau_refined(Backend::Auto);
    let memo = PlanMemo::default();
    let plans = RunControl {
        plans: Some(&memo),
        ..RunControl::default()
    };
    let (refined, summary) = in_memory_with(&spec, &circuit, plans);
    assert!(summary.chunks_run >= 4, "passes: {}", summary.chunks_run);
    assert_eq!(memo.builds(), 1, "{} passes", summary.chunks_run);
    assert_ne!(summary.backend, Backend::Auto);
    let mut plain = spec.clone();
    plain.refine = None;
    plain.backend = summary.backend;
    plain.param_grid = Grid::from_columns(vec!["mu".into()], vec![refined.grid_values[0].clone()]).unwrap();
    let direct = in_memory(&plain, &circuit);
    assert_eq!(summary_bits(&refined), summary_bits(&direct));
    assert_eq!(refined.status, direct.status);
    // A concrete back end: no resolution, the first pass builds and the others reuse.
    let memo = PlanMemo::default();
    let ctrl = RunControl {
        plans: Some(&memo),
        ..RunControl::default()
    };
    let jit = stuart_landau_refined(Backend::Jit);
    let summary = run_with(&jit, &circuit, &mut MemorySink::new(), ctrl).unwrap();
    assert!(summary.chunks_run >= 4);
    assert_eq!(memo.builds(), 1);
}

/// Runs each pass as two halves (as workers would run chunks) and records the passes.
struct HalvesRunner {
    passes: std::sync::Mutex<Vec<(usize, Backend)>>,
}

impl PassRunner for HalvesRunner {
    fn run_pass(&self, spec: &SweepSpec, circuit: &Circuit) -> Result<SweepResult, SweepError> {
        assert!(spec.refine.is_none());
        self.passes.lock().unwrap().push((spec.param_grid.len(), spec.backend));
        let n = spec.param_grid.len();
        let half = |range: std::ops::Range<usize>| {
            let mut part = spec.clone();
            let cols = (0..spec.param_grid.keys().len())
                .map(|k| spec.param_grid.column(k)[range.clone()].to_vec())
                .collect();
            part.param_grid = Grid::from_columns(spec.param_grid.keys().to_vec(), cols).unwrap();
            in_memory(&part, circuit)
        };
        let (mut a, b) = (half(0..n / 2), half(n / 2..n));
        a.labels.extend(b.labels);
        for (x, y) in a.grid_values.iter_mut().zip(b.grid_values) {
            x.extend(y);
        }
        a.status.extend(b.status);
        if let (Some(sa), Some(sb)) = (a.summaries.as_mut(), b.summaries) {
            for (x, y) in sa.values.iter_mut().zip(sb.values) {
                x.extend(y);
            }
        }
        Ok(a)
    }
}

#[test]
fn passes_run_elsewhere_give_the_in_process_result_bit_for_bit() {
    // The cluster mode's route: the engine decides each pass, a PassRunner computes its
    // points (here in two halves, as chunks), the engine writes the point set. Same points,
    // labels, levels and summaries as the in-process refine.
    let circuit = stuart_landau(0.0, 2.0);
    let spec = stuart_landau_refined(Backend::Jit);
    let (local, local_summary) = in_memory_with(&spec, &circuit, RunControl::default());
    let runner = HalvesRunner {
        passes: std::sync::Mutex::new(Vec::new()),
    };
    let elsewhere = RunControl {
        refine_passes: Some(&runner),
        ..RunControl::default()
    };
    let (remote, summary) = in_memory_with(&spec, &circuit, elsewhere);
    let passes = runner.passes.into_inner().unwrap();
    assert_eq!(passes.len(), summary.chunks_run);
    assert_eq!(passes.len(), local_summary.chunks_run);
    assert!(passes.iter().all(|(_, b)| *b == Backend::Jit));
    assert_eq!(passes.iter().map(|p| p.0).sum::<usize>(), local.labels.len());
    assert_eq!(remote.labels, local.labels);
    let bits = |r: &SweepResult| -> Vec<Vec<u64>> {
        r.grid_values
            .iter()
            .map(|c| c.iter().map(|x| x.to_bits()).collect())
            .collect()
    };
    assert_eq!(bits(&remote), bits(&local));
    assert_eq!(summary_bits(&remote), summary_bits(&local));
    assert_eq!(remote.status, local.status);
}

fn mpr_spec(grid: Grid, map: ParamMap) -> SweepSpec {
    // Three starts per point: near the low state and near the high one at either end of
    // its range (as `sweep::regime`'s boundary test).
    let sim = SimConfig {
        cutoff: 90.0,
        ..SimConfig::new(Method::Rk4, 100.0, 0.005, Some(0.05))
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = vec![("r".into(), "p/qif_op/r".into())];
    spec.summaries = vec![Statistic::Regime, Statistic::Multistable];
    spec.initial_conditions = test_models::mpr_bistable_starts();
    spec.keep_traces = false;
    spec.backend = Backend::Jit;
    spec.block_size = 16;
    spec
}

fn mpr() -> Circuit {
    let (mut c, _) = test_models::mpr_single();
    c.node_operators = vec![("p".into(), vec!["qif_op".into()])];
    c
}

#[test]
fn montbrio_bistable_interval_boundaries_within_the_finest_cell() {
    // One MPR population (τ = Δ = 1, J = 15), bistable for η ∈ (−5.7435, −3.1361) (the
    // quartic's root count, `mpr_fixed_points`: an independent method). Coarse η every
    // 0.8 over [−7, −2.2], 4 levels: finest cell 0.05. Within one cell of a fold the slow
    // decay may leave an end still moving (the `sweep::regime` boundary test), so the
    // first and last multistable points must lie within one finest cell of the folds.
    let etas: Vec<f64> = (0..7).map(|i| -7.0 + 0.8 * f64::from(i)).collect();
    let map = ParamMap::new().nodes("eta", &["qif_op/eta"], &["p"]);
    let mut spec = mpr_spec(grid(&[("eta", etas)]), map);
    spec.refine = Some(Refine {
        levels: 4,
        criterion: Criterion::Regime,
        tolerance: 0.0,
    });
    let r = in_memory(&spec, &mpr());
    let cell = 0.8 / 16.0;
    for fold in [-5.7435, -3.1361] {
        let roots = |eta: f64| test_models::mpr_fixed_points(eta, 0.0, 15.0, 1.0).len();
        assert_ne!(roots(fold - 0.01), roots(fold + 0.01), "the analytic fold at {fold}");
    }
    let points = sorted(&r, Statistic::Multistable);
    let flagged: Vec<f64> = points.iter().filter(|p| p.1 == 1.0).map(|p| p.0).collect();
    let (first, last) = (flagged[0], flagged[flagged.len() - 1]);
    assert!(
        (first - -5.7435f64).abs() <= cell + 1e-12 && (last - -3.1361f64).abs() <= cell + 1e-12,
        "{first} … {last}"
    );
    // Around each fold the computed points are one finest cell apart.
    for fold in [-5.7435, -3.1361] {
        let below = points.iter().rev().find(|p| p.0 < fold).unwrap().0;
        let above = points.iter().find(|p| p.0 > fold).unwrap().0;
        assert!((above - below - cell).abs() < 1e-9, "{below} {above}");
    }
    // Fewer points than the 97 of the finest grid.
    assert!(r.labels.len() < 60, "{}", r.labels.len());
}

#[test]
fn montbrio_2d_refined_map_labels_as_the_full_grid_away_from_boundaries() {
    // Over (η, J) the bistable region of one MPR population is a wedge ending in a cusp:
    // curved boundaries. A 5 × 5 coarse grid with 3 levels against the full 33 × 33
    // grid of the same lattice: the regular view must give every node the full grid's
    // regime and multistable flag, except nodes within one finest cell of a boundary
    // (a node of the full grid with a differently labelled neighbour among its 8).
    let etas = linspace(-8.0, 0.0, 5);
    let js = linspace(8.0, 20.0, 5);
    let map = ParamMap::new()
        .nodes("eta", &["qif_op/eta"], &["p"])
        .nodes("J", &["qif_op/J"], &["p"]);
    let mut spec = mpr_spec(grid(&[("eta", etas.clone()), ("J", js.clone())]), map);
    spec.sim.simulation_time = 60.0;
    spec.sim.cutoff = 50.0;
    spec.sim.dt = 0.01;
    let mut full = spec.clone();
    full.param_grid = grid(&[("eta", linspace(-8.0, 0.0, 33)), ("J", linspace(8.0, 20.0, 33))]);
    spec.refine = Some(Refine {
        levels: 3,
        criterion: Criterion::Regime,
        tolerance: 0.0,
    });
    let c = mpr();
    let refined = in_memory(&spec, &c);
    let full = in_memory(&full, &c);
    let view = regular_result(&refined).unwrap();
    assert_eq!(view.labels.len(), 33 * 33);
    // The full grid's point of each lattice node (its order is PyRates', not the view's).
    let node = |x: f64, y: f64| -> usize {
        let i = ((x + 8.0) / 8.0 * 32.0).round() as usize;
        let j = ((y - 8.0) / 12.0 * 32.0).round() as usize;
        j * 33 + i
    };
    let mut full_at = vec![usize::MAX; 33 * 33];
    for p in 0..full.labels.len() {
        full_at[node(full.grid_values[0][p], full.grid_values[1][p])] = p;
    }
    let label = |r: &SweepResult, p: usize| {
        (
            codes(r, Statistic::Regime)[p].to_bits(),
            codes(r, Statistic::Multistable)[p].to_bits(),
        )
    };
    let full_labels: Vec<_> = (0..33 * 33).map(|n| label(&full, full_at[n])).collect();
    let view_labels: Vec<_> = (0..33 * 33).map(|n| label(&view, n)).collect();
    let mut boundary_nodes = 0;
    for n in 0..33 * 33 {
        let (i, j) = ((n % 33) as isize, (n / 33) as isize);
        let near_boundary = (-1..=1).any(|dj| {
            (-1..=1).any(|di| {
                let (x, y) = (i + di, j + dj);
                (0..33).contains(&x) && (0..33).contains(&y) && full_labels[(y * 33 + x) as usize] != full_labels[n]
            })
        });
        boundary_nodes += usize::from(near_boundary);
        if !near_boundary {
            assert_eq!(view_labels[n], full_labels[n], "node ({i}, {j})");
        }
    }
    // Both regimes and a boundary are present, and refinement saved points.
    eprintln!(
        "2-D: {} computed of 1089, {boundary_nodes} nodes near a boundary",
        refined.labels.len()
    );
    assert!(boundary_nodes > 20, "{boundary_nodes}");
    assert!(full_labels.iter().any(|l| l.1 == 1.0f64.to_bits()));
    assert!(refined.labels.len() < 33 * 33 / 2, "{}", refined.labels.len());
    // Every computed point carries the full grid's values.
    for p in 0..refined.labels.len() {
        let n = node(refined.grid_values[0][p], refined.grid_values[1][p]);
        assert_eq!(label(&refined, p), full_labels[n], "point {p}");
    }
}
