//! Reference models built by hand in IR, shared by the tests and benches of every back end
//! and solver. Each returns `(Circuit, Reference)`: the circuit (already lowered: no edges)
//! and what is known about its solution.

use super::{Assign, BinOp, Circuit, Expr, ExprId, Func, Ode, Var, VarId, VarKind};

/// What is known about a reference model's solution.
#[derive(Clone, Debug)]
pub struct Reference {
    pub description: &'static str,
    /// Exact state (in `Circuit::layout` state order) at time `t`, for the circuit's default
    /// parameters and initial values, when known in closed form.
    pub exact: Option<fn(f64) -> Vec<f64>>,
    /// Agreement expected between back ends on this model (relative; absolute for values
    /// near zero).
    pub rtol: f64,
    pub atol: f64,
}

/// A small builder for hand-written expressions.
pub struct Builder {
    pub c: Circuit,
}

impl Builder {
    pub fn new(name: &str) -> Builder {
        Builder {
            c: Circuit {
                name: name.into(),
                ..Circuit::default()
            },
        }
    }
    pub fn var(&mut self, name: &str, kind: VarKind, value: f64) -> VarId {
        let node = name.split('/').next().filter(|_| name.contains('/')).map(str::to_owned);
        if let Some(n) = &node {
            if !self.c.nodes.contains(n) {
                self.c.nodes.push(n.clone());
            }
        }
        self.c.add_var(Var {
            name: name.into(),
            kind,
            value,
            node,
            external_input: None,
            span: None,
        })
    }
    pub fn k(&mut self, v: f64) -> ExprId {
        self.c.add_expr(Expr::Const(v))
    }
    pub fn v(&mut self, v: VarId) -> ExprId {
        self.c.add_expr(Expr::Var(v))
    }
    pub fn bin(&mut self, op: BinOp, a: ExprId, b: ExprId) -> ExprId {
        self.c.add_expr(Expr::Binary(op, a, b))
    }
    pub fn add(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.bin(BinOp::Add, a, b)
    }
    pub fn sub(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.bin(BinOp::Sub, a, b)
    }
    pub fn mul(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.bin(BinOp::Mul, a, b)
    }
    pub fn div(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.bin(BinOp::Div, a, b)
    }
    pub fn neg(&mut self, a: ExprId) -> ExprId {
        self.c.add_expr(Expr::Neg(a))
    }
    /// `x(t − delay)`.
    pub fn past(&mut self, x: VarId, delay: ExprId) -> ExprId {
        self.c.add_expr(Expr::Past(x, delay))
    }
    /// `x' = c·x²`: from x(0) = 1 it blows up at t = 1/c (x = 1/(1 − c t)).
    pub fn blow_up(&mut self, x: VarId, c: VarId) {
        let (xe, ce) = (self.v(x), self.v(c));
        let x2 = self.mul(xe, xe);
        let rhs = self.mul(ce, x2);
        self.ode(x, rhs);
    }
    /// State `n/op/x` (x(0) = 1) and `−x(t − d)` with the delay `d` the parameter `n/op/d`
    /// (default `delay`), so that lanes can sweep it; the caller attaches or extends the
    /// right-hand side.
    pub fn parameter_delayed_decay(&mut self, delay: f64) -> (VarId, ExprId) {
        let x = self.var("n/op/x", VarKind::State, 1.0);
        let d = self.var("n/op/d", VarKind::Param, delay);
        let de = self.v(d);
        let past = self.past(x, de);
        (x, self.neg(past))
    }
    /// `x' = −x(t − delay)`: the delay equation with a closed form by the method of steps.
    pub fn delayed_decay(&mut self, x: VarId, delay: ExprId) {
        let past = self.past(x, delay);
        let rhs = self.neg(past);
        self.ode(x, rhs);
    }
    pub fn call(&mut self, f: Func, args: Vec<ExprId>) -> ExprId {
        self.c.add_expr(Expr::Call(f, args))
    }
    pub fn ode(&mut self, var: VarId, rhs: ExprId) {
        self.c.odes.push(Ode { var, rhs, span: None });
    }
    pub fn assign(&mut self, var: VarId, rhs: ExprId) {
        self.c.assigns.push(Assign { var, rhs, span: None });
    }
}

