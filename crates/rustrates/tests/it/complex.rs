//! Complex-valued variables (issue 18, item 4): lowered to real pairs in the IR, so every back
//! end runs them; checked against closed-form solutions on each back end, and the uses that
//! are not supported must be positioned errors naming the operation.

use rustrates::kernel::Backend;
use rustrates::model::{self, Circuit};
use rustrates::solve::Method;
use rustrates::sweep::{ParamMap, SweepResult};

use crate::support::{
    assert_load_error, assert_op_error_on_line_5, assert_runs_agree, column, load_text, sweep_spec, try_run,
};

/// Stuart–Landau normal form dz/dt = (iω + μ − |z|²) z, written with an imaginary literal and
/// a complex constant, plus algebraic outputs using every complex operation.
const STUART_LANDAU: &str = r#"
sl_op:
  base: OperatorTemplate
  equations:
    - "d/dt * z = (1.0j*omega + mu - abs(z)**2) * z"
    - "amp = abs(z)"
    - "phase = angle(z)"
    - "phasor = exp(i*angle(z))"
    - "root = z**0.5"
    - "inverse = 1/conj(z)"
    - "cube = (z/amp)^3"
    - "rebuilt = complex(real(z), imag(z)) - 2*z + z*1"
    - "sq = sqrt(z(t))"
    - "lg = log(z)"
    - "sn = sin(z)"
    - "cs = cos(z)"
  variables:
    z: output(0.1+0.0j)
    amp: variable(0.0)
    phase: variable(0.0)
    phasor: variable(complex)
    root: variable(complex)
    inverse: variable(complex)
    cube: variable(complex)
    rebuilt: variable(complex)
    sq: variable(complex)
    lg: variable(complex)
    sn: variable(complex)
    cs: variable(complex)
    i: 0.0+1.0j
    omega: 1.0
    mu: 1.0
sl_pop:
  base: NodeTemplate
  operators: [sl_op]
sl:
  base: CircuitTemplate
  nodes: {p: sl_pop}
"#;

const OMEGA: f64 = 1.0;
const R0: f64 = 0.1;

/// RK4 with `dt` for 10 time units, sampled every 0.01, one point per μ.
fn run(c: &Circuit, backend: Backend, mus: &[f64], outputs: &[(&str, &str)], dt: f64) -> SweepResult {
    let map = ParamMap::new().nodes("mu", &["sl_op/mu"], &["p"]);
    crate::support::run(
        &sweep_spec(
            &[("mu", mus.to_vec())],
            map,
            Method::Rk4,
            (10.0, dt, 0.01),
            outputs,
            backend,
        ),
        c,
    )
}

/// |z(t)| = √(μ / (1 + (μ/r0² − 1) e^{−2μt})), arg z(t) = ωt: the closed form of the
/// Stuart–Landau equation from z(0) = r0 (amplitude → √μ, period 2π/ω).
fn exact(mu: f64, t: f64) -> (f64, f64) {
    let r = (mu / (1.0 + (mu / (R0 * R0) - 1.0) * (-2.0 * mu * t).exp())).sqrt();
    (r, OMEGA * t)
}

