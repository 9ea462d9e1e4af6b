//! Period detection: the upward crossings of each trace, scanned as the samples arrive.

use super::RegimeSettings;

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
    /// The lowest sample since the last crossing up to the one before the previous (NaN
    /// samples skipped; +∞ after a crossing): the trace is armed when it or the previous
    /// sample is below the arm. A number rather than a flag, so that every per-trace array
    /// holds `f64` and the passes over the traces stay in one vector width (a `bool` array
    /// cost a byte-to-lane shuffle per value).
    low: Vec<f64>,
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
            low: vec![f64::INFINITY; traces],
            prev: vec![f64::NAN; traces],
            peak: vec![f64::NEG_INFINITY; traces],
            crossings: vec![Vec::new(); traces],
            peaks: vec![Vec::new(); traces],
        }
    }

    /// Sample `index` (from 0, in order) of every trace.
    #[inline(always)]
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
    #[inline(always)]
    fn step(&mut self, index: usize, x: &[f64]) {
        // Nearly always no trace crosses: one pass to find that out and one to take the
        // sample, both branch-free over the traces (so they vectorise). `lowest` is the low
        // including the previous sample (a NaN one skipped, as `<` skips it).
        let lowest = |low: f64, prev: f64| if prev < low { prev } else { low };
        let crosses = |v: f64, prev: f64, low: f64, level: f64, arm: f64| {
            (lowest(low, prev) < arm) & (prev < level) & (v >= level)
        };
        let any = x
            .iter()
            .zip(self.prev.iter().zip(&self.low))
            .zip(self.level.iter().zip(&self.arm))
            .fold(false, |any, ((&v, (&prev, &low)), (&level, &arm))| {
                any | crosses(v, prev, low, level, arm)
            });
        if !any {
            let state = self.low.iter_mut().zip(self.prev.iter_mut().zip(self.peak.iter_mut()));
            for (&v, (low, (prev, peak))) in x.iter().zip(state) {
                *low = lowest(*low, *prev);
                // A NaN sample leaves the maximum as it is (the whole trace is NaN then).
                *peak = if v > *peak { v } else { *peak };
                *prev = v;
            }
            return;
        }
        for (t, &v) in x.iter().enumerate() {
            let (prev, level) = (self.prev[t], self.level[t]);
            if crosses(v, prev, self.low[t], level, self.arm[t]) {
                let frac = (level - prev) / (v - prev);
                if !self.crossings[t].is_empty() {
                    self.peaks[t].push(self.peak[t]);
                }
                self.crossings[t].push((index as f64 - 1.0 + frac) * self.dts);
                // The maximum starts again from the sample after the crossing, and the
                // trace must go below the arm again.
                self.peak[t] = v;
                self.low[t] = f64::INFINITY;
            } else {
                self.low[t] = lowest(self.low[t], prev);
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