/// `x' = −k·x`, x(0) = 1, k = 1 (param `decay/op/k`): x(t) = e^(−t).
pub fn exponential_decay() -> (Circuit, Reference) {
    let mut b = Builder::new("decay");
    let x = b.var("decay/op/x", VarKind::State, 1.0);
    let k = b.var("decay/op/k", VarKind::Param, 1.0);
    let (ke, xe) = (b.v(k), b.v(x));
    let prod = b.mul(ke, xe);
    let rhs = b.neg(prod);
    b.ode(x, rhs);
    let reference = Reference {
        description: "x' = -k x, x(0) = 1, k = 1; x(t) = exp(-t)",
        exact: Some(|t| vec![(-t).exp()]),
        rtol: 1e-12,
        atol: 1e-14,
    };
    (b.c, reference)
}

/// `x' = v, v' = −ω²·x`, x(0) = 1, v(0) = 0, ω = 2π (one cycle per unit time):
/// x = cos ωt, v = −ω sin ωt; the energy ½v² + ½ω²x² is conserved.
pub fn harmonic_oscillator() -> (Circuit, Reference) {
    let mut b = Builder::new("oscillator");
    let x = b.var("osc/op/x", VarKind::State, 1.0);
    let v = b.var("osc/op/v", VarKind::State, 0.0);
    let w = b.var("osc/op/omega", VarKind::Param, std::f64::consts::TAU);
    let ve = b.v(v);
    b.ode(x, ve);
    let (we, xe) = (b.v(w), b.v(x));
    let w2 = b.mul(we, we);
    let f = b.mul(w2, xe);
    let rhs = b.neg(f);
    b.ode(v, rhs);
    let reference = Reference {
        description: "x' = v, v' = -(2 pi)^2 x; x = cos(2 pi t), v = -2 pi sin(2 pi t)",
        exact: Some(|t| {
            let w = std::f64::consts::TAU;
            vec![(w * t).cos(), -w * (w * t).sin()]
        }),
        rtol: 1e-12,
        atol: 1e-12,
    };
    (b.c, reference)
}

/// The variables of one Montbrió–Pazó–Roxin population built by [`mpr_population`].
#[derive(Clone, Copy, Debug)]
pub struct MprVars {
    pub r: VarId,
    pub v: VarId,
    pub eta: VarId,
    pub j: VarId,
    pub delta: VarId,
    pub tau: VarId,
    /// External input `I` (default 0).
    pub input: VarId,
}

/// One MPR population at node `node` (1.x `qif_op` form, τ in the denominators):
/// `r' = (Δ/(πτ) + 2 r v)/τ`, `v' = (v² + η + I + J τ r − (π τ r)²)/τ`, plus `extra` (an
/// expression added to `J τ r`, e.g. `τ·r_in` from other populations) when given.
pub fn mpr_population(b: &mut Builder, node: &str, eta: f64, j: f64, r0: f64, v0: f64) -> MprVars {
    let r = b.var(&format!("{node}/qif_op/r"), VarKind::State, r0);
    let v = b.var(&format!("{node}/qif_op/v"), VarKind::State, v0);
    let eta = b.var(&format!("{node}/qif_op/eta"), VarKind::Param, eta);
    let j = b.var(&format!("{node}/qif_op/J"), VarKind::Param, j);
    let delta = b.var(&format!("{node}/qif_op/Delta"), VarKind::Param, 1.0);
    let tau = b.var(&format!("{node}/qif_op/tau"), VarKind::Param, 1.0);
    let input = b.var(&format!("{node}/qif_op/I_ext"), VarKind::Input, 0.0);
    MprVars {
        r,
        v,
        eta,
        j,
        delta,
        tau,
        input,
    }
}

