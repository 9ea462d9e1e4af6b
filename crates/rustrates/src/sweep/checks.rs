//! Checks of a sweep made before anything is compiled, allocated or run: settings that would
//! give no samples or silently wrong ones, grid values that are not numbers, and what the
//! sweep needs in memory against what the machine has.
//!
//! Each problem names the setting it is about ([`Setting`]), so a front can point at it: the
//! CLI at the line and column of that key in the spec file, Python at the argument.

use super::{SweepError, SweepSpec};

/// The setting a problem is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setting {
    SimulationTime,
    StepSize,
    SamplingStepSize,
    Cutoff,
    /// The grid as a whole.
    ParamGrid,
    /// One key of the grid.
    GridKey(String),
    /// What the sweep keeps (traces, chunk, block sizes): a problem of its size.
    Size,
    /// One threshold of the regime classification (`regime.<name>`).
    Regime(String),
    /// The starts per point.
    InitialConditions,
    /// The random starts per point.
    RandomStarts,
}

impl Setting {
    /// The name of the setting as `grid_search` and a spec file spell it.
    pub fn name(&self) -> String {
        match self {
            Setting::SimulationTime => "simulation_time".into(),
            Setting::StepSize => "step_size".into(),
            Setting::SamplingStepSize => "sampling_step_size".into(),
            Setting::Cutoff => "cutoff".into(),
            Setting::ParamGrid => "param_grid".into(),
            Setting::GridKey(k) => format!("param_grid.{k}"),
            Setting::Size => "keep_traces".into(),
            Setting::Regime(k) => format!("regime.{k}"),
            Setting::InitialConditions => "initial_conditions".into(),
            Setting::RandomStarts => "random_starts".into(),
        }
    }
}

/// A setting whose value gives no result or a wrong one.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}: {message}; {help}", .setting.name())]
pub struct SettingError {
    pub setting: Setting,
    pub message: String,
    pub help: String,
}

fn problem(setting: Setting, message: String, help: impl Into<String>) -> SettingError {
    SettingError {
        setting,
        message,
        help: help.into(),
    }
}

/// One problem of a failed sweep as every front reports it: a stable code, the setting or
/// argument it concerns (as `grid_search` and a spec file spell it; empty when none), the
/// message and a hint. The CLI points `argument` at the spec's line, Python names it in the
/// exception's diagnostics; neither maps error variants itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub argument: String,
    pub message: String,
    pub help: Option<String>,
}

impl SweepError {
    /// The problems this error reports: one per setting for [`SweepError::Settings`], one
    /// otherwise.
    pub fn problems(&self) -> Vec<Problem> {
        use crate::solve::SolveError as S;
        let one = |code: &'static str, argument: &str| {
            vec![Problem {
                code,
                argument: argument.to_string(),
                message: self.to_string(),
                help: None,
            }]
        };
        match self {
            SweepError::Settings(list) => list
                .iter()
                .map(|p| Problem {
                    code: "sweep/bad-setting",
                    argument: p.setting.name(),
                    message: format!("`{}` {}", p.setting.name(), p.message),
                    help: Some(p.help.clone()),
                })
                .collect(),
            SweepError::Grid(_) => one("sweep/grid", "param_grid"),
            SweepError::Refine(_) => one("sweep/refine", "refine"),
            SweepError::ParamMap(_) => one("sweep/param-map", "param_map"),
            SweepError::UnknownInput { .. }
            | SweepError::NotAnInput { .. }
            | SweepError::InputSweptAndDriven { .. } => one("sweep/input", "inputs"),
            SweepError::UnknownOutput { .. } | SweepError::NoOutputs => one("sweep/output", "outputs"),
            SweepError::BadBlockSize => one("sweep/block-size", "block_size"),
            SweepError::BadShard { .. } => one("sweep/shard", "shard"),
            SweepError::SampleCount { .. } => one("sweep/internal", ""),
            SweepError::Kernel(_) => one("kernel", "backend"),
            SweepError::Jacobian(_) => one("sweep/jacobian", "summaries"),
            SweepError::InitialCondition { .. } => one("sweep/initial-condition", "initial_conditions"),
            SweepError::RandomStart { .. } => one("sweep/initial-condition", "random_starts"),
            SweepError::Solve(s) => match s {
                S::InputLength { .. } | S::InputColumns { .. } | S::NotAnInput { .. } => one("solve/input", "inputs"),
                S::SamplingNotMultiple { .. } => one("solve/sampling", "sampling_step_size"),
                S::BadStep { .. } => one("solve/step", "step_size"),
                S::BadTime { .. } => one("solve/time", "simulation_time"),
                S::BadTolerance { .. } => one("solve/tolerance", "rtol"),
                S::UnknownVar { .. } | S::BufferLength { .. } => one("solve/internal", ""),
            },
            SweepError::ThreadPool { .. } => one("sweep/threads", "n_threads"),
            SweepError::Cancelled { .. } => one("sweep/cancelled", ""),
            SweepError::Output { .. } => one("io", "out"),
            SweepError::Memory(m) => vec![Problem {
                code: "sweep/too-large",
                argument: Setting::Size.name(),
                // The message ends with the hint already.
                message: m.to_string(),
                help: None,
            }],
        }
    }
}