#[test]
fn stuart_landau_matches_its_closed_form_on_every_back_end() {
    let c = load_text(STUART_LANDAU, "sl").expect("loads");
    let outputs = [
        ("z", "p/sl_op/z"),
        ("amp", "p/sl_op/amp"),
        ("phase", "p/sl_op/phase"),
        ("phasor", "p/sl_op/phasor"),
        ("root", "p/sl_op/root"),
        ("inverse", "p/sl_op/inverse"),
        ("cube", "p/sl_op/cube"),
        ("rebuilt", "p/sl_op/rebuilt"),
        ("sq", "p/sl_op/sq"),
        ("lg", "p/sl_op/lg"),
        ("sn", "p/sl_op/sn"),
        ("cs", "p/sl_op/cs"),
    ];
    let mus = [1.0, 0.25];
    // RK4's global error with dt = 1e-3 over 10 time units is O(dt⁴) ≈ 1e-12 times the
    // derivatives' size (all O(1) here): 1e-9 leaves three orders of margin, and any wrong
    // sign or dropped term in the lowering (e.g. conj without the minus) is O(0.1).
    const TOL: f64 = 1e-9;
    let wrap = |a: f64| (a + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI) - std::f64::consts::PI;
    let mut results = Vec::new();
    for backend in [Backend::Reference, Backend::Jit, Backend::C] {
        let res = run(&c, backend, &mus, &outputs, 1e-3);
        let keys: Vec<&str> = res.columns.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "z.real",
                "z.imag",
                "amp",
                "phase",
                "phasor.real",
                "phasor.imag",
                "root.real",
                "root.imag",
                "inverse.real",
                "inverse.imag",
                "cube.real",
                "cube.imag",
                "rebuilt.real",
                "rebuilt.imag",
                "sq.real",
                "sq.imag",
                "lg.real",
                "lg.imag",
                "sn.real",
                "sn.imag",
                "cs.real",
                "cs.imag"
            ]
        );
        for (p, &mu) in mus.iter().enumerate() {
            let cols: Vec<Vec<f64>> = keys.iter().map(|k| column(&res, p, k)).collect();
            let mut worst = 0.0f64;
            for (i, &t) in res.time.iter().enumerate() {
                let (r, th) = exact(mu, t);
                let want = [
                    r * th.cos(),
                    r * th.sin(),
                    r,
                    wrap(th),
                    th.cos(),
                    th.sin(),
                    r.sqrt() * (wrap(th) / 2.0).cos(),
                    r.sqrt() * (wrap(th) / 2.0).sin(),
                    th.cos() / r,
                    th.sin() / r,
                    (3.0 * th).cos(),
                    (3.0 * th).sin(),
                    0.0,
                    0.0,
                    r.sqrt() * (wrap(th) / 2.0).cos(),
                    r.sqrt() * (wrap(th) / 2.0).sin(),
                    r.ln(),
                    wrap(th),
                    (r * th.cos()).sin() * (r * th.sin()).cosh(),
                    (r * th.cos()).cos() * (r * th.sin()).sinh(),
                    (r * th.cos()).cos() * (r * th.sin()).cosh(),
                    -(r * th.cos()).sin() * (r * th.sin()).sinh(),
                ];
                for (k, w) in want.iter().enumerate() {
                    let mut d = (cols[k][i] - w).abs();
                    if keys[k] == "phase" || keys[k] == "lg.imag" {
                        // ±π are the same angle.
                        d = d.min((d - 2.0 * std::f64::consts::PI).abs());
                    }
                    assert!(d <= TOL, "{backend:?} mu={mu} t={t} {}: {} vs {w}", keys[k], cols[k][i]);
                    worst = worst.max(d);
                }
            }
            // With μ = 1 the amplitude has reached √μ after 10 ≫ 1/(2μ) time units
            // (closed form: within 1e-7).
            let amp = &cols[2];
            if mu == 1.0 {
                assert!(
                    (amp[amp.len() - 1] - mu.sqrt()).abs() < 1e-6,
                    "{backend:?}: {}",
                    amp[amp.len() - 1]
                );
            }
            println!("{backend:?} mu={mu}: worst |diff| {worst:.2e}");
        }
        results.push(res.traces.expect("traces"));
    }
    // The back ends evaluate the same real expressions: equal to rounding.
    assert_runs_agree(&results, 1e-12);
}

/// A node template `pop` of PyRates' Kuramoto mean-field operator (kmo_mf form), `kmo_op`:
/// z' = (iω − Δ)z + (s − s̄ z²)/2 with s = s_in + s_ext (edges deliver into s_in, a drive into
/// s_ext), starting from `z0`; the circuit is the caller's.
fn kuramoto_pop(z0: &str, omega: f64, delta: f64) -> String {
    format!(
        r#"
kmo_op:
  base: OperatorTemplate
  equations:
    - "s = s_in + s_ext"
    - "z' = (i*omega - Delta)*z + (s - conj(s)*z^2) / 2"
  variables:
    z: output({z0})
    s: variable(complex)
    omega: {omega:?}
    Delta: {delta:?}
    i: 0.0+1.0j
    s_in: input(complex)
    s_ext: input(complex)
pop:
  base: NodeTemplate
  operators: [kmo_op]
"#
    )
}