/// The two ODEs of an MPR population; `r_in` (if any) is the synaptic input rate, entering
/// as `τ·r_in` like `J·τ·r`.
pub fn mpr_odes(b: &mut Builder, m: MprVars, r_in: Option<ExprId>) {
    let (r, v, eta, j, delta, tau, inp) = (
        b.v(m.r),
        b.v(m.v),
        b.v(m.eta),
        b.v(m.j),
        b.v(m.delta),
        b.v(m.tau),
        b.v(m.input),
    );
    let pi = b.k(std::f64::consts::PI);
    // r' = (Δ/(πτ) + 2 r v)/τ
    let pitau = b.mul(pi, tau);
    let a1 = b.div(delta, pitau);
    let two = b.k(2.0);
    let rv = b.mul(r, v);
    let a2 = b.mul(two, rv);
    let num = b.add(a1, a2);
    let dr = b.div(num, tau);
    b.ode(m.r, dr);
    // v' = (v² + η + I + τ (J r + r_in) − (π τ r)²)/τ
    let v2 = b.mul(v, v);
    let s1 = b.add(v2, eta);
    let s2 = b.add(s1, inp);
    let jr = b.mul(j, r);
    let syn = match r_in {
        Some(e) => b.add(jr, e),
        None => jr,
    };
    let tsyn = b.mul(tau, syn);
    let s3 = b.add(s2, tsyn);
    let ptr = b.mul(pitau, r);
    let ptr2 = b.mul(ptr, ptr);
    let s4 = b.sub(s3, ptr2);
    let dv = b.div(s4, tau);
    b.ode(m.v, dv);
}

/// One MPR population, J = 15, Δ = 1, τ = 1, η = −5 (param `p/qif_op/eta`), no input,
/// r(0) = 0.01, v(0) = −2. Fixed points: [`mpr_fixed_points`].
pub fn mpr_single() -> (Circuit, Reference) {
    let mut b = Builder::new("mpr");
    let m = mpr_population(&mut b, "p", -5.0, 15.0, 0.01, -2.0);
    mpr_odes(&mut b, m, None);
    let reference = Reference {
        description: "one MPR population (J 15, Delta 1, tau 1, eta -5); fixed points solve \
                      pi^2 r^4 - J r^3 - (eta + I) r^2 - Delta^2/(4 pi^2) = 0",
        exact: None,
        rtol: 1e-10,
        atol: 1e-12,
    };
    (b.c, reference)
}

