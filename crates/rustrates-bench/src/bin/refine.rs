//! Refined regime map against the full grid: the seed's Net3 over its two excitabilities
//! (examples/regimes/net3.yaml's settings), `summaries: [regime]`, no traces.
//!
//! ```text
//! cargo build --release -p rustrates-bench --bin refine
//! target/release/refine [--coarse 9] [--levels 5] [--backend jit] [--repeats 2]
//! ```
//!
//! The full grid is the finest lattice, `(coarse − 1)·2^levels + 1` values per key (257 × 257
//! by default: the resolution of a 256 × 256 grid); the refined sweep starts from `coarse` ×
//! `coarse` and halves cells whose corners differ in regime. Reported: the points each
//! computed, their ratio, the wall time of each (interleaved, `repeats` times), and the lattice
//! nodes whose label (regime code) in the refined sweep's regular view differs from the full
//! grid's: all of them, and those more than one finest cell from a boundary of the full grid
//! (a node none of whose 8 neighbours has another label), which must be none.

use std::time::Instant;

use rustrates::kernel::Backend;
use rustrates::model::load_circuit;
use rustrates::solve::{Method, SimConfig};
use rustrates::sweep::refine::{self, Criterion, Refine};
use rustrates::sweep::{Grid, MemorySink, ParamMap, Statistic, SweepResult, SweepSpec};
use rustrates::template::LoadOptions;
use rustrates_bench::Flags;

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect()
}

fn spec(side: usize, backend: Backend) -> SweepSpec {
    let mut values = indexmap::IndexMap::new();
    values.insert("eta_op".to_string(), linspace(-8.0, 4.0, side));
    values.insert("eta_iin".to_string(), linspace(-8.0, 4.0, side));
    let grid = Grid::from_values(&values, true).expect("equal lengths");
    let map = ParamMap::new()
        .nodes("eta_op", &["Op_e/eta"], &["PC"])
        .nodes("eta_iin", &["Op_i/eta"], &["IIN"]);
    let sim = SimConfig {
        cutoff: 100.0,
        ..SimConfig::new(Method::Rk4, 150.0, 5e-3, Some(1e-2))
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.outputs = vec![("r".into(), "PC/Op_e/r".into())];
    spec.summaries = Statistic::expand(&[Statistic::Regime]);
    spec.keep_traces = false;
    spec.chunk_size = 0;
    spec.backend = backend;
    spec
}

/// Each point's regime code (of the one output, `r`).
fn codes(r: &SweepResult) -> Vec<f64> {
    (0..r.labels.len())
        .map(|p| r.summary(Statistic::Regime, p, 0).expect("the regime summary"))
        .collect()
}

fn main() -> Result<(), String> {
    let mut coarse = 9;
    let mut levels = 5;
    let mut backend = Backend::Jit;
    let mut repeats = 2;
    let mut flags = Flags::from_env();
    while let Some(a) = flags.next_flag() {
        match a.as_str() {
            "--coarse" => coarse = flags.parsed(&a)?,
            "--levels" => levels = flags.parsed(&a)?,
            "--repeats" => repeats = flags.parsed(&a)?,
            "--backend" => backend = Backend::parse(&flags.value(&a)?).ok_or("unknown backend")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let side = (coarse - 1) * (1usize << levels) + 1;
    let loaded = load_circuit("model_templates.montbrio.simple_montbrio.Net3", &LoadOptions::default())
        .map_err(|e| e.to_string())?;
    let full_spec = spec(side, backend);
    let mut refined_spec = spec(coarse, backend);
    refined_spec.refine = Some(Refine {
        levels,
        criterion: Criterion::Regime,
        tolerance: 0.0,
    });
    let run = |s: &SweepSpec| -> Result<(SweepResult, f64), String> {
        let mut sink = MemorySink::new();
        let t = Instant::now();
        rustrates::sweep::run(s, &loaded.circuit, &mut sink).map_err(|e| e.to_string())?;
        Ok((sink.into_result().expect("finished"), t.elapsed().as_secs_f64()))
    };
    // Compile (or load from the cache) outside the timed runs.
    run(&spec(2, backend))?;
    let (mut full, mut refined) = (None, None);
    let (mut t_full, mut t_refined) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        let (f, tf) = run(&full_spec)?;
        let (r, tr) = run(&refined_spec)?;
        t_full.push(tf);
        t_refined.push(tr);
        (full, refined) = (Some(f), Some(r));
    }
    let (full, refined) = (full.ok_or("no repeats")?, refined.ok_or("no repeats")?);
    let view = refine::regular_result(&refined).ok_or("the refined result has no regular view")?;
    // The full grid's point of each lattice node (its order is PyRates', the view's is x fastest).
    let step = 12.0 / (side - 1) as f64;
    let node = |x: f64, y: f64| ((y + 8.0) / step).round() as usize * side + ((x + 8.0) / step).round() as usize;
    let full_codes = codes(&full);
    let mut full_label = vec![f64::NAN; side * side];
    for p in 0..full.labels.len() {
        full_label[node(full.grid_values[0][p], full.grid_values[1][p])] = full_codes[p];
    }
    let view_codes = codes(&view);
    let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
    let (mut differ, mut differ_far, mut near) = (0, 0, 0);
    for n in 0..side * side {
        let (i, j) = ((n % side) as isize, (n / side) as isize);
        let near_boundary = (-1..=1).any(|dj| {
            (-1..=1).any(|di| {
                let (x, y) = (i + di, j + dj);
                (0..side as isize).contains(&x)
                    && (0..side as isize).contains(&y)
                    && !same(full_label[(y as usize) * side + x as usize], full_label[n])
            })
        });
        near += usize::from(near_boundary);
        if !same(view_codes[n], full_label[n]) {
            differ += 1;
            differ_far += usize::from(!near_boundary);
        }
    }
    let fmt = |v: &[f64]| v.iter().map(|t| format!("{t:.2}")).collect::<Vec<_>>().join(", ");
    println!(
        "Net3 regime map, {side} × {side} lattice ({coarse} × {coarse} coarse, {levels} levels), backend {backend:?}"
    );
    println!("full grid:      {:>7} points, {} s", full.labels.len(), fmt(&t_full));
    println!(
        "refined:        {:>7} points ({:.2} % of the full grid), {} s",
        refined.labels.len(),
        100.0 * refined.labels.len() as f64 / full.labels.len() as f64,
        fmt(&t_refined)
    );
    let ratios: Vec<f64> = t_full.iter().zip(&t_refined).map(|(f, r)| f / r).collect();
    println!("time full / refined per repeat: {}", fmt(&ratios));
    println!(
        "labels differing from the full grid: {differ} of {} nodes ({near} nodes lie within one cell of a boundary); beyond one cell of a boundary: {differ_far}",
        side * side
    );
    if differ_far > 0 {
        return Err(format!("{differ_far} nodes differ away from any boundary"));
    }
    Ok(())
}
