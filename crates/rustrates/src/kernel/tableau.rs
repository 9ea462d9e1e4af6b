//! Explicit Runge–Kutta methods as data (Butcher tableaux). A new method is a new table;
//! neither the stepper nor the kernels change.

/// An explicit Runge–Kutta method: stage `s` evaluates `f(t + c[s]·dt, y + dt·Σ_{j<s} a[s][j]·k_j)`
/// and the step is `y + dt·Σ_s b[s]·k_s`. The one tableau type of the solvers and the
/// kernels' fused steppers (which read `a` as it is laid out here).
#[derive(Clone, Debug, PartialEq)]
pub struct Tableau {
    pub name: &'static str,
    /// `stages × stages`, row-major: `a[s · stages + j]`, strictly lower triangular.
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub c: Vec<f64>,
    /// Order of the `b` solution.
    pub order: u32,
    /// Weights of the embedded lower-order solution, for error control.
    pub b_err: Option<Vec<f64>>,
}

impl Tableau {
    pub fn stages(&self) -> usize {
        self.b.len()
    }

    /// Row `s` of `a` below the diagonal: the coefficients of `k_0 … k_{s−1}`.
    pub fn row(&self, s: usize) -> &[f64] {
        let n = self.stages();
        &self.a[s * n..s * n + s]
    }

    /// The nonzero `(j, a[s][j])` of row `s`, in column order.
    pub fn nonzero_row(&self, s: usize) -> Vec<(usize, f64)> {
        self.row(s)
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, c)| c != 0.0)
            .collect()
    }

    /// The nonzero `(s, b[s])`, in stage order.
    pub fn nonzero_weights(&self) -> Vec<(usize, f64)> {
        self.b.iter().copied().enumerate().filter(|&(_, c)| c != 0.0).collect()
    }

    /// Whether this is a well-formed explicit method: at least one stage, `a` square and
    /// strictly lower triangular, `c` one entry per stage. The fused steppers take nothing else.
    pub fn is_explicit(&self) -> bool {
        let n = self.stages();
        n > 0 && self.c.len() == n && self.a.len() == n * n && (0..n).all(|s| (s..n).all(|j| self.a[s * n + j] == 0.0))
    }

    /// `a` from its rows below the diagonal (`rows[s]` has `s` entries).
    fn dense(rows: &[&[f64]]) -> Vec<f64> {
        let n = rows.len();
        let mut a = vec![0.0; n * n];
        for (s, row) in rows.iter().enumerate() {
            a[s * n..s * n + row.len()].copy_from_slice(row);
        }
        a
    }

    pub fn euler() -> Tableau {
        Tableau {
            name: "euler",
            a: Self::dense(&[&[]]),
            b: vec![1.0],
            c: vec![0.0],
            order: 1,
            b_err: None,
        }
    }

    /// Heun's method (explicit trapezoid), second order.
    pub fn heun() -> Tableau {
        Tableau {
            name: "heun",
            a: Self::dense(&[&[], &[1.0]]),
            b: vec![0.5, 0.5],
            c: vec![0.0, 1.0],
            order: 2,
            b_err: None,
        }
    }

    /// The classical fourth-order Runge–Kutta method.
    pub fn rk4() -> Tableau {
        Tableau {
            name: "rk4",
            a: Self::dense(&[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]]),
            b: vec![1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
            c: vec![0.0, 0.5, 0.5, 1.0],
            order: 4,
            b_err: None,
        }
    }

    /// Dormand–Prince 5(4) (Dormand & Prince 1980): fifth-order `b` (FSAL: the last stage is
    /// the first of the next step), fourth-order embedded `b_err`.
    pub fn dopri5() -> Tableau {
        // The fifth-order weights are also the last stage's row (FSAL).
        const B5: [f64; 6] = [
            35.0 / 384.0,
            0.0,
            500.0 / 1113.0,
            125.0 / 192.0,
            -2187.0 / 6784.0,
            11.0 / 84.0,
        ];
        Tableau {
            name: "rk45",
            a: Self::dense(&[
                &[],
                &[1.0 / 5.0],
                &[3.0 / 40.0, 9.0 / 40.0],
                &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
                &[19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
                &[
                    9017.0 / 3168.0,
                    -355.0 / 33.0,
                    46732.0 / 5247.0,
                    49.0 / 176.0,
                    -5103.0 / 18656.0,
                ],
                &B5,
            ]),
            b: B5.iter().copied().chain([0.0]).collect(),
            c: vec![0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0],
            order: 5,
            b_err: Some(vec![
                5179.0 / 57600.0,
                0.0,
                7571.0 / 16695.0,
                393.0 / 640.0,
                -92097.0 / 339200.0,
                187.0 / 2100.0,
                1.0 / 40.0,
            ]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Order conditions up to the method's order (the "row sum" and quadrature conditions
    /// Σb = 1, Σb·c = 1/2, Σb·c² = 1/3, Σb·c³ = 1/4), and c_s = Σ_j a[s][j].
    #[test]
    fn tableaux_satisfy_order_conditions() {
        for t in [Tableau::euler(), Tableau::heun(), Tableau::rk4(), Tableau::dopri5()] {
            assert!(t.is_explicit(), "{}", t.name);
            for s in 0..t.stages() {
                let sum: f64 = t.row(s).iter().sum();
                assert!((sum - t.c[s]).abs() < 1e-14, "{} row {s}", t.name);
            }
            for q in 0..t.order.min(4) {
                let lhs: f64 = t.b.iter().zip(&t.c).map(|(b, c)| b * c.powi(q as i32)).sum();
                assert!((lhs - 1.0 / f64::from(q + 1)).abs() < 1e-14, "{} q={q}", t.name);
            }
            if let Some(be) = &t.b_err {
                let sum: f64 = be.iter().sum();
                assert!((sum - 1.0).abs() < 1e-14);
            }
        }
    }
}