/// The most steps per point: beyond 2⁵³ the step index, and so t = k·dt, is no longer exact
/// in f64.
pub const MAX_STEPS: f64 = 9_007_199_254_740_992.0;

/// Every problem of the time settings (step, length, sampling, cutoff).
pub fn check_time(spec: &SweepSpec) -> Vec<SettingError> {
    let sim = &spec.sim;
    let (t, dt) = (sim.simulation_time, sim.dt);
    let mut out = Vec::new();
    if !(dt.is_finite() && dt > 0.0) {
        out.push(problem(
            Setting::StepSize,
            format!("must be positive and finite, got {dt}"),
            "give the integration step in seconds, e.g. 1e-4",
        ));
    }
    if !(t.is_finite() && t > 0.0) {
        out.push(problem(
            Setting::SimulationTime,
            format!("must be positive and finite, got {t}"),
            "give the simulated time in seconds, e.g. 5.0",
        ));
    }
    if !out.is_empty() {
        return out;
    }
    if t < dt {
        out.push(problem(
            Setting::SimulationTime,
            format!("{t} is shorter than step_size {dt}: not one step would be taken"),
            "make simulation_time at least step_size",
        ));
        return out;
    }
    if t / dt > MAX_STEPS {
        out.push(problem(
            Setting::StepSize,
            format!(
                "simulation_time / step_size = {:.3e} steps per point, more than 2^53",
                t / dt
            ),
            "beyond 2^53 steps t = k·step_size is not exact; use a larger step_size or a shorter simulation_time",
        ));
        return out;
    }
    let dts = sim.sampling_step.unwrap_or(dt);
    if let Some(s) = sim.sampling_step {
        if !(s.is_finite() && s > 0.0) {
            out.push(problem(
                Setting::SamplingStepSize,
                format!("must be positive and finite, got {s}"),
                "give the time between samples, a whole multiple of step_size",
            ));
            return out;
        }
        if s > t {
            out.push(problem(
                Setting::SamplingStepSize,
                format!("{s} is longer than simulation_time {t}: at most one sample (t = 0) would be kept"),
                "make sampling_step_size at most simulation_time",
            ));
            return out;
        }
    }
    // The solver's own rule (`solve::TimeGrid`), so every front meets it before anything runs.
    if let Err(e @ crate::solve::SolveError::SamplingNotMultiple { .. }) = crate::solve::TimeGrid::new(sim) {
        out.push(problem(
            Setting::SamplingStepSize,
            e.to_string().trim_start_matches("sampling_step_size ").to_string(),
            "samples are taken every few steps: pick a whole multiple of step_size",
        ));
        return out;
    }
    let c = sim.cutoff;
    if !c.is_finite() || c < 0.0 {
        out.push(problem(
            Setting::Cutoff,
            format!("must be a time ≥ 0, got {c}"),
            "give the time before which samples are dropped, 0 keeps all",
        ));
    } else if n_time(spec) == 0.0 {
        out.push(problem(
            Setting::Cutoff,
            format!("{c} leaves no sample: samples are taken at t = k·{dts} < simulation_time {t}"),
            "make cutoff smaller than simulation_time minus sampling_step_size",
        ));
    }
    out
}

/// Samples kept per point and output, computed without enumerating them (as
/// `solve::TimeGrid::first_emitted` counts them, within its hair of tolerance).
pub fn n_time(spec: &SweepSpec) -> f64 {
    let sim = &spec.sim;
    let dts = sim.sampling_step.unwrap_or(sim.dt);
    let samples = (sim.simulation_time / dts).round().max(0.0);
    let first = ((sim.cutoff - 1e-9 * dts) / dts).ceil().max(0.0);
    (samples - first).max(0.0)
}

