//! The `regime` summary: what each point's trajectory settled into, decided in the run.
//!
//! Per point, from the status, the state at the last sample (t_end) and the post-cutoff
//! sampled outputs:
//! - **diverged** — the state became non-finite (or the step size collapsed);
//! - **fixed point** — the right-hand side at t_end is stationary:
//!   `max_i |f_i(x)| ≤ stationary_tol · (1 + max_i |x_i|)`. The eigenvalues of the
//!   Jacobian there ([`crate::model::jacobian`]) decide between **stable node** (leading
//!   eigenvalue real and negative), **stable focus** (leading pair complex, negative real
//!   part) and **unstable fixed point** (leading real part ≥ 0: a trajectory that sits on a
//!   saddle or an unstable equilibrium, e.g. started there);
//! - **periodic** — every output column that moves (max − min > `flat_tol · (1 + |mean|)`)
//!   repeats: its upward crossings of a level are spaced by a period that is the same,
//!   within `period_rtol` relative, for at least `min_cycles` cycles, and so are the
//!   per-cycle maxima (within `period_rtol` of the range). The crossings are those of the
//!   whole post-cutoff window, upwards through the mid-range level of its first quarter
//!   ([`level_samples`]), each armed only after the trace went below the lower quarter of
//!   that first range (so ripples do not count): the samples are scanned as they arrive,
//!   only the first quarter is kept until its range is known. A cycle that crosses the
//!   level several times per period (period 2, 3, 4) is found by grouping 2–4 crossings;
//! - **irregular** — none of these (chaos, quasi-periodicity, or a transient still going
//!   on at t_end: simulate longer or raise the cutoff).
//!
//! Columns per output: `period` (time units; NaN unless that column repeats) and `amplitude`
//! ((max − min)/2 after the cutoff). Per point (the same in every column): `regime` (the
//! code of [`Regime`]) and `eig_re`, `eig_im`, the leading eigenvalue of a fixed point (NaN
//! otherwise).
//!
//! The period is the span between the first and last counted crossing divided by the cycles
//! between them; crossing times are interpolated linearly, which is exact to O(dts³) where a
//! smooth cycle crosses its mid-range level (an inflection for a sine).

/// Thresholds of the classification, with their defaults (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegimeSettings {
    /// Fixed point when `max|f(x)| ≤ stationary_tol · (1 + max|x|)` at t_end. Default 1e-6.
    pub stationary_tol: f64,
    /// Relative spread allowed between cycle periods (and between cycle maxima, relative to
    /// the range). Default 1e-2.
    pub period_rtol: f64,
    /// Cycles a periodic column must show after the cutoff. Default 3.
    pub min_cycles: usize,
    /// A column with `max − min ≤ flat_tol · (1 + |mean|)` does not move. Default 1e-9.
    pub flat_tol: f64,
    /// Two fixed points are different attractors when their states differ by more than
    /// `attractor_rtol · (1 + max|x|)` in some component. Default 1e-4.
    pub attractor_rtol: f64,
}

impl Default for RegimeSettings {
    fn default() -> Self {
        RegimeSettings {
            stationary_tol: 1e-6,
            period_rtol: 1e-2,
            min_cycles: 3,
            flat_tol: 1e-9,
            attractor_rtol: 1e-4,
        }
    }
}

impl RegimeSettings {
    /// Problems with the thresholds, as `(field, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        for (name, v) in [
            ("stationary_tol", self.stationary_tol),
            ("period_rtol", self.period_rtol),
            ("flat_tol", self.flat_tol),
            ("attractor_rtol", self.attractor_rtol),
        ] {
            if !(v.is_finite() && v > 0.0) {
                p.push((name, format!("regime.{name} must be a positive number, got {v}")));
            }
        }
        if self.min_cycles < 2 {
            p.push((
                "min_cycles",
                format!(
                    "regime.min_cycles must be at least 2 (a period needs two cycles to compare), got {}",
                    self.min_cycles
                ),
            ));
        }
        p
    }
}

