//! Per-point summaries of the post-cutoff sampled traces, computed inside the run.
//!
//! - `mean`, `std` (population, ddof = 0 as numpy's default), `min`, `max`, `last`, `ptp`
//!   (max − min) are accumulated sample by sample (shifted sums for the variance), so they
//!   need no trace buffer.
//! - `dom_freq` and `dom_power` come from the discrete Fourier transform (`rustfft`) of the
//!   whole post-cutoff sampled trace (n samples at fs = 1/dts) with its mean removed, no
//!   window and no zero padding. Bins k = 1 … ⌊n/2⌋ are searched; the frequency is k·fs/n, so
//!   the resolution is fs/n = 1/(n·dts) (the inverse of the post-cutoff duration). The power is
//!   the one-sided share of the variance in that bin, 2|X_k|²/n² (|X_k|²/n² at the Nyquist bin):
//!   a sine of amplitude A exactly on a bin gives A²/2, and the powers of all bins sum to the
//!   population variance (Parseval). A trace with no variance gives frequency 0 and power 0.
//!
//! - `regime`, `period`, `amplitude`, `eig_re`, `eig_im`: the regime classification of
//!   [`super::regime`] (asking for `regime` brings the other four along, [`Statistic::expand`]);
//!   `multistable` (1 or 0) compares the ends of several starts (`initial_conditions`).
//!
//! A point whose status is not ok gets NaN for every statistic, except `regime`, which is
//! then the code of `diverged`.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    Mean,
    Std,
    Min,
    Max,
    Last,
    Ptp,
    DomFreq,
    DomPower,
    Regime,
    Period,
    Amplitude,
    EigRe,
    EigIm,
    Multistable,
}

impl Statistic {
    pub const ALL: [Statistic; 8] = [
        Statistic::Mean,
        Statistic::Std,
        Statistic::Min,
        Statistic::Max,
        Statistic::Last,
        Statistic::Ptp,
        Statistic::DomFreq,
        Statistic::DomPower,
    ];
    /// The statistics of the regime classification, in the order `regime` brings them.
    pub const REGIME: [Statistic; 5] = [
        Statistic::Regime,
        Statistic::Period,
        Statistic::Amplitude,
        Statistic::EigRe,
        Statistic::EigIm,
    ];
    /// The name used in files, DataFrame columns and specs.
    pub fn name(self) -> &'static str {
        match self {
            Statistic::Mean => "mean",
            Statistic::Std => "std",
            Statistic::Min => "min",
            Statistic::Max => "max",
            Statistic::Last => "last",
            Statistic::Ptp => "ptp",
            Statistic::DomFreq => "dom_freq",
            Statistic::DomPower => "dom_power",
            Statistic::Regime => "regime",
            Statistic::Period => "period",
            Statistic::Amplitude => "amplitude",
            Statistic::EigRe => "eig_re",
            Statistic::EigIm => "eig_im",
            Statistic::Multistable => "multistable",
        }
    }
    /// Accepts the names above plus `peak_to_peak`, `dominant_frequency`, `freq`, `power`, ....
    pub fn parse(name: &str) -> Option<Statistic> {
        Some(match name.to_ascii_lowercase().as_str() {
            "mean" => Statistic::Mean,
            "std" => Statistic::Std,
            "min" => Statistic::Min,
            "max" => Statistic::Max,
            "last" => Statistic::Last,
            "ptp" | "peak_to_peak" => Statistic::Ptp,
            "dom_freq" | "dominant_frequency" | "freq" | "frequency" => Statistic::DomFreq,
            "dom_power" | "dominant_power" | "power" => Statistic::DomPower,
            "regime" => Statistic::Regime,
            "period" => Statistic::Period,
            "amplitude" => Statistic::Amplitude,
            "eig_re" | "leading_eigenvalue_real" => Statistic::EigRe,
            "eig_im" | "leading_eigenvalue_imag" => Statistic::EigIm,
            "multistable" => Statistic::Multistable,
            _ => return None,
        })
    }
    pub fn needs_fft(self) -> bool {
        matches!(self, Statistic::DomFreq | Statistic::DomPower)
    }
    /// Computed by the regime classification (not from the moments).
    pub fn needs_regime(self) -> bool {
        Statistic::REGIME.contains(&self) || self == Statistic::Multistable
    }
    /// The statistics a request stands for, in order without repeats: `regime` brings
    /// `period`, `amplitude`, `eig_re` and `eig_im` right after it.
    pub fn expand(requested: &[Statistic]) -> Vec<Statistic> {
        let mut out: Vec<Statistic> = Vec::new();
        for &s in requested {
            let group: &[Statistic] = if s == Statistic::Regime {
                &Statistic::REGIME
            } else {
                std::slice::from_ref(&s)
            };
            for &g in group {
                if !out.contains(&g) {
                    out.push(g);
                }
            }
        }
        out
    }
}