/// A Kuramoto mean field coupled to itself through a complex edge (PyRates' kmo_mf form):
/// the edge delivers w·z into the complex input s. With Δ = 0, ω = 0 and w = 1 the equation
/// is z' = (z − z̄ z²)/2 = z (1 − |z|²)/2: the phase φ of z(0) = 0.3 + 0.4i stays, and
/// |z(t)| = 1/√(1 + (1/|z0|² − 1) e^{−t}). An edge that dropped the imaginary part would
/// turn the phase.
#[test]
fn complex_edges_carry_both_parts() {
    let text = kuramoto_pop("0.3+0.4j", 0.0, 0.0)
        + "mf:\n  base: CircuitTemplate\n  nodes: {p: pop}\n  edges:\n    - [p/kmo_op/z, p/kmo_op/s_in, null, {weight: 1.0}]\n";
    let c = load_text(&text, "mf").expect("loads");
    for backend in [Backend::Reference, Backend::Jit, Backend::C] {
        let map = ParamMap::new().edges("w", &["weight"], &[("p", "p", None)]);
        let outputs = [("z", "p/kmo_op/z"), ("s", "p/kmo_op/s")];
        let res = crate::support::run(
            &sweep_spec(
                &[("w", vec![1.0])],
                map,
                Method::Rk4,
                (5.0, 1e-3, 0.01),
                &outputs,
                backend,
            ),
            &c,
        );
        let (re, im, s_re) = (
            column(&res, 0, "z.real"),
            column(&res, 0, "z.imag"),
            column(&res, 0, "s.real"),
        );
        for (i, &t) in res.time.iter().enumerate() {
            let x = 1.0 / (1.0 + (1.0 / 0.25 - 1.0) * (-t).exp()).sqrt();
            let (want_re, want_im) = (x * 0.6, x * 0.8);
            // Same RK4 error budget as above.
            assert!(
                (re[i] - want_re).abs() <= 1e-9,
                "{backend:?} t={t}: {} vs {want_re}",
                re[i]
            );
            assert!(
                (im[i] - want_im).abs() <= 1e-9,
                "{backend:?} t={t}: {} vs {want_im}",
                im[i]
            );
            assert_eq!(s_re[i], re[i], "s is the edge's weight 1 times z");
        }
    }
}

/// Each unsupported use of a complex value is an error at the operation, saying which.
#[test]
fn unsupported_complex_uses_are_positioned_errors() {
    let cases: &[(&str, &str, &str)] = &[
        ("x' = real(z) - (z < 1)", "z < 1", "comparison `<` of complex values"),
        ("x' = tanh(z)", "z", "`tanh` of a complex value"),
        ("x' = real(z**z)", "z**z", "`**` with a complex exponent"),
        (
            "x' = real(z(t - 1.0))",
            "z(t - 1.0)",
            "delayed access `z(...)` to a complex value",
        ),
        ("x' = real(past(z, 1.0))", "past(z, 1.0)", "`past` of a complex value"),
        ("x' = max(imag(z), z)", "z", "`max` of a complex value"),
    ];
    for (eq, at, message) in cases {
        let text = format!(
            "op:\n  base: OperatorTemplate\n  equations:\n    - \"z' = 1.0j*z\"\n    - \"{eq}\"\n  variables:\n    z: output(1.0+0.0j)\n    x: output(0.0)\n"
        );
        assert_op_error_on_line_5(&text, eq, at, "eq/complex-unsupported", message);
    }
    let delayed_edge = r#"
op:
  base: OperatorTemplate
  equations: ["z' = 1.0j*z + u"]
  variables: {z: output(1.0+0.0j), u: input(complex)}
pop: {base: NodeTemplate, operators: [op]}
net:
  base: CircuitTemplate
  nodes: {a: pop, b: pop}
  edges:
    - [a/op/z, b/op/u, null, {weight: 1.0, delay: 0.5}]
"#;
    assert_load_error(delayed_edge, "net", "edge/complex-delay", "11:51");
}