/// Every problem of the grid: no points, or values that are not finite numbers.
/// Problems with the regime thresholds, when the sweep classifies regimes.
/// Problems with the random starts, too (they run with or without regimes).
pub fn check_regime(spec: &SweepSpec) -> Vec<SettingError> {
    let starts: Vec<SettingError> = spec
        .random_starts
        .iter()
        .flat_map(|r| r.problems())
        .map(|message| {
            problem(
                Setting::RandomStarts,
                message,
                "random_starts is {n: starts per point, seed: integer, bounds: {state: [low, high]}}",
            )
        })
        .collect();
    if !spec.summaries.iter().any(|s| s.needs_regime()) {
        return starts;
    }
    let mut out: Vec<SettingError> = starts;
    out.extend(spec.regime.problems().into_iter().map(|(field, message)| {
        problem(
            Setting::Regime(field.into()),
            message,
            "see the defaults in the README's regime section",
        )
    }));
    if spec.summaries.contains(&super::Statistic::Multistable) && spec.starts_per_point() < 2 {
        out.push(problem(
            Setting::InitialConditions,
            format!(
                "gives {} start(s); the `multistable` summary compares at least two",
                spec.starts_per_point()
            ),
            "list two or more initial_conditions, e.g. [{PC/Op_e/r: 0.01}, {PC/Op_e/r: 2.0}], or random_starts: {n: 8, bounds: {PC/Op_e/r: [0, 3]}}",
        ));
    }
    out
}

pub fn check_grid(spec: &SweepSpec) -> Vec<SettingError> {
    let grid = &spec.param_grid;
    let mut out = Vec::new();
    if grid.is_empty() {
        out.push(problem(
            Setting::ParamGrid,
            "has no points".into(),
            "give every key at least one value (an absent param_grid runs the template's own values once)",
        ));
    }
    for (key, col) in grid.keys().iter().zip(grid.columns()) {
        if let Some((i, x)) = col.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            out.push(problem(
                Setting::GridKey(key.clone()),
                format!("point {i} has the value {x}, which is not a finite number"),
                "grid values must be finite (a literal beyond ±1.8e308 reads as infinite)",
            ));
        }
    }
    out
}

/// A delay or spread set by the grid must be a time ≥ 0 (a negative or NaN delay would act
/// as none). `delays`: per grid key, whether it sets an edge's delay or spread.
pub fn check_delays(spec: &SweepSpec, delays: &[bool]) -> Vec<SettingError> {
    first_outside(
        spec,
        delays,
        |x| x >= 0.0,
        |i, x| format!("sets an edge delay or spread, and point {i} has {x}"),
        "delays and spreads are times ≥ 0 (0 is no delay)",
    )
}

/// Grid keys that set a block's conduction velocity (`velocities[k]`): every value finite and
/// > 0, since each lane's delays are length / velocity.
pub fn check_velocities(spec: &SweepSpec, velocities: &[bool]) -> Vec<SettingError> {
    first_outside(
        spec,
        velocities,
        |x| x.is_finite() && x > 0.0,
        |i, x| format!("sets a conduction velocity, and point {i} has {x}"),
        "velocities are finite numbers > 0 (each delay is length / velocity)",
    )
}

/// For each grid key marked in `keys`, its first point whose value `allowed` refuses, as a
/// problem at that key.
fn first_outside(
    spec: &SweepSpec,
    keys: &[bool],
    allowed: impl Fn(f64) -> bool,
    message: impl Fn(usize, f64) -> String,
    help: &str,
) -> Vec<SettingError> {
    let grid = &spec.param_grid;
    let marked = grid.keys().iter().zip(grid.columns()).zip(keys).filter(|(_, &k)| k);
    marked
        .filter_map(|((key, col), _)| {
            let (i, x) = col.iter().enumerate().find(|(_, x)| !allowed(**x))?;
            Some(problem(Setting::GridKey(key.clone()), message(i, *x), help))
        })
        .collect()
}

/// What a run needs in memory, and what the machine has.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{what} needs {} but the machine has {} available; {help}", bytes_text(*.needed), bytes_text(*.available))]
pub struct MemoryError {
    pub what: String,
    pub needed: f64,
    pub available: f64,
    pub help: String,
}

/// `1.5 GB`, `120 MB`.
pub fn bytes_text(b: f64) -> String {
    if b >= 1e12 {
        format!("{:.3} TB", b / 1e12)
    } else if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}

/// Memory available for new allocations: Linux' `MemAvailable`, or unknown elsewhere.
pub fn available_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Checks that `bytes` (computed in f64, so it cannot overflow) fit in memory before they are
/// allocated. Without a known amount of memory only what no address space holds is refused.
pub fn check_alloc(what: impl Into<String>, bytes: f64, help: impl Into<String>) -> Result<(), MemoryError> {
    let available = available_memory().unwrap_or(isize::MAX as f64);
    if bytes.is_finite() && bytes <= available && bytes <= isize::MAX as f64 {
        return Ok(());
    }
    Err(MemoryError {
        what: what.into(),
        needed: bytes,
        available,
        help: help.into(),
    })
}