/// Streaming moments of many traces at once (one per column and lane of a block): sums of
/// the samples shifted by each trace's first one (no division per sample, and the shift keeps
/// the variance free of cancellation for traces whose spread is not tiny next to their
/// offset). Structure of arrays, so that one sample of every trace is a handful of vector
/// operations: the solver delivers a sample for all lanes at once, and this runs every
/// sampling step of every point of a summaries-only sweep.
#[derive(Clone, Debug)]
pub struct Moments {
    /// Samples pushed (the same for every trace).
    n: usize,
    shift: Vec<f64>,
    s1: Vec<f64>,
    s2: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    last: Vec<f64>,
    nan: Vec<bool>,
    /// Only the shifted sum is kept (a sweep that asks for the mean alone): one add per value
    /// and sample instead of six passes; a NaN sample still makes the mean NaN, through the sum.
    mean_only: bool,
    /// Only the sum, the extremes and the NaN flags are kept (mean, min, max, ptp: what the
    /// regime reads): the sums of squares and the last sample are not.
    range_only: bool,
}

impl Moments {
    /// Moments of `traces` traces, no samples yet.
    pub fn new(traces: usize) -> Moments {
        Moments {
            n: 0,
            shift: vec![0.0; traces],
            s1: vec![0.0; traces],
            s2: vec![0.0; traces],
            min: vec![f64::INFINITY; traces],
            max: vec![f64::NEG_INFINITY; traces],
            last: vec![f64::NAN; traces],
            nan: vec![false; traces],
            mean_only: false,
            range_only: false,
        }
    }

    /// Moments for `stats` alone: only the mean's sum when the mean is all they need; the
    /// sum and the extremes when nothing else is (the regime statistics read the range and
    /// the mean).
    pub fn for_stats(traces: usize, stats: &[Statistic]) -> Moments {
        let mut m = Moments::new(traces);
        m.mean_only = stats.iter().all(|s| matches!(s, Statistic::Mean) || s.needs_fft());
        m.range_only = !m.mean_only
            && stats.iter().all(|s| {
                matches!(s, Statistic::Mean | Statistic::Min | Statistic::Max | Statistic::Ptp)
                    || s.needs_fft()
                    || s.needs_regime()
            });
        if m.mean_only {
            for v in [&mut m.s2, &mut m.min, &mut m.max, &mut m.last] {
                *v = Vec::new();
            }
        }
        if m.range_only {
            for v in [&mut m.s2, &mut m.last] {
                *v = Vec::new();
            }
        }
        m
    }