/// A point's regime; the discriminant is the code stored in files and DataFrames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Regime {
    Diverged = 0,
    StableNode = 1,
    StableFocus = 2,
    UnstableFixedPoint = 3,
    Periodic = 4,
    Irregular = 5,
}

impl Regime {
    pub const ALL: [Regime; 6] = [
        Regime::Diverged,
        Regime::StableNode,
        Regime::StableFocus,
        Regime::UnstableFixedPoint,
        Regime::Periodic,
        Regime::Irregular,
    ];
    pub fn code(self) -> u8 {
        self as u8
    }
    pub fn name(self) -> &'static str {
        match self {
            Regime::Diverged => "diverged",
            Regime::StableNode => "stable_node",
            Regime::StableFocus => "stable_focus",
            Regime::UnstableFixedPoint => "unstable_fixed_point",
            Regime::Periodic => "periodic",
            Regime::Irregular => "irregular",
        }
    }
    /// The regime of a stored code (NaN or unknown: `None`).
    pub fn from_code(code: f64) -> Option<Regime> {
        Regime::ALL.into_iter().find(|r| f64::from(r.code()) == code)
    }
    /// `{"0": "diverged", ...}`: the codes as files record them.
    pub fn codes_json() -> serde_json::Value {
        Regime::ALL
            .iter()
            .map(|r| (r.code().to_string(), serde_json::Value::from(r.name())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// Period and amplitude of one sampled column `x(0) … x(n−1)` at step `dts`: `(period,
/// amplitude, moves)`; period NaN unless it repeats (see the module docs). The same scan as
/// the run's ([`CrossingScans`]), one trace at a time.
pub fn periodicity(x: impl Fn(usize) -> f64, n: usize, dts: f64, s: &RegimeSettings) -> (f64, f64, bool) {
    if n == 0 {
        return (f64::NAN, f64::NAN, false);
    }
    let (mut lo, mut hi, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
    for i in 0..n {
        let v = x(i);
        if v.is_nan() {
            return (f64::NAN, f64::NAN, true);
        }
        lo = lo.min(v);
        hi = hi.max(v);
        sum += v;
    }
    let mut scans = CrossingScans::new(1, n, dts);
    for i in 0..n {
        scans.push(i, &[x(i)]);
    }
    scans.finish(0, (lo, hi, sum / n as f64), s)
}

/// How many samples at the start of an `n`-sample window set the crossing level: the first
/// quarter (rounded up). A column found periodic shows `min_cycles` ≥ 2 cycles in the
/// window, so that quarter holds half a cycle or more; for a periodic trace any level
/// strictly inside its range is crossed once per cycle at the same phase, so the period
/// does not depend on which (ripples aside, which the arm keeps out).
pub fn level_samples(n: usize) -> usize {
    n.div_ceil(4)
}

/// The crossing scans of a block's traces, fed each sample as the solver emits it
/// (`x[trace]` at sample `index`, every trace at once: the solver's `[column][lane]` order),
/// so that no trace is kept for them.
///
/// The first [`level_samples`] samples set each trace's level (mid-range of their range) and
/// arm (a quarter up that range): they are kept until then, and scanned then. Every upward
/// crossing of the level in the window is counted, armed only after the trace went below
/// the arm, and the maximum between crossings kept. Nearly every sample crosses nothing in
/// any trace: that case is one branch-free pass over the traces.
pub struct CrossingScans {
    dts: f64,
    level_samples: usize,
    /// The level samples (`[sample][trace]`), until they set the level.
    head: Vec<f64>,
    /// The range of the level samples, per trace.
    lo: Vec<f64>,
    hi: Vec<f64>,
    level: Vec<f64>,
    arm: Vec<f64>,
    armed: Vec<bool>,
    /// The previous sample, and the maximum since the last crossing.
    prev: Vec<f64>,
    peak: Vec<f64>,
    /// Per trace: the upward crossings' times (linear interpolation between samples), and
    /// the maximum of the samples from each crossing (the sample after it) to the next.
    crossings: Vec<Vec<f64>>,
    peaks: Vec<Vec<f64>>,
}

impl CrossingScans {
    /// Scans of `traces` traces of `n` samples at step `dts`, no samples yet.
    pub fn new(traces: usize, n: usize, dts: f64) -> CrossingScans {
        CrossingScans::reusing(Vec::new(), traces, n, dts)
    }

    /// [`CrossingScans::new`] keeping the level samples in `buffer` (its values dropped, its
    /// allocation kept: see [`CrossingScans::into_buffer`]).
    pub fn reusing(mut buffer: Vec<f64>, traces: usize, n: usize, dts: f64) -> CrossingScans {
        buffer.clear();
        buffer.reserve(level_samples(n) * traces);
        CrossingScans {
            dts,
            level_samples: level_samples(n),
            head: buffer,
            lo: vec![f64::INFINITY; traces],
            hi: vec![f64::NEG_INFINITY; traces],
            level: vec![f64::NAN; traces],
            arm: vec![f64::NAN; traces],
            armed: vec![false; traces],
            prev: vec![f64::NAN; traces],
            peak: vec![f64::NEG_INFINITY; traces],
            crossings: vec![Vec::new(); traces],
            peaks: vec![Vec::new(); traces],
        }
    }

    /// Sample `index` (from 0, in order) of every trace.
    #[inline]
    pub fn push(&mut self, index: usize, x: &[f64]) {
        let traces = self.prev.len();
        let x = &x[..traces];
        if index >= self.level_samples {
            self.step(index, x);
            return;
        }
        // The first quarter is kept until its range sets the level, then scanned.
        for ((&v, lo), hi) in x.iter().zip(self.lo.iter_mut()).zip(self.hi.iter_mut()) {
            *lo = if v < *lo { v } else { *lo };
            *hi = if v > *hi { v } else { *hi };
        }
        self.head.extend_from_slice(x);
        if index + 1 < self.level_samples {
            return;
        }
        let levels = self.level.iter_mut().zip(self.arm.iter_mut());
        for ((&lo, &hi), (level, arm)) in self.lo.iter().zip(&self.hi).zip(levels) {
            *level = 0.5 * (hi + lo);
            *arm = lo + 0.25 * (hi - lo);
        }
        let head = std::mem::take(&mut self.head);
        self.prev.copy_from_slice(&head[..traces]);
        for (i, sample) in head.chunks_exact(traces).enumerate().skip(1) {
            self.step(i, sample);
        }
        self.head = head;
    }

    /// The scan's step to sample `index` (after the level is set).
    #[inline]
    fn step(&mut self, index: usize, x: &[f64]) {
        // Nearly always no trace crosses: one pass to find that out and one to take the
        // sample, both branch-free over the traces (so they vectorise).
        let crosses = |v: f64, prev: f64, level: f64, arm: f64, armed: bool| {
            (armed | (prev < arm)) & (prev < level) & (v >= level)
        };
        let any = x
            .iter()
            .zip(&self.prev)
            .zip(self.level.iter().zip(&self.arm))
            .zip(&self.armed)
            .fold(false, |any, (((&v, &prev), (&level, &arm)), &armed)| {
                any | crosses(v, prev, level, arm, armed)
            });
        if !any {
            let state = self
                .armed
                .iter_mut()
                .zip(self.prev.iter_mut().zip(self.peak.iter_mut()));
            for ((&v, &arm), (armed, (prev, peak))) in x.iter().zip(&self.arm).zip(state) {
                *armed |= *prev < arm;
                // A NaN sample leaves the maximum as it is (the whole trace is NaN then).
                *peak = if v > *peak { v } else { *peak };
                *prev = v;
            }
            return;
        }
        for (t, &v) in x.iter().enumerate() {
            let (prev, level) = (self.prev[t], self.level[t]);
            if crosses(v, prev, level, self.arm[t], self.armed[t]) {
                let frac = (level - prev) / (v - prev);
                if !self.crossings[t].is_empty() {
                    self.peaks[t].push(self.peak[t]);
                }
                self.crossings[t].push((index as f64 - 1.0 + frac) * self.dts);
                // The maximum starts again from the sample after the crossing.
                self.peak[t] = v;
                self.armed[t] = false;
            } else {
                self.armed[t] |= prev < self.arm[t];
                self.peak[t] = if v > self.peak[t] { v } else { self.peak[t] };
            }
            self.prev[t] = v;
        }
    }

    /// The buffer of the level samples, for the next scans to reuse.
    pub fn into_buffer(self) -> Vec<f64> {
        self.head
    }

    /// `(period, amplitude, moves)` of trace `t` whose whole window has this `(min, max,
    /// mean)`, from the crossings found.
    pub fn finish(&self, t: usize, (lo, hi, mean): (f64, f64, f64), s: &RegimeSettings) -> (f64, f64, bool) {
        if lo.is_nan() || hi.is_nan() || mean.is_nan() {
            return (f64::NAN, f64::NAN, true);
        }
        let amplitude = 0.5 * (hi - lo);
        if hi - lo <= s.flat_tol * (1.0 + mean.abs()) {
            return (f64::NAN, amplitude, false);
        }
        let (crossings, peaks) = (&self.crossings[t], &self.peaks[t]);
        for group in 1..=4usize {
            let cycles = crossings.len().saturating_sub(1) / group;
            if cycles < s.min_cycles {
                break;
            }
            let spans: Vec<(f64, f64)> = (0..cycles)
                .map(|c| {
                    let peak = peaks[c * group..(c + 1) * group]
                        .iter()
                        .fold(f64::NEG_INFINITY, |m, &p| m.max(p));
                    (crossings[(c + 1) * group] - crossings[c * group], peak)
                })
                .collect();
            let (pmin, pmax) = spans
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| (a.min(s.0), b.max(s.0)));
            let (mmin, mmax) = spans
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| (a.min(s.1), b.max(s.1)));
            let period = (crossings[cycles * group] - crossings[0]) / cycles as f64;
            if pmax - pmin <= s.period_rtol * period && mmax - mmin <= s.period_rtol * (hi - lo) {
                return (period, amplitude, true);
            }
        }
        (f64::NAN, amplitude, true)
    }
}

/// The amplitude [`CrossingScans::finish`] reports for a column with this `(min, max,
/// mean)`, without its crossings.
pub fn amplitude_in_range((lo, hi, mean): (f64, f64, f64)) -> f64 {
    if lo.is_nan() || hi.is_nan() || mean.is_nan() {
        f64::NAN
    } else {
        0.5 * (hi - lo)
    }
}

/// Classifies a point whose run finished: `residual` and `scale` are `max|f(x)|` and
/// `max|x|` at t_end, `leading` the leading eigenvalue of the Jacobian there (`None` when it
/// could not be computed), `columns` each output's `(period, moves)`.
pub fn classify(
    residual: f64,
    scale: f64,
    leading: Option<(f64, f64)>,
    columns: &[(f64, bool)],
    s: &RegimeSettings,
) -> Regime {
    if !(residual.is_finite() && scale.is_finite()) {
        return Regime::Diverged;
    }
    if residual <= s.stationary_tol * (1.0 + scale) {
        return match leading {
            Some((re, im)) if re < 0.0 && im != 0.0 => Regime::StableFocus,
            Some((re, _)) if re < 0.0 => Regime::StableNode,
            Some(_) => Regime::UnstableFixedPoint,
            None => Regime::Irregular,
        };
    }
    let moving: Vec<f64> = columns.iter().filter(|c| c.1).map(|c| c.0).collect();
    if !moving.is_empty() && moving.iter().all(|p| p.is_finite()) {
        Regime::Periodic
    } else {
        Regime::Irregular
    }
}

/// `n` random starts per point (`random_starts`), after any `initial_conditions`.
///
/// Start `k` of grid point `p` sets each bounded state `j` (`bounds[j]`, in the order given)
/// to `low + (high − low) · u`, `u` uniform in [0, 1) drawn from a counter-based generator
/// keyed by `(seed, p, k, j)` alone: the starts of a point do not depend on the block size,
/// the threads, the chunking or the shard that runs it. States without bounds keep the
/// point's own initial value (the template's, or the grid's).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RandomStarts {
    /// Starts per point.
    pub n: usize,
    pub seed: u64,
    /// `(state node/op/var, low, high)`.
    pub bounds: Vec<(String, f64, f64)>,
}

impl RandomStarts {
    /// The value of bound `bound` for start `start` of grid point `point`.
    pub fn value(&self, point: usize, start: usize, bound: usize) -> f64 {
        let (_, low, high) = self.bounds[bound];
        low + (high - low) * unit_uniform(self.seed, point as u64, start as u64, bound as u64)
    }

    /// Problems with the settings, as messages.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.n == 0 {
            p.push("asks for 0 starts; give n ≥ 1".to_string());
        }
        if self.bounds.is_empty() {
            p.push("bounds no state; give at least one, e.g. {PC/Op_e/r: [0, 3]}".to_string());
        }
        for (name, low, high) in &self.bounds {
            if !(low.is_finite() && high.is_finite() && low <= high) {
                p.push(format!(
                    "bounds of '{name}' are [{low}, {high}]; give finite [low, high] with low ≤ high"
                ));
            }
        }
        p
    }
}