/// The memory a run keeps for traces: all of them when the sink holds the results in memory,
/// else the block buffers the threads fill at once.
pub fn check_run_memory(
    spec: &SweepSpec,
    n_time: usize,
    n_cols: usize,
    threads: usize,
    in_memory: bool,
    buffer_traces: bool,
) -> Result<(), MemoryError> {
    let per_point = n_time as f64 * n_cols as f64 * 8.0;
    let n_points = spec.param_grid.len() as f64;
    let n_stats = spec.summaries.len() as f64;
    if in_memory {
        let traces = if spec.keep_traces { n_points * per_point } else { 0.0 };
        let blocks = if buffer_traces && !spec.keep_traces {
            threads as f64 * spec.block_size as f64 * per_point
        } else {
            0.0
        };
        let needed = traces + blocks + n_points * n_cols as f64 * n_stats * 8.0;
        return check_alloc(
            format!(
                "keeping the traces of {} points × {n_time} samples × {n_cols} outputs in memory",
                spec.param_grid.len()
            ),
            needed,
            format!(
                "stream the sweep to a file instead (`out=` in Python, `rustrates sweep`), which holds one block of {} points per thread at a time ({}), keep summaries only (keep_traces=False), or sample less often (a larger sampling_step_size)",
                spec.block_size,
                bytes_text(threads as f64 * spec.block_size as f64 * per_point)
            ),
        );
    }
    if !buffer_traces {
        return Ok(());
    }
    check_alloc(
        format!(
            "{threads} thread(s) × blocks of {} points × {n_time} samples × {n_cols} outputs",
            spec.block_size
        ),
        threads as f64 * spec.block_size as f64 * per_point,
        "sample less often (a larger sampling_step_size), a shorter simulation_time, a smaller block_size, or fewer threads",
    )
}

/// The worker threads of a run: the request, capped at the cores unless `oversubscribe`
/// (more threads than cores only share the cores and slow the sweep down: 1,000 threads on
/// 2 cores took 3.4 s where 2 took 0.19 s). Returns the count (0: rayon's default) and a
/// note when it was capped.
pub fn thread_count(requested: Option<usize>, oversubscribe: bool, cores: usize) -> (usize, Option<String>) {
    match requested {
        Some(n) if n > cores && !oversubscribe => (
            cores,
            Some(format!(
                "{n} threads asked for, {cores} used: this machine has {cores} cores and more threads would only share them (allow it with --oversubscribe / oversubscribe=True)"
            )),
        ),
        Some(n) => (n, None),
        None => (0, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_caps_at_the_cores_unless_oversubscribed() {
        assert_eq!(thread_count(Some(10_000), false, 2).0, 2);
        assert!(thread_count(Some(10_000), false, 2)
            .1
            .is_some_and(|n| n.contains("10000")));
        assert_eq!(thread_count(Some(10_000), true, 2), (10_000, None));
        assert_eq!(thread_count(Some(2), false, 2), (2, None));
        assert_eq!(thread_count(None, false, 2), (0, None));
    }

    fn spec_with(dt: f64, sampling: Option<f64>, cutoff: f64) -> SweepSpec {
        use crate::solve::{Method, SimConfig};
        use crate::sweep::{Grid, ParamMap};
        let sim = SimConfig {
            simulation_time: 1.0,
            dt,
            sampling_step: sampling,
            method: Method::Euler,
            cutoff,
        };
        SweepSpec::new(
            Grid::from_rows(vec![], &[vec![]]).expect("one point"),
            ParamMap::new(),
            sim,
        )
    }

    #[test]
    fn every_time_problem_names_its_setting_with_the_shared_code() {
        let cases = [
            (spec_with(1e-3, None, -0.5), "cutoff", "must be a time ≥ 0, got -0.5"),
            (spec_with(1e-3, None, 1.0), "cutoff", "leaves no sample"),
            (
                spec_with(0.0, None, 0.0),
                "step_size",
                "must be positive and finite, got 0",
            ),
            (
                spec_with(1e-3, Some(1.5e-3), 0.0),
                "sampling_step_size",
                "is not a whole multiple of step_size 0.001",
            ),
        ];
        for (spec, setting, text) in cases {
            let problems = SweepError::Settings(check_time(&spec)).problems();
            assert_eq!(problems.len(), 1, "{problems:?}");
            let p = &problems[0];
            assert_eq!((p.code, p.argument.as_str()), ("sweep/bad-setting", setting), "{p:?}");
            assert!(
                p.message.starts_with(&format!("`{setting}` ")) && p.message.contains(text),
                "{p:?}"
            );
        }
        assert!(check_time(&spec_with(1e-3, Some(2e-3), 0.5)).is_empty());
    }

    #[test]
    fn bytes_text_picks_the_unit() {
        assert_eq!(bytes_text(7.85e9), "7.85 GB");
        assert_eq!(bytes_text(8e12), "8.000 TB");
        assert_eq!(bytes_text(1.2e8), "120.0 MB");
    }
}
