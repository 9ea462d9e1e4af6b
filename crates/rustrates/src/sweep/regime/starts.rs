//! Several starts per point: random initial states, and whether the starts ended in
//! different attractors.

use super::{Regime, RegimeSettings};

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