/// A uniform number in [0, 1) determined by its four keys (splitmix64 finalisers chained,
/// the top 53 bits as the mantissa).
fn unit_uniform(seed: u64, point: u64, start: u64, bound: u64) -> f64 {
    let k = splitmix(seed ^ splitmix(point ^ splitmix(start ^ splitmix(bound ^ 0x5_7A27))));
    (k >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Where one start of a point ended (see [`multistable`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Attractor {
    pub regime: Option<Regime>,
    /// The state at the last sample.
    pub state: Vec<f64>,
    /// `(period, amplitude)` per output.
    pub cycles: Vec<(f64, f64)>,
}

impl Attractor {
    fn is_fixed_point(&self) -> bool {
        matches!(
            self.regime,
            Some(Regime::StableNode | Regime::StableFocus | Regime::UnstableFixedPoint)
        )
    }
}

/// Whether the starts of one point ended in different attractors: two different fixed
/// points (states apart by more than `attractor_rtol`), a fixed point and a cycle, or two
/// cycles whose period or amplitude differ by more than `period_rtol` in some output. Ends
/// that diverged or are irregular are not compared (they name no attractor); `None` when
/// fewer than two ends can be compared.
pub fn multistable(ends: impl Iterator<Item = Attractor>, s: &RegimeSettings) -> Option<bool> {
    let ends: Vec<Attractor> = ends
        .filter(|a| a.is_fixed_point() || a.regime == Some(Regime::Periodic))
        .collect();
    if ends.len() < 2 {
        return None;
    }
    let differ = |a: &Attractor, b: &Attractor| -> bool {
        match (a.is_fixed_point(), b.is_fixed_point()) {
            (true, true) => {
                let scale = a.state.iter().chain(&b.state).fold(0.0f64, |m, x| m.max(x.abs()));
                a.state
                    .iter()
                    .zip(&b.state)
                    .any(|(x, y)| (x - y).abs() > s.attractor_rtol * (1.0 + scale))
            }
            (false, false) => a.cycles.iter().zip(&b.cycles).any(|(p, q)| {
                let rel = |x: f64, y: f64| (x - y).abs() > s.period_rtol * x.abs().max(y.abs());
                rel(p.0, q.0) || rel(p.1, q.1)
            }),
            _ => true,
        }
    };
    Some(ends.iter().skip(1).any(|e| differ(&ends[0], e)))
}

#[cfg(test)]
mod tests {
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
}

#[cfg(test)]
mod sweep_tests {
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
        let r = sweep_keeping(c, grid.clone(), map.clone(), sim.clone(), outputs, false);
        // Keeping traces (another collector path) changes no number, bit for bit.
        let kept = sweep_keeping(c, grid, map, sim, outputs, true);
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

    fn sweep_keeping(
        c: &crate::model::Circuit,
        grid: Grid,
        map: ParamMap,
        sim: SimConfig,
        outputs: &[(&str, &str)],
        keep_traces: bool,
    ) -> crate::sweep::SweepResult {
        let mut spec = SweepSpec::new(grid, map, sim);
        spec.outputs = outputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        spec.summaries = Statistic::expand(&[Statistic::Regime, Statistic::Last, Statistic::Min, Statistic::Max]);
        spec.keep_traces = keep_traces;
        spec.backend = Backend::Jit;
        (spec.block_size, spec.threads) = (4, Some(2));
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
        let sim = SimConfig {
            simulation_time: 100.0,
            dt: 0.005,
            sampling_step: Some(0.05),
            method: Method::Rk4,
            cutoff: 90.0,
        };
        let (mut c, _) = test_models::mpr_single();
        c.node_operators = vec![("p".into(), vec!["qif_op".into()])];
        let r = sweep(&c, grid, map, sim, &[("r", "p/qif_op/r"), ("v", "p/qif_op/v")]);
        let pi2 = std::f64::consts::PI.powi(2);
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
                let v = -1.0 / (2.0 * std::f64::consts::PI * want);
                let disc = 2.0 * want * (15.0 - 2.0 * pi2 * want);
                let (lre, lim) = if disc >= 0.0 {
                    (2.0 * v + disc.sqrt(), 0.0)
                } else {
                    (2.0 * v, (-disc).sqrt())
                };
                let (re, im) = (
                    r.summary(Statistic::EigRe, p, 0).unwrap(),
                    r.summary(Statistic::EigIm, p, 0).unwrap(),
                );
                assert!(
                    (re - lre).abs() < 1e-6 && (im - lim).abs() < 1e-6,
                    "eta {eta} start {s}: {re}+{im}i vs {lre}+{lim}i"
                );
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
        let sim = SimConfig {
            simulation_time: 100.0,
            dt: 0.005,
            sampling_step: Some(0.05),
            method: Method::Rk4,
            cutoff: 90.0,
        };
        let (mut c, _) = test_models::mpr_single();
        c.node_operators = vec![("p".into(), vec!["qif_op".into()])];
        let mut spec = SweepSpec::new(grid, map, sim);
        spec.outputs = vec![("r".into(), "p/qif_op/r".into())];
        spec.summaries = vec![Statistic::Regime, Statistic::Multistable, Statistic::Last];
        spec.initial_conditions = vec![
            vec![("p/qif_op/r".into(), 0.01), ("p/qif_op/v".into(), -2.0)],
            vec![("p/qif_op/r".into(), 0.9), ("p/qif_op/v".into(), -0.19)],
            vec![("p/qif_op/r".into(), 1.25), ("p/qif_op/v".into(), -0.13)],
        ];
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
        let sim = SimConfig {
            simulation_time: 100.0,
            dt: 0.005,
            sampling_step: Some(0.05),
            method: Method::Rk4,
            cutoff: 90.0,
        };
        let (mut c, _) = test_models::mpr_single();
        c.node_operators = vec![("p".into(), vec!["qif_op".into()])];
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
        let pi2 = std::f64::consts::PI.powi(2);
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
                let v = -1.0 / (2.0 * std::f64::consts::PI * want);
                let disc = 2.0 * want * (15.0 - 2.0 * pi2 * want);
                let (lre, lim) = if disc >= 0.0 {
                    (2.0 * v + disc.sqrt(), 0.0)
                } else {
                    (2.0 * v, (-disc).sqrt())
                };
                let (re, im) = (
                    single.summary(Statistic::EigRe, q, 0).unwrap(),
                    single.summary(Statistic::EigIm, q, 0).unwrap(),
                );
                assert!(
                    (re - lre).abs() < 1e-6 && (im - lim).abs() < 1e-6,
                    "eta {eta} start {k}: {re}+{im}i vs {lre}+{lim}i"
                );
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
}