    /// Adds one sample to every trace: `x[i]` to trace i.
    #[inline(always)]
    pub fn push(&mut self, x: &[f64]) {
        let x = &x[..self.shift.len()];
        if self.n == 0 {
            self.shift.copy_from_slice(x);
        }
        self.n += 1;
        if self.mean_only {
            for ((&x, &shift), s1) in x.iter().zip(&self.shift).zip(self.s1.iter_mut()) {
                *s1 += x - shift;
            }
            return;
        }
        if self.range_only {
            // What the regime reads, in one pass (it runs every sample of a regime sweep).
            let mut any_nan = false;
            let extremes = self.min.iter_mut().zip(self.max.iter_mut());
            for ((&x, &shift), (s1, (min, max))) in x.iter().zip(&self.shift).zip(self.s1.iter_mut().zip(extremes)) {
                *s1 += x - shift;
                *min = if x < *min { x } else { *min };
                *max = if x > *max { x } else { *max };
                any_nan |= x.is_nan();
            }
            if any_nan {
                self.mark_nan(x);
            }
            return;
        }
        let sums = x
            .iter()
            .zip(&self.shift)
            .zip(self.s1.iter_mut().zip(self.s2.iter_mut()));
        for ((&x, &shift), (s1, s2)) in sums {
            let d = x - shift;
            *s1 += d;
            *s2 += d * d;
        }
        for ((&x, min), max) in x.iter().zip(self.min.iter_mut()).zip(self.max.iter_mut()) {
            *min = if x < *min { x } else { *min };
            *max = if x > *max { x } else { *max };
        }
        // Comparisons skip NaN, so remember it: a NaN sample makes every statistic NaN. The
        // branch-free test over all traces is cheap; marking which ones is the rare case.
        if x.iter().fold(false, |any, x| any | x.is_nan()) {
            self.mark_nan(x);
        }
        self.last.copy_from_slice(x);
    }

    /// Marks the traces whose sample in `x` is NaN (the rare case of [`Moments::push`]).
    #[cold]
    fn mark_nan(&mut self, x: &[f64]) {
        for (flag, x) in self.nan.iter_mut().zip(x) {
            *flag |= x.is_nan();
        }
    }

    /// Statistic `s` of trace `i`.
    pub fn get(&self, i: usize, s: Statistic) -> f64 {
        let kept = match s {
            Statistic::Mean => true,
            Statistic::Min | Statistic::Max | Statistic::Ptp => !self.mean_only,
            _ => !(self.mean_only || self.range_only),
        };
        if self.n == 0 || self.nan[i] || !kept {
            return f64::NAN;
        }
        let n = self.n as f64;
        let s1 = self.s1[i];
        match s {
            Statistic::Mean => self.shift[i] + s1 / n,
            Statistic::Std => {
                let s2 = self.s2[i];
                ((s2 - s1 * s1 / n) / n).max(0.0).sqrt()
            }
            Statistic::Min => self.min[i],
            Statistic::Max => self.max[i],
            Statistic::Last => self.last[i],
            Statistic::Ptp => self.max[i] - self.min[i],
            _ => f64::NAN,
        }
    }
}

/// A planned transform for traces of `n` samples, shared by all blocks of a sweep.
///
/// Even n (the usual case) uses the half-length trick: the real trace is packed as
/// z_m = x_{2m} + i·x_{2m+1}, one complex FFT of length n/2 is taken, and
/// X_k = E_k + e^{−2πik/n} O_k with E_k = (Z_k + conj Z_{n/2−k})/2,
/// O_k = (Z_k − conj Z_{n/2−k})/(2i) — half the work of a full complex transform, and the
/// result depends on the trace alone (not on which lanes share a block). Odd n takes the
/// full-length complex transform.
#[derive(Clone)]
pub struct SpectrumPlan {
    n: usize,
    fft: Arc<dyn Fft<f64>>,
    /// e^{−2πik/n}, k = 0 … n/2 (even n only).
    twiddle: Arc<[Complex<f64>]>,
}

/// One block's transform buffers.
pub struct Spectrum {
    plan: SpectrumPlan,
    buf: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    /// |X_k|², k = 1 … ⌊n/2⌋ (index k − 1).
    mag2: Vec<f64>,
}