/// A network of complex nodes (8 Kuramoto mean fields on a ring, each fed by its two
/// neighbours): the C back end runs networks as population loops, the reference back end
/// the unrolled equations; both must agree to rounding on both parts of every z.
#[test]
fn complex_network_runs_alike_on_every_back_end() {
    let n = 8;
    let mut text = kuramoto_pop("0.5+0.1j", 10.0, 1.0) + "ring:\n  base: CircuitTemplate\n  nodes:\n";
    for k in 0..n {
        text.push_str(&format!("    n{k}: pop\n"));
    }
    text.push_str("  edges:\n");
    for k in 0..n {
        for (d, w) in [(1, 1.5), (n - 1, -0.5)] {
            text.push_str(&format!(
                "    - [n{}/kmo_op/z, n{k}/kmo_op/s_in, null, {{weight: {w}}}]\n",
                (k + d) % n
            ));
        }
    }
    let c = load_text(&text, "ring").expect("loads");
    // The C back end runs this as population loops, not unrolled code.
    let lowered = model::passes::lower_edges(&c);
    let swept: Vec<_> = (0..n)
        .step_by(2)
        .map(|k| c.find_var(&format!("n{k}/kmo_op/omega")).expect("omega"))
        .collect();
    if let Err(why) = model::network::plan(&model::passes::specialize_params(&lowered, &swept)) {
        panic!("not planned as a network: {why:?}");
    }
    let mut traces = Vec::new();
    for backend in [Backend::Reference, Backend::Jit, Backend::C] {
        // Different initial values per node break the ring's symmetry.
        let nodes: Vec<String> = (0..n).step_by(2).map(|k| format!("n{k}")).collect();
        let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let map = ParamMap::new().nodes("omega", &["kmo_op/omega"], &nodes);
        let spec = sweep_spec(
            &[("omega", vec![8.0, 12.0])],
            map,
            Method::Rk4,
            (2.0, 1e-3, 0.01),
            &[("z", "all/kmo_op/z")],
            backend,
        );
        let res = crate::support::run(&spec, &c);
        assert_eq!(res.columns.len(), 2 * n, "{:?}", res.columns);
        assert_eq!(res.columns[1], ("n0".to_string(), "z.imag".to_string()));
        traces.push(res.traces.expect("traces"));
    }
    let moved = traces[0].iter().map(|x| x.abs()).fold(0.0, f64::max);
    assert!(moved > 0.1, "the network stays put");
    // The same real expressions in another association order at most: rounding level.
    assert_runs_agree(&traces, 1e-12);
}

/// A complex input is driven part by part: naming the whole variable says which part to name,
/// and driving `name.real` with a constant c adds c to the real part of the coupling. With
/// Δ = 0, ω = 0, no edges and s = c real, z' = (c − c z²)/2: from z(0) = 0 the solution stays
/// real, z(t) = tanh(c t / 2).
#[test]
fn complex_input_is_driven_by_its_parts() {
    use rustrates::solve::Signal;
    let text = kuramoto_pop("0.0+0.0j", 0.0, 0.0) + "one: {base: CircuitTemplate, nodes: {p: pop}}\n";
    let c = load_text(&text, "one").expect("loads");
    let run_with = |input: &str| {
        let map = ParamMap::new().nodes("Delta", &["kmo_op/Delta"], &["p"]);
        let mut spec = sweep_spec(
            &[("Delta", vec![0.0])],
            map,
            Method::Rk4,
            (2.0, 1e-3, 0.1),
            &[("z", "p/kmo_op/z")],
            Backend::Jit,
        );
        spec.inputs = vec![(input.to_string(), Signal::Constant(0.8))];
        try_run(&spec, &c)
    };
    let err = run_with("p/kmo_op/s_ext").expect_err("a complex input by its whole name");
    assert_eq!(
        err,
        "unknown input variable 'p/kmo_op/s_ext'; did you mean 'p/kmo_op/s_ext.real'?"
    );
    let res = run_with("p/kmo_op/s_ext.real").expect("runs");
    let (re, im) = (column(&res, 0, "z.real"), column(&res, 0, "z.imag"));
    for (i, &t) in res.time.iter().enumerate() {
        // RK4 error budget as above.
        assert!((re[i] - (0.4 * t).tanh()).abs() <= 1e-9, "t={t}: {}", re[i]);
        assert_eq!(im[i], 0.0);
    }
}