/// Positive roots of π²r⁴ − J r³ − (η+I) r² − Δ²/(4π²) = 0 (the MPR fixed points with τ = 1),
/// ascending, by bisection on a fine grid of sign changes: independent of any simulation.
pub fn mpr_fixed_points(eta: f64, input: f64, j: f64, delta: f64) -> Vec<f64> {
    let pi2 = std::f64::consts::PI.powi(2);
    let f = |r: f64| pi2 * r.powi(4) - j * r.powi(3) - (eta + input) * r * r - delta * delta / (4.0 * pi2);
    let mut roots = Vec::new();
    let n = 200_000;
    let r_max = 10.0;
    let mut prev = (1e-9, f(1e-9));
    for i in 1..=n {
        let r = r_max * f64::from(i) / f64::from(n);
        let fr = f(r);
        if prev.1.signum() != fr.signum() {
            let (mut lo, mut hi) = (prev.0, r);
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if f(mid).signum() == f(lo).signum() {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            roots.push(0.5 * (lo + hi));
        }
        prev = (r, fr);
    }
    roots
}

/// Three starts of the Montbrió population `p/qif_op` (J = 15) over its bistable range, as
/// `initial_conditions`: near the low state, and near the high state at either end of the
/// range (it moves from r ≈ 0.82 at the lower fold to 1.27 at the upper one).
pub fn mpr_bistable_starts() -> Vec<Vec<(String, f64)>> {
    [(0.01, -2.0), (0.9, -0.19), (1.25, -0.13)]
        .into_iter()
        .map(|(r, v)| vec![("p/qif_op/r".to_string(), r), ("p/qif_op/v".to_string(), v)])
        .collect()
}

/// The reference circuit of `shared/bench/README.md`: two 1.x `qif_pop` nodes PC and IIN,
/// edges PC→PC 15, PC→IIN 10, IIN→PC −10 (lowered: algebraic `r_in` per node, weights as
/// edge params), `I_ext` of PC = 1 as its default (drive it with a constant input 1 to
/// match the benchmark), η = −5 for both, r(0) = 0.01, v(0) = −2.
pub fn reference_circuit() -> (Circuit, Reference) {
    let mut b = Builder::new("qif_2pop");
    let pc = mpr_population(&mut b, "PC", -5.0, 0.0, 0.01, -2.0);
    let iin = mpr_population(&mut b, "IIN", -5.0, 0.0, 0.01, -2.0);
    b.c.vars[pc.input.0 as usize].value = 1.0;
    let w_pp = b.var("edge:PC->PC:0/weight", VarKind::Param, 15.0);
    let w_pi = b.var("edge:PC->IIN:0/weight", VarKind::Param, 10.0);
    let w_ip = b.var("edge:IIN->PC:0/weight", VarKind::Param, -10.0);
    for i in [w_pp, w_pi, w_ip] {
        b.c.vars[i.0 as usize].node = None;
    }
    let rin_pc = b.var("PC/qif_op/r_in", VarKind::Algebraic, 0.0);
    let rin_iin = b.var("IIN/qif_op/r_in", VarKind::Algebraic, 0.0);
    let (wpp, rpc, wip, riin) = (b.v(w_pp), b.v(pc.r), b.v(w_ip), b.v(iin.r));
    let t1 = b.mul(wpp, rpc);
    let t2 = b.mul(wip, riin);
    let s = b.add(t1, t2);
    b.assign(rin_pc, s);
    let (wpi, rpc2) = (b.v(w_pi), b.v(pc.r));
    let t3 = b.mul(wpi, rpc2);
    b.assign(rin_iin, t3);
    let e_pc = b.v(rin_pc);
    mpr_odes(&mut b, pc, Some(e_pc));
    let e_iin = b.v(rin_iin);
    mpr_odes(&mut b, iin, Some(e_iin));
    b.c.node_operators = vec![
        ("PC".into(), vec!["qif_op".into()]),
        ("IIN".into(), vec!["qif_op".into()]),
    ];
    let reference = Reference {
        description: "two qif_pop nodes (PC, IIN), weights 15/10/-10, I_ext(PC) = 1: the C \
                      reference montbrio_grid.c",
        exact: None,
        rtol: 1e-10,
        atol: 1e-12,
    };
    (b.c, reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpr_fixed_points_match_spec_values() {
        // SPEC §9: r* = 0.081134, 0.472980, 1.030597 for J 15, Δ 1, η −5 (6 digits given).
        let r = mpr_fixed_points(-5.0, 0.0, 15.0, 1.0);
        assert_eq!(r.len(), 3, "{r:?}");
        for (got, want) in r.iter().zip([0.081134, 0.472980, 1.030597]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn test_models_are_well_formed() {
        for (c, _) in [
            exponential_decay(),
            harmonic_oscillator(),
            mpr_single(),
            reference_circuit(),
        ] {
            let l = c.layout();
            assert_eq!(l.states.len(), c.odes.len());
            assert!(l.slot.iter().all(|s| *s != u32::MAX), "{}", c.name);
        }
    }
}

/// Circuit `name` of the YAML `text`, written to a file of its own and loaded by its path
/// (not lowered); a load error panics with the loader's message.
#[cfg(test)]
pub fn from_yaml(text: &str, name: &str) -> Circuit {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("model.yaml");
    std::fs::write(&file, text).expect("write yaml");
    crate::model::load_circuit(
        &format!("{}/{name}", file.display()),
        &crate::template::LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{name} loads: {e}"))
    .circuit
}

/// A `.npy` file of a `rows × cols` float64 matrix as numpy 1.x/2.x's `np.save` writes it
/// (format 1.0, header padded so the data starts at a multiple of 64): `values` in C order,
/// or in Fortran order (column by column) with `fortran`. For the tests and benches that
/// hand the template loader matrices as files.
pub fn npy_bytes(rows: usize, cols: usize, values: &[f64], fortran: bool) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_file_bytes("'<f8'", &[rows, cols], fortran, &data)
}

/// A `.npy` file (format 1.0) as `np.save` writes it: the magic, the header dict with
/// `descr` as written (`'<f8'`, `'>i4'`, `'|u1'`, …) padded to a multiple of 64 bytes, then
/// `data` as given (already in the file's order and byte order).
pub fn npy_file_bytes(descr: &str, shape: &[usize], fortran: bool, data: &[u8]) -> Vec<u8> {
    let shape = match shape {
        [n] => format!("({n},)"),
        dims => format!("({})", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!(
        "{{'descr': {descr}, 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let mut header = dict.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header);
    out.extend_from_slice(data);
    out
}

/// The variables of `c` whose names `keep` accepts, in id order (the parameters a sweep
/// leaves per lane, the outputs of every node, ...).
pub fn var_ids_named(c: &Circuit, keep: impl Fn(&str) -> bool) -> Vec<VarId> {
    (0..c.vars.len() as u32)
        .map(VarId)
        .filter(|v| keep(&c.var(*v).name))
        .collect()
}

/// An `n` × `n` matrix as YAML inline rows (`[[m00, m01], [m10, m11]]`), each value
/// written so that it reads back to the same `f64`.
pub fn yaml_matrix(n: usize, f: impl Fn(usize, usize) -> f64) -> String {
    yaml_rect(n, n, f)
}

/// A `rows` × `cols` matrix as YAML inline rows, as [`yaml_matrix`] writes a square one.
pub fn yaml_rect(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f64) -> String {
    let rows: Vec<String> = (0..rows)
        .map(|i| {
            let r: Vec<String> = (0..cols).map(|j| format!("{:?}", f(i, j))).collect();
            format!("[{}]", r.join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// `../shared/bench/network_grid.c`'s network — N QIF nodes, `W` and `D` given by a formula
/// any tool can rebuild — for the tests and benches that compare with that program.
pub mod network_grid {
    /// `network_grid.c`'s weights: `W[i][j]` (from `j` to `i`).
    pub fn weight(n: usize, i: usize, j: usize) -> f64 {
        0.5 * (1.0 + (7.0 * i as f64 + 13.0 * j as f64).sin()) * 15.0 / n as f64
    }

    /// `network_grid.c`'s delays in whole steps: `round(D[i][j] / dt)`.
    pub fn delay_steps(dmax: f64, dt: f64, i: usize, j: usize) -> usize {
        (dmax * 0.5 * (1.0 + (3.0 * i as f64 + 5.0 * j as f64).cos()) / dt).round() as usize
    }

    /// `network_grid.c`'s Euler loop, transcribed: r of every node after every step,
    /// `[step][node]` (step 0 the initial state), for one point (G, eta). With `dmax > 0` the
    /// edges have the delays of [`delay_steps`] (before t = 0 the history is the initial
    /// value); `drive(i, k)` is added to node `i`'s `v'` at step `k` (the C program has none).
    // Indices as in the C program: i the target, j the source, s the step.
    #[allow(clippy::needless_range_loop)]
    pub fn transcription(
        n: usize,
        (g, eta): (f64, f64),
        (steps, dt): (usize, f64),
        dmax: f64,
        drive: impl Fn(usize, usize) -> f64,
    ) -> Vec<Vec<f64>> {
        let pi = std::f64::consts::PI;
        let mut r = vec![0.01; n];
        let mut v = vec![-2.0; n];
        let mut hist: Vec<Vec<f64>> = vec![r.clone()];
        for s in 0..steps {
            let mut rin = vec![0.0; n];
            for (i, x) in rin.iter_mut().enumerate() {
                let mut acc = 0.0;
                for j in 0..n {
                    let d = if dmax > 0.0 { delay_steps(dmax, dt, i, j) } else { 0 };
                    let past = s.checked_sub(d).map_or(0.01, |k| hist[k][j]);
                    acc += weight(n, i, j) * past;
                }
                *x = g * acc;
            }
            for i in 0..n {
                let (a, b) = (r[i], v[i]);
                r[i] = a + dt * (1.0 / pi + 2.0 * a * b);
                v[i] = b + dt * (b * b + eta + rin[i] + drive(i, s) - (pi * a) * (pi * a));
            }
            hist.push(r.clone());
        }
        hist
    }

    /// The operator of `network_grid.c`: `r' = 1/π + 2rv`, `v' = v² + η + G·r_in − (πr)²`.
    pub const OPERATOR: &str = r#"
qif_net_op:
  base: OperatorTemplate
  equations:
    - "r' = 1/pi + 2.0*r*v"
    - "v' = v^2 + eta + G*r_in - (pi*r)^2"
  variables:
    r: output(0.01)
    v: variable(-2.0)
    eta: -5.0
    G: 1.0
    r_in: input(0.0)
qif_net_pop: {base: NodeTemplate, operators: [qif_net_op]}
"#;

    /// `n` nodes `n0 … n{n-1}`, every pair connected (`W`; with `dmax > 0` a delay of
    /// whole steps of `dt`), edges into each target in source order; `extra` edges appended.
    pub fn yaml(n: usize, dmax: f64, dt: f64, edges: impl Fn(usize, usize) -> bool) -> String {
        let mut s = String::from(OPERATOR);
        s.push_str("Net:\n  base: CircuitTemplate\n  nodes:\n");
        for i in 0..n {
            s.push_str(&format!("    n{i}: qif_net_pop\n"));
        }
        s.push_str("  edges:\n");
        for i in 0..n {
            for j in 0..n {
                if !edges(i, j) {
                    continue;
                }
                let w = weight(n, i, j);
                let delay = if dmax > 0.0 {
                    format!(", delay: {:e}", delay_steps(dmax, dt, i, j) as f64 * dt)
                } else {
                    String::new()
                };
                s.push_str(&format!(
                    "    - [n{j}/qif_net_op/r, n{i}/qif_net_op/r_in, null, {{weight: {w:e}{delay}}}]\n"
                ));
            }
        }
        s
    }
}

/// How long a time-boxed fuzz run lasts: `FUZZ_SECONDS` (one variable for every fuzz run),
/// else `default`.
pub fn fuzz_seconds(default: u64) -> u64 {
    std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Random edits of a text for the fuzz runs of templates and spec files: deterministic per
/// seed (xorshift64), every edit at a character boundary.
pub struct TextMutator(u64);

impl TextMutator {
    pub fn new(seed: u64) -> TextMutator {
        TextMutator(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// One of `items`, at random.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }

    /// 1 to 6 edits: insert a character of `alphabet`, delete up to 8 bytes, copy a slice of
    /// up to 40 bytes elsewhere (moves keys and indentation around), or insert a token.
    pub fn mutate(&mut self, text: &mut String, alphabet: &[char], tokens: &[&str]) {
        let boundary_at_or_before = |text: &str, mut i: usize| {
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let boundary_at_or_after = |text: &str, mut i: usize| {
            while !text.is_char_boundary(i) {
                i += 1;
            }
            i
        };
        for _ in 0..1 + self.next_u64() % 6 {
            let p = boundary_at_or_before(text, (self.next_u64() % (text.len() as u64 + 1)) as usize);
            match self.next_u64() % 4 {
                0 => text.insert(p, *self.pick(alphabet)),
                1 => {
                    let e = boundary_at_or_after(text, (p + 1 + (self.next_u64() % 8) as usize).min(text.len()));
                    text.replace_range(p..e, "");
                }
                2 => {
                    let a = boundary_at_or_before(text, (self.next_u64() % (text.len() as u64 + 1)) as usize);
                    let b = boundary_at_or_after(text, (a + (self.next_u64() % 40) as usize).min(text.len()));
                    let piece = text[a..b].to_string();
                    text.insert_str(p, &piece);
                }
                _ => {
                    let token = *self.pick::<&str>(tokens);
                    text.insert_str(p, token);
                }
            }
        }
    }
}