impl Spectrum {
    pub fn plan(n: usize) -> SpectrumPlan {
        let mut planner = FftPlanner::new();
        if n >= 2 && n.is_multiple_of(2) {
            let twiddle = (0..=n / 2)
                .map(|k| Complex::from_polar(1.0, -2.0 * std::f64::consts::PI * k as f64 / n as f64))
                .collect();
            SpectrumPlan {
                n,
                fft: planner.plan_fft_forward(n / 2),
                twiddle,
            }
        } else {
            SpectrumPlan {
                n,
                fft: planner.plan_fft_forward(n),
                twiddle: Arc::from(Vec::new()),
            }
        }
    }
    pub fn new(plan: SpectrumPlan) -> Spectrum {
        let len = plan.fft.len();
        let scratch = vec![Complex::default(); plan.fft.get_inplace_scratch_len()];
        let n = plan.n;
        Spectrum {
            plan,
            buf: vec![Complex::default(); len],
            scratch,
            mag2: vec![0.0; n / 2],
        }
    }

    /// Fills `mag2` with |X_k|² of the mean-removed trace `x(0) … x(n−1)`.
    fn transform(&mut self, x: impl Fn(usize) -> f64) {
        let n = self.plan.n;
        let mean = (0..n).map(&x).sum::<f64>() / n as f64;
        if self.plan.twiddle.is_empty() {
            for (i, b) in self.buf.iter_mut().enumerate() {
                *b = Complex::new(x(i) - mean, 0.0);
            }
            self.plan.fft.process_with_scratch(&mut self.buf, &mut self.scratch);
            for (k, m) in self.mag2.iter_mut().enumerate() {
                *m = self.buf[k + 1].norm_sqr();
            }
            return;
        }
        let half = n / 2;
        for (m, b) in self.buf.iter_mut().enumerate() {
            *b = Complex::new(x(2 * m) - mean, x(2 * m + 1) - mean);
        }
        self.plan.fft.process_with_scratch(&mut self.buf, &mut self.scratch);
        let minus_half_i = Complex::new(0.0, -0.5);
        for k in 1..=half {
            let zk = self.buf[k % half];
            let zc = self.buf[(half - k) % half].conj();
            let e = (zk + zc) * 0.5;
            let o = (zk - zc) * minus_half_i;
            self.mag2[k - 1] = (e + self.plan.twiddle[k] * o).norm_sqr();
        }
    }

