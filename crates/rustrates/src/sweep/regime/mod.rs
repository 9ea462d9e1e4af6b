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

mod scan;
mod starts;
#[cfg(test)]
mod sweep_tests;
#[cfg(test)]
mod tests;

pub use scan::{amplitude_in_range, level_samples, periodicity, CrossingScans};
pub use starts::{multistable, Attractor, RandomStarts};

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
