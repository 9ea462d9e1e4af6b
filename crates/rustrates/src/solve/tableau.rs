//! Explicit Runge–Kutta methods as data (Butcher tableaux). A new method is a new table;
//! neither the stepper nor the kernels change.

/// An explicit Runge–Kutta method: stage `s` evaluates `f(t + c[s]·dt, y + dt·Σ_{j<s} a[s][j]·k_j)`
/// and the step is `y + dt·Σ_s b[s]·k_s`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tableau {
    pub name: &'static str,
    /// Strictly lower triangular, `a[s]` has `s` entries.
    pub a: Vec<Vec<f64>>,
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

    pub fn euler() -> Tableau {
        Tableau {
            name: "euler",
            a: vec![vec![]],
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
            a: vec![vec![], vec![1.0]],
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
            a: vec![vec![], vec![0.5], vec![0.0, 0.5], vec![0.0, 0.0, 1.0]],
            b: vec![1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
            c: vec![0.0, 0.5, 0.5, 1.0],
            order: 4,
            b_err: None,
        }
    }

    /// Dormand–Prince 5(4) (Dormand & Prince 1980): fifth-order `b` (FSAL: the last stage is
    /// the first of the next step), fourth-order embedded `b_err`.
    pub fn dopri5() -> Tableau {
        Tableau {
            name: "rk45",
            a: vec![
                vec![],
                vec![1.0 / 5.0],
                vec![3.0 / 40.0, 9.0 / 40.0],
                vec![44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
                vec![19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
                vec![
                    9017.0 / 3168.0,
                    -355.0 / 33.0,
                    46732.0 / 5247.0,
                    49.0 / 176.0,
                    -5103.0 / 18656.0,
                ],
                vec![
                    35.0 / 384.0,
                    0.0,
                    500.0 / 1113.0,
                    125.0 / 192.0,
                    -2187.0 / 6784.0,
                    11.0 / 84.0,
                ],
            ],
            b: vec![
                35.0 / 384.0,
                0.0,
                500.0 / 1113.0,
                125.0 / 192.0,
                -2187.0 / 6784.0,
                11.0 / 84.0,
                0.0,
            ],
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
            for (s, row) in t.a.iter().enumerate() {
                assert_eq!(row.len(), s, "{}", t.name);
                let sum: f64 = row.iter().sum();
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