    /// `(dominant frequency, its power)` of the trace `x(0) … x(n−1)` at sampling step
    /// `dts`. See the module docs for the definitions.
    pub fn dominant(&mut self, x: impl Fn(usize) -> f64, dts: f64) -> (f64, f64) {
        let n = self.plan.n;
        if n < 2 {
            return (f64::NAN, f64::NAN);
        }
        self.transform(x);
        let n2 = (n * n) as f64;
        let (mut best_k, mut best_p) = (0usize, 0.0f64);
        for k in 1..=n / 2 {
            let one_sided = if 2 * k == n { 1.0 } else { 2.0 };
            let p = one_sided * self.mag2[k - 1] / n2;
            if p.is_nan() {
                return (f64::NAN, f64::NAN);
            }
            if p > best_p {
                best_k = k;
                best_p = p;
            }
        }
        (best_k as f64 / (n as f64 * dts), best_p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_random_trace_matches_two_pass_numpy_formulas() {
        // A deterministic pseudo-random trace (LCG), statistics by the textbook two-pass
        // formulas numpy uses; the shifted sums agree to rounding (1e-12 relative).
        let mut s = 12345u64;
        let xs: Vec<f64> = (0..1000)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 11) as f64 / (1u64 << 53) as f64 * 10.0 - 3.0
            })
            .collect();
        let mut m = Moments::new(1);
        xs.iter().for_each(|&x| m.push(&[x]));
        let m = |s| m.get(0, s);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        let min = xs.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert!((m(Statistic::Mean) - mean).abs() <= 1e-12 * mean.abs());
        assert!((m(Statistic::Std) - var.sqrt()).abs() <= 1e-12 * var.sqrt());
        assert_eq!(m(Statistic::Min), min);
        assert_eq!(m(Statistic::Max), max);
        assert_eq!(m(Statistic::Ptp), max - min);
        assert_eq!(m(Statistic::Last), xs[999]);
    }

    /// Four traces side by side, a sample a row: values of both signs up to 1e300 and a NaN
    /// in trace 1.
    const SAMPLES: [[f64; 4]; 4] = [
        [1.0, 1.0, -1.0, 1e300],
        [2.0, f64::NAN, -2.5, 3.0],
        [3.25, 3.0, -3.0, -1e300],
        [-0.5, 2.0, -2.75, 7.0],
    ];

    /// The full moments and the moments kept for `stats`, both fed `samples`.
    fn full_and_kept(stats: &[Statistic], samples: &[[f64; 4]]) -> (Moments, Moments) {
        let (mut full, mut kept) = (Moments::new(4), Moments::for_stats(4, stats));
        for x in samples {
            full.push(x);
            kept.push(x);
        }
        (full, kept)
    }

    /// `s` of every trace, bit for bit (or both NaN).
    fn assert_same_statistic(full: &Moments, kept: &Moments, s: Statistic) {
        for i in 0..4 {
            let (a, b) = (full.get(i, s), kept.get(i, s));
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "trace {i} {s:?}: {a} vs {b}"
            );
        }
    }

    /// Moments kept for the mean alone give the full moments' mean bit for bit, NaN where a
    /// sample was NaN, and NaN for what they do not keep.
    #[test]
    fn mean_only_moments_give_the_same_mean() {
        let (full, mean) = full_and_kept(&[Statistic::Mean, Statistic::DomFreq], &SAMPLES[..3]);
        assert!(mean.mean_only && !Moments::for_stats(4, &[Statistic::Mean, Statistic::Max]).mean_only);
        assert_same_statistic(&full, &mean, Statistic::Mean);
        assert!(mean.get(1, Statistic::Mean).is_nan());
        // Against the plain mean: the shifted sum rounds twice more (≤ 2 ulps).
        let plain = (-1.0 - 2.5 - 3.0) / 3.0;
        assert!((mean.get(2, Statistic::Mean) - plain).abs() <= 4.0 * f64::EPSILON * plain.abs());
        assert!(mean.get(0, Statistic::Max).is_nan());
    }

    /// Moments kept for the range give the full moments' mean, min, max and ptp bit for bit
    /// (NaN where a sample was NaN), and NaN for what they do not keep.
    #[test]
    fn range_only_moments_give_the_same_range_and_mean() {
        let stats = Statistic::expand(&[Statistic::Regime, Statistic::Mean]);
        let (full, range) = full_and_kept(&stats, &SAMPLES);
        assert!(range.range_only && !range.mean_only);
        assert!(!Moments::for_stats(4, &[Statistic::Regime, Statistic::Std]).range_only);
        for s in [Statistic::Mean, Statistic::Min, Statistic::Max, Statistic::Ptp] {
            assert_same_statistic(&full, &range, s);
        }
        // Against the plain values: min, max exact; the mean within 4 ulps (shifted sum).
        assert_eq!(
            (range.get(2, Statistic::Min), range.get(2, Statistic::Max)),
            (-3.0, -1.0)
        );
        let plain = (-1.0 - 2.5 - 3.0 - 2.75) / 4.0;
        assert!((range.get(2, Statistic::Mean) - plain).abs() <= 4.0 * f64::EPSILON * plain.abs());
        assert!(range.get(1, Statistic::Min).is_nan());
        assert!(range.get(0, Statistic::Std).is_nan() && range.get(0, Statistic::Last).is_nan());
    }

    #[test]
    fn moments_nan_sample_makes_min_max_nan() {
        // Three traces side by side: only the middle one has a NaN sample; its neighbours
        // keep their exact statistics.
        let mut m = Moments::new(3);
        for x in [[1.0, 1.0, -1.0], [2.0, f64::NAN, -2.0], [3.0, 3.0, -3.0]] {
            m.push(&x);
        }
        assert!(Statistic::ALL.iter().all(|&s| m.get(1, s).is_nan()));
        assert_eq!((m.get(0, Statistic::Min), m.get(0, Statistic::Max)), (1.0, 3.0));
        assert_eq!((m.get(2, Statistic::Mean), m.get(2, Statistic::Last)), (-2.0, -3.0));
    }

    #[test]
    fn spectrum_sine_on_bin_gives_frequency_and_half_amplitude_squared() {
        // 1000 samples at dts = 1 ms: bins are 1 Hz apart; a 12 Hz sine of amplitude 3 on an
        // offset of 5 sits exactly on bin 12, so the DFT is exact to rounding.
        let (n, dts, f, a) = (1000usize, 1e-3, 12.0, 3.0);
        let x = |i: usize| 5.0 + a * (2.0 * std::f64::consts::PI * f * i as f64 * dts).sin();
        let mut sp = Spectrum::new(Spectrum::plan(n));
        let (freq, power) = sp.dominant(x, dts);
        assert!((freq - 12.0).abs() < 1e-9, "{freq}");
        assert!((power - a * a / 2.0).abs() < 1e-9, "{power}");
    }

    #[test]
    fn spectrum_powers_sum_to_variance() {
        // Parseval: Σ_k power_k = population variance; checked by summing every bin here.
        let n = 257usize;
        let xs: Vec<f64> = (0..n).map(|i| ((i * i) % 17) as f64 + (i as f64 * 0.3).cos()).collect();
        let mut sp = Spectrum::new(Spectrum::plan(n));
        sp.dominant(|i| xs[i], 1.0);
        let total: f64 = (1..=n / 2).map(|k| 2.0 * sp.buf[k].norm_sqr() / (n * n) as f64).sum();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((total - var).abs() < 1e-10 * var, "{total} vs {var}");
    }

    #[test]
    fn spectrum_off_bin_sine_within_one_bin() {
        let (n, dts, f) = (500usize, 2e-3, 7.3);
        let mut sp = Spectrum::new(Spectrum::plan(n));
        let (freq, _) = sp.dominant(|i| (2.0 * std::f64::consts::PI * f * i as f64 * dts).sin(), dts);
        let bin = 1.0 / (n as f64 * dts);
        assert!((freq - f).abs() <= bin, "{freq} vs {f} (bin {bin})");
    }

    #[test]
    fn spectrum_half_length_trick_equals_naive_dft() {
        // Even n goes through the packed half-length transform; a naive O(n²) DFT is the
        // second method. Odd n (full transform) is checked the same way.
        for n in [300usize, 301] {
            let x = |i: usize| (i as f64 * 0.37).sin() + 0.1 * ((i * 7) % 5) as f64 + 0.3 * (i as f64 * 1.9).cos();
            let mut sp = Spectrum::new(Spectrum::plan(n));
            sp.transform(x);
            let mean = (0..n).map(x).sum::<f64>() / n as f64;
            for k in 1..=n / 2 {
                let (mut re, mut im) = (0.0, 0.0);
                for i in 0..n {
                    let w = -2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                    re += (x(i) - mean) * w.cos();
                    im += (x(i) - mean) * w.sin();
                }
                let naive = re * re + im * im;
                assert!(
                    (sp.mag2[k - 1] - naive).abs() < 1e-9 * naive.max(1.0),
                    "n {n} k {k}: {} vs {naive}",
                    sp.mag2[k - 1]
                );
            }
        }
    }

    #[test]
    fn moments_large_offset_small_spread_keeps_std() {
        // 1e6 + 1e-3·sin: naive Σx² − (Σx)²/n would lose every digit of the variance.
        let xs: Vec<f64> = (0..1000).map(|i| 1e6 + 1e-3 * (i as f64 * 0.1).sin()).collect();
        let mut m = Moments::new(1);
        xs.iter().for_each(|&x| m.push(&[x]));
        let mean = xs.iter().sum::<f64>() / 1000.0;
        let std = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 1000.0).sqrt();
        assert!(
            (m.get(0, Statistic::Std) - std).abs() < 1e-6 * std,
            "{} vs {std}",
            m.get(0, Statistic::Std)
        );
    }
}
