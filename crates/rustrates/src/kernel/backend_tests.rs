//! Kernel tests written once and run on every back end through the test kit
//! (`kernel::test_kit`): reference, JIT and C.

use super::precision::Real;
use super::test_kit::{
    all_ops_circuit, buffers, circuits_for_cross_check, close, empty_circuit, eval, fused, generic_buffers, hooked_ctx,
    lane_values, past_hook, push_assign, push_ode, qif_buffers, qif_reference_circuit, same_bits, step_with_rhs,
    stepper_circuits, tableaux, to_f32, Case, Kit, StepRun, Tol, FIRST_POINT, V,
};
use super::{Backend, KernelCtx, Precision, Tableau};
use crate::model::passes::specialize_params;
use crate::model::{BinOp, Circuit, Expr, Func, VarId, VarKind};

/// Every case of the all-ops circuit, in precision `R` (`precision`), against its `f64`
/// closure over lane blocks of `lane_counts`; `holds(case's tolerance, back end, got, want)`
/// judges a value. The lane values are rounded to `R` first, so the closures see the kernel's
/// inputs. The chained algebraic and the derivatives are the same operations on values
/// already checked, so they are held to the cases' exact tolerance.
fn every_expr_and_func_matches_closures<R: Real>(
    precision: Precision,
    lane_counts: &[usize],
    holds: impl Fn(Tol, Backend, f64, f64) -> bool,
) {
    let kit = Kit::new();
    let (c, cases) = all_ops_circuit();
    let layout = c.layout();
    let t = 0.75;
    let pos = |name: &str| cases.iter().position(|c| c.name == name).expect("case exists");
    let (add, sin, randn) = (
        cases[pos("add")].reference,
        cases[pos("sin")].reference,
        cases[pos("randn")].reference,
    );
    let in_precision = |v: &[f64]| -> Vec<R> { v.iter().map(|&x| R::of(x)).collect() };
    for backend in kit.backends() {
        let k = kit.kernel(&c, backend, precision);
        for &lanes in lane_counts {
            let r = |x: f64| R::of(x).wide();
            let vals: Vec<V> = lane_values(&c, lanes, t)
                .into_iter()
                .map(|v| V {
                    vars: v.vars.map(r),
                    ..v
                })
                .collect();
            let [y, p, u] = buffers(&c, &layout, &vals);
            let (y, p, u) = (in_precision(&y), in_precision(&p), in_precision(&u));
            let (dy, a) = eval(&k, t, lanes, [&y, &p, &u], &mut hooked_ctx());
            for (ci, case) in cases.iter().enumerate() {
                for (l, v) in vals.iter().enumerate() {
                    let (got, want) = (a[ci * lanes + l].wide(), (case.reference)(v));
                    assert!(
                        holds(case.tol, backend, got, want),
                        "{backend:?} {} lanes={lanes} lane={l}: {got:e} vs reference {want:e} ({v:?})",
                        case.name
                    );
                }
            }
            for (l, v) in vals.iter().enumerate() {
                let checks = [
                    ("chain", a[cases.len() * lanes + l], add(v) * sin(v)),
                    ("x'", dy[l], add(v) + sin(v)),
                    ("w'", dy[lanes + l], ((-v.w) * v.k + v.s) + randn(v)),
                ];
                for (what, got, want) in checks {
                    let got = got.wide();
                    assert!(
                        holds(Tol::Exact, backend, got, want),
                        "{backend:?} {what} lane {l}/{lanes}: {got:e} vs {want:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_expr_and_func_matches_closures_f64() {
    every_expr_and_func_matches_closures::<f64>(Precision::F64, &[1, 2, 3, 7, 64], |tol, backend, got, want| {
        tol.holds(backend, got, want)
    });
}

/// The all-operations circuit, its cases, and `lanes` lanes of its values at time `t`
/// (`lane_values`) with the evaluation buffers `[y, p, u]` that hold them.
fn all_ops_in_lanes(lanes: usize, t: f64) -> (Circuit, Vec<Case>, Vec<V>, [Vec<f64>; 3]) {
    let (c, cases) = all_ops_circuit();
    let vals = lane_values(&c, lanes, t);
    let lane_buffers = buffers(&c, &c.layout(), &vals);
    (c, cases, vals, lane_buffers)
}

#[test]
fn block_of_lanes_equals_single_lane_runs_bitwise() {
    let kit = Kit::new();
    let t = 1.25;
    // JIT: 2 vector iterations of 4 lanes + 3 scalar lanes.
    let lanes = 11;
    let (c, _, vals, [y, p, u]) = all_ops_in_lanes(lanes, t);
    let layout = c.layout();
    for backend in kit.backends() {
        let k = kit.kernel(&c, backend, Precision::F64);
        let (dy, a) = eval(&k, t, lanes, [&y, &p, &u], &mut hooked_ctx());
        for (l, v) in vals.iter().enumerate() {
            // A one-lane block holding lane l's values; its lane index is 0, so move the
            // hooks' lane-dependent part into the context.
            let [y1, p1, u1] = buffers(&c, &layout, &[V { lane: l, ..*v }]);
            let mut ctx = hooked_ctx();
            ctx.first_point = FIRST_POINT + l;
            ctx.past = Some(|ctx, var, lane, t, d| past_hook(ctx, var, lane + ctx.first_point - FIRST_POINT, t, d));
            let (dy1, a1) = eval(&k, t, 1, [&y1, &p1, &u1], &mut ctx);
            for s in 0..layout.states.len() {
                assert_eq!(
                    dy[s * lanes + l].to_bits(),
                    dy1[s].to_bits(),
                    "{backend:?} dy slot {s} lane {l}"
                );
            }
            for s in 0..layout.algebraics.len() {
                assert_eq!(
                    a[s * lanes + l].to_bits(),
                    a1[s].to_bits(),
                    "{backend:?} a slot {s} lane {l}"
                );
            }
        }
    }
}

#[test]
fn every_expr_and_func_matches_closures_f32() {
    // Single precision rounds each operation to 2^-24 ≈ 6e-8 relative; a case chains at
    // most a few operations plus one libm call (≤ 2 ulp), so 1e-6 relative holds with
    // margin. Results that cancel towards 0 (x' = add + sin) get the same bound relative
    // to the operands' scale 1.
    let close32 = |_: Tol, _: Backend, got: f64, want: f64| {
        (got - want).abs() <= 1e-6 * want.abs().max(1.0) || (got.is_nan() && want.is_nan())
    };
    every_expr_and_func_matches_closures::<f32>(Precision::F32, &[1, 3, 7, 8, 64, 67], close32);
}

/// NaN, infinite and signed-zero inputs through the functions with special cases, against
/// the shared scalar definitions (`mathfns::func_f64`, checked against numpy's documented
/// values in its own tests), in the JIT's vector and scalar loops (49 + 7 lanes) and C's.
#[test]
fn special_values_match_shared_definitions_bitwise() {
    let kit = Kit::new();
    let mut c = empty_circuit("specials");
    let x = super::test_kit::add_var(&mut c, "x", VarKind::Input, 0.0);
    let y = super::test_kit::add_var(&mut c, "y", VarKind::Input, 0.0);
    let funcs = [
        Func::Max,
        Func::Min,
        Func::Heaviside,
        Func::Sign,
        Func::Abs,
        Func::Floor,
        Func::Ceil,
        Func::Sqrt,
    ];
    for f in funcs {
        let xe = c.add_expr(Expr::Var(x));
        let ye = c.add_expr(Expr::Var(y));
        let args = if f.arity() == 2 { vec![xe, ye] } else { vec![xe] };
        let rhs = c.add_expr(Expr::Call(f, args));
        push_assign(&mut c, &format!("{f:?}"), rhs);
    }
    let specials = [f64::NAN, 0.0, -0.0, 1.5, -2.5, f64::INFINITY, f64::NEG_INFINITY];
    let mut pairs: Vec<(f64, f64)> = specials
        .iter()
        .flat_map(|&a| specials.iter().map(move |&b| (a, b)))
        .collect();
    pairs.extend([
        (f64::NAN, 1.0),
        (1.0, f64::NAN),
        (-0.0, 0.0),
        (0.0, -0.0),
        (-1.0, 2.0),
        (3.0, -4.0),
        (0.0, 0.0),
    ]);
    let lanes = pairs.len();
    let mut u = vec![0.0; 2 * lanes];
    for (l, &(a, b)) in pairs.iter().enumerate() {
        u[l] = a;
        u[lanes + l] = b;
    }
    for backend in kit.backends() {
        let k = kit.kernel(&c, backend, Precision::F64);
        let (_, a) = eval(&k, 0.0, lanes, [&[], &[], &u], &mut KernelCtx::default());
        for (fi, &f) in funcs.iter().enumerate() {
            for (l, &(xa, yb)) in pairs.iter().enumerate() {
                let (got, want) = (a[fi * lanes + l], super::mathfns::func_f64(f, xa, yb));
                // Bit-exact: these functions have one right answer, sign of zero included.
                assert!(
                    same_bits(got, want),
                    "{backend:?} {f:?}({xa}, {yb}) lane {l}: {got} vs {want}"
                );
            }
        }
    }
}

/// `x ^ c` for constant exponents: every back end follows the one rule (`mathfns::pow_plan`),
/// so all give the same bits as the reference evaluator, and each value equals its definition
/// (products by squaring, `1 / x^|c|`, `sqrt`, `pow`). Before one rule, the reference called
/// `pow` for `v^2` and the JIT and C multiplied (`pow` is within ≈ 0.52 ulp, not always
/// correctly rounded: an N = 500 network differed in one derivative by an ulp).
#[test]
fn constant_powers_are_the_same_bits_on_every_back_end() {
    let kit = Kit::new();
    let mut c = empty_circuit("powers");
    let x = super::test_kit::add_var(&mut c, "x", VarKind::Input, 0.0);
    let exponents = [
        0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 17.0, 64.0, -1.0, -2.0, -3.0, 0.5, 2.5, -0.5, 65.0,
    ];
    for (i, &e) in exponents.iter().enumerate() {
        let xe = c.add_expr(Expr::Var(x));
        let ee = c.add_expr(Expr::Const(e));
        let rhs = c.add_expr(Expr::Binary(BinOp::Pow, xe, ee));
        push_assign(&mut c, &format!("p{i}"), rhs);
    }
    // Many ordinary values (where `pow` and products can round apart) and the specials.
    let mut xs: Vec<f64> = (0..200)
        .map(|k| -1.3 + 0.0137 * k as f64 + 1e-4 * (k * k) as f64)
        .collect();
    xs.extend([
        0.0,
        -0.0,
        1.0,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e-300,
        1e300,
    ]);
    let lanes = xs.len();
    let by_definition = |x: f64, e: f64| -> f64 {
        if e == 0.5 {
            return x.sqrt();
        }
        if e.fract() != 0.0 || e.abs() > 64.0 {
            return x.powf(e);
        }
        let n = e as i32;
        if n == 0 {
            return 1.0;
        }
        let v = super::mathfns::pow_by_squaring(x, n.unsigned_abs(), |a, b| a * b);
        if n < 0 {
            1.0 / v
        } else {
            v
        }
    };
    let mut mismatched_pow = 0;
    for backend in kit.backends() {
        let k = kit.kernel(&c, backend, Precision::F64);
        let (_, a) = eval(&k, 0.0, lanes, [&[], &[], &xs], &mut KernelCtx::default());
        for (i, &e) in exponents.iter().enumerate() {
            for (l, &xv) in xs.iter().enumerate() {
                let (got, want) = (a[i * lanes + l], by_definition(xv, e));
                assert!(same_bits(got, want), "{backend:?} {xv:e}^{e}: {got:e} vs {want:e}");
                if e == 2.0 && got.to_bits() != xv.powf(2.0).to_bits() {
                    mismatched_pow += 1;
                }
            }
        }
    }
    // Not asserted (it depends on the C library), said when the test is run with --nocapture.
    println!("x^2: {mismatched_pow} values where multiplying differs from pow");
}

#[test]
fn without_hooks_past_and_randn_give_nan() {
    let kit = Kit::new();
    let lanes = 5;
    let (c, cases, vals, [y, p, u]) = all_ops_in_lanes(lanes, 0.0);
    let pos = |name: &str| cases.iter().position(|c| c.name == name).expect("case exists");
    for backend in kit.backends() {
        let k = kit.kernel(&c, backend, Precision::F64);
        let (dy, a) = eval(&k, 0.0, lanes, [&y, &p, &u], &mut KernelCtx::default());
        for name in ["past", "randn"] {
            let ci = pos(name);
            assert!(
                a[ci * lanes..(ci + 1) * lanes].iter().all(|x| x.is_nan()),
                "{backend:?} {name}"
            );
        }
        // The NaN noise reaches the derivative that reads it (w').
        assert!(dy[lanes..].iter().all(|x| x.is_nan()), "{backend:?} w' {dy:?}");
        let ci = pos("add");
        for (l, v) in vals.iter().enumerate() {
            assert_eq!(a[ci * lanes + l], v.x + v.k, "{backend:?} add lane {l}");
        }
    }
}

#[test]
fn zero_lanes_is_a_no_op() {
    let kit = Kit::new();
    // Buffers with room for a lane, filled with a sentinel: zero lanes must write nothing.
    let (c, _) = all_ops_circuit();
    let layout = c.layout();
    let sentinel = -1234.5;
    let (y, p, u) = (
        vec![0.5; layout.states.len()],
        vec![0.5; layout.params.len()],
        vec![0.5; layout.inputs.len()],
    );
    for backend in kit.backends() {
        let k = kit.kernel(&c, backend, Precision::F64);
        let mut dy = vec![sentinel; layout.states.len()];
        let mut a = vec![sentinel; layout.algebraics.len()];
        assert!(!dy.is_empty() && !a.is_empty(), "the circuit has states and algebraics");
        f64::rhs(&k, 0.0, 0, &y, &p, &u, &mut dy, &mut a, &mut KernelCtx::default());
        assert!(
            dy.iter().chain(&a).all(|&v| v == sentinel),
            "{backend:?}: dy {dy:?}, a {a:?}"
        );
    }
}

/// A buffer too short for the block panics before any generated code runs, with the same
/// message on every back end (`kernel::ffi`).
#[test]
fn short_buffer_panics_before_evaluating() {
    let kit = Kit::new();
    let (c, _, _, [y, p, u]) = all_ops_in_lanes(4, 0.0);
    let layout = c.layout();
    for backend in kit.backends() {
        let k = kit.kernel(&c, backend, Precision::F64);
        let mut dy = vec![0.0; 7]; // needs 2 × 4
        let mut a = vec![0.0; layout.algebraics.len() * 4];
        let call = std::panic::AssertUnwindSafe(|| {
            f64::rhs(&k, 0.0, 4, &y, &p, &u, &mut dy, &mut a, &mut KernelCtx::default())
        });
        let err = std::panic::catch_unwind(call).expect_err("a short `dy` panics");
        let msg = err
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| err.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(
            msg.contains("`dy` holds 7 values, 2 rows × 4 lanes need 8"),
            "{backend:?}: {msg}"
        );
    }
}

#[test]
fn literals_round_trip_exactly() {
    let kit = Kit::new();
    let consts = [
        0.1,
        1.0 / 3.0,
        std::f64::consts::PI,
        5e-324,
        -2.2250738585072014e-308,
        1.7976931348623157e308,
        -0.0,
        123_456_789.123_456_79,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    let mut c = empty_circuit("literals");
    let x = super::test_kit::add_var(&mut c, "x", VarKind::State, 0.0);
    for (i, &k) in consts.iter().enumerate() {
        let e = c.add_expr(Expr::Const(k));
        push_assign(&mut c, &format!("c{i}"), e);
    }
    let z = c.add_expr(Expr::Const(0.0));
    push_ode(&mut c, x, z);
    for backend in kit.backends() {
        let k = kit.kernel(&c, backend, Precision::F64);
        let (_, a) = eval::<f64>(&k, 0.0, 1, [&[0.0], &[], &[]], &mut KernelCtx::default());
        for (got, want) in a.iter().zip(consts) {
            assert_eq!(got.to_bits(), want.to_bits(), "{backend:?}: {got:e} vs {want:e}");
        }
    }
}

/// The QIF circuit's rhs against `montbrio_grid.c`'s formulas with τ = Δ = 1 folded by
/// hand. The IR's extra operations are multiplications and divisions by 1 and `w_ip·r`
/// with w_ip = −10 instead of `− 10·r`, all exact, so the results are equal.
#[test]
fn qif_reference_circuit_matches_hand_written_rhs() {
    let kit = Kit::new();
    for specialize in [false, true] {
        let c = qif_reference_circuit(specialize);
        let layout = c.layout();
        let (lanes, n) = (25, 5);
        let [y, p, u] = qif_buffers(&c, &layout, lanes, 0, n);
        for backend in kit.backends() {
            let k = kit.kernel(&c, backend, Precision::F64);
            let (dy, _) = eval(&k, 0.0, lanes, [&y, &p, &u], &mut KernelCtx::default());
            let pi = std::f64::consts::PI;
            for l in 0..lanes {
                let e = |i: usize| -5.0 + 10.0 * i as f64 / 4.0;
                let (eta_p, eta_i) = (e(l % n), e(l / n));
                let (rp, vp, ri, vi) = (0.01, -2.0, 0.01, -2.0);
                let rin_p = 15.0 * rp - 10.0 * ri;
                let rin_i = 10.0 * rp;
                let want = [
                    1.0 / pi + 2.0 * rp * vp,
                    vp * vp + eta_p + 1.0 + rin_p - (pi * rp) * (pi * rp),
                    1.0 / pi + 2.0 * ri * vi,
                    vi * vi + eta_i + 0.0 + rin_i - (pi * ri) * (pi * ri),
                ];
                for (s, w) in want.iter().enumerate() {
                    let got = dy[s * lanes + l];
                    assert_eq!(
                        got.to_bits(),
                        w.to_bits(),
                        "{backend:?} specialize {specialize} slot {s} lane {l}: {got} vs {w}"
                    );
                }
            }
        }
    }
}

/// Every test model and built-in template through each compiled back end and the
/// reference evaluator (the oracle). The JIT does the same IEEE operations in the same
/// order (Cranelift never contracts to FMA) and calls the same Rust libm functions, the C
/// back end the same operations (`-ffp-contract=off`) with the C library's functions; they
/// agree bit for bit except where `x**2`-style powers are expanded into products (≤ 2 ulp of
/// that intermediate) or libm differs (≤ 1 ulp); 1e-12 relative to the row's scale bounds
/// that even after cancellation in later sums.
#[test]
fn compiled_back_ends_match_the_reference_evaluator_on_models_and_library() {
    const PER_VALUE: [&str; 6] = [
        "all_ops",
        "qif_reference_ir",
        "exponential_decay",
        "harmonic_oscillator",
        "mpr_single",
        "reference_circuit",
    ];
    let kit = Kit::new();
    for (name, c) in circuits_for_cross_check() {
        let layout = c.layout();
        let reference64 = kit.kernel(&c, Backend::Reference, Precision::F64);
        let reference32 = kit.kernel(&c, Backend::Reference, Precision::F32);
        for backend in kit.compiled_backends() {
            let k64 = kit.kernel(&c, backend, Precision::F64);
            let k32 = kit.kernel(&c, backend, Precision::F32);
            for lanes in [1, 3, 7, 64] {
                let [y, p, u] = generic_buffers(&c, &layout, lanes);
                let t = 0.3;
                let got = eval(&k64, t, lanes, [&y, &p, &u], &mut hooked_ctx());
                let want = eval(&reference64, t, lanes, [&y, &p, &u], &mut hooked_ctx());
                // The models with no cancellation to speak of hold each value to 1e-12 of
                // itself (what the C back end's own test asked of them).
                let per_value = PER_VALUE.contains(&name.as_str());
                let case = format!("{name} {backend:?}");
                assert_rows_agree(&case, "dy", &got.0, &want.0, lanes, 1e-12, !per_value);
                assert_rows_agree(&case, "a", &got.1, &want.1, lanes, 1e-12, !per_value);
                // Single precision: same ops in f32 on both sides; 1e-6 of the row scale
                // covers the f32 pow expansions (≤ 2 ulp = 1.2e-7 relative) after
                // cancellation.
                let (y32, p32, u32_) = (to_f32(&y), to_f32(&p), to_f32(&u));
                let got = eval(&k32, t, lanes, [&y32, &p32, &u32_], &mut hooked_ctx());
                let want = eval(&reference32, t, lanes, [&y32, &p32, &u32_], &mut hooked_ctx());
                assert_rows_agree(&case, "dy32", &got.0, &want.0, lanes, 1e-6, true);
                assert_rows_agree(&case, "a32", &got.1, &want.1, lanes, 1e-6, true);
            }
        }
    }
}

/// Each value of `got` (rows of `lanes` values) agrees with the reference's `want`: the same
/// bits, both NaN, or within `rel` of `|want|`, or with `row_scaled` of the row's largest
/// finite magnitude when that is larger; computed in `R`, as the values are.
fn assert_rows_agree<R: Real>(case: &str, what: &str, got: &[R], want: &[R], lanes: usize, rel: f64, row_scaled: bool) {
    let abs = |x: R| if x < R::ZERO { -x } else { x };
    // `f64::max`'s rule: a NaN operand gives the other.
    let max = |x: R, y: R| if x.is_nan() || x < y { y } else { x };
    for (row, (g, w)) in got.chunks(lanes).zip(want.chunks(lanes)).enumerate() {
        let largest = w
            .iter()
            .fold(R::ZERO, |m, &x| if x.finite() { max(m, abs(x)) } else { m });
        let scale = if row_scaled { largest } else { R::ZERO };
        for l in 0..lanes {
            let (g, w) = (g[l], w[l]);
            assert!(
                g.wide().to_bits() == w.wide().to_bits()
                    || (g.is_nan() && w.is_nan())
                    || abs(g - w) <= R::of(rel) * max(abs(w), scale),
                "{case} {what} row {row} lane {l}/{lanes}: {} vs reference {}",
                g.wide(),
                w.wide()
            );
        }
    }
}

/// The fused stepper against stepping with the rhs (the solver's arithmetic) on every
/// Past/Randn-free cross-check circuit, Euler, Heun and RK4, taken in two calls (the second
/// starts at t0 + nsteps/2·dt). Invariant divisors become reciprocals in the fused
/// loops: each such division differs by ≤ 1 ulp, so after 40 (QIF: 300) steps of these
/// well-conditioned models the states agree to 1e-12 relative to each state row's scale
/// (the `Kernel::steps` contract). The reference evaluator has no fused path.
#[test]
fn fused_steps_match_rhs_stepping() {
    let kit = Kit::new();
    for (name, c) in stepper_circuits() {
        let layout = c.layout();
        let reference = kit.kernel(&c, Backend::Reference, Precision::F64);
        for backend in kit.compiled_backends() {
            let k = kit.kernel(&c, backend, Precision::F64);
            for lanes in [1, 3, 9, 64] {
                let [y0, p, u] = generic_buffers(&c, &layout, lanes);
                for tab in tableaux() {
                    let (tname, tab) = (tab.name, &tab);
                    // 300 steps on the QIF circuit; 40 on the others, some of which leave
                    // their range (to NaN) within 300 steps of these lane values.
                    let nsteps = if name == "qif_reference_ir" { 300 } else { 40 };
                    let (t0, dt) = (0.25, 1e-3);
                    let run = StepRun::new(&k, tab, lanes, nsteps, t0, dt);
                    let mut want = y0.clone();
                    step_with_rhs(run, &mut want, [&p, &u]);
                    let mut got = y0.clone();
                    let mut ctx = KernelCtx::default();
                    for half in 0..2 {
                        let t_half = t0 + (half * nsteps / 2) as f64 * dt;
                        let half_run = StepRun {
                            nsteps: nsteps / 2,
                            t0: t_half,
                            ..run
                        };
                        assert!(
                            fused(half_run, &mut got, [&p, &u], &mut ctx),
                            "{name} {backend:?} {tname}: a fused path"
                        );
                    }
                    for (row, (g, w)) in got.chunks(lanes).zip(want.chunks(lanes)).enumerate() {
                        // A lane whose values leave the model's range turns infinite or NaN
                        // on both paths alike (a few of JRC_2delaycoupled's 64 lanes): equal
                        // bits there, and the row's scale taken over its finite values.
                        let scale = w
                            .iter()
                            .fold(0.0f64, |m, x| if x.is_finite() { m.max(x.abs()) } else { m });
                        // The QIF circuit's states each to 1e-12 of themselves (what the C
                        // back end's own test asked of it).
                        let row_scale = if name == "qif_reference_ir" { 0.0 } else { scale };
                        for l in 0..lanes {
                            assert!(
                                same_bits(g[l], w[l]) || (g[l] - w[l]).abs() <= 1e-12 * row_scale.max(w[l].abs()),
                                "{name} {backend:?} {tname} lanes {lanes} row {row} lane {l}: {} vs {}",
                                g[l],
                                w[l]
                            );
                        }
                    }
                    assert!(got != y0, "{name} {backend:?} {tname}: the state moved");
                }
            }
        }
        assert_declines(
            &reference,
            &c,
            &Tableau::rk4(),
            &mut KernelCtx::default(),
            &format!("{name} reference"),
        );
    }
}

/// A fused-stepper call that `k` must decline (3 lanes, 5 steps of 0.1 from t = 0 on `c`'s
/// buffers): `Kernel::steps` returns false and leaves y alone; `what` names the case.
pub(super) fn assert_declines(
    k: &super::Kernel,
    c: &crate::model::Circuit,
    tab: &Tableau,
    ctx: &mut KernelCtx,
    what: &str,
) {
    let [y0, p, u] = generic_buffers(c, &c.layout(), 3);
    let mut y = y0.clone();
    assert!(
        !fused(StepRun::new(k, tab, 3, 5, 0.0, 0.1), &mut y, [&p, &u], ctx),
        "{what}: declined"
    );
    assert_eq!(y, y0, "{what}: a declined call leaves y alone");
}

#[test]
fn fused_steps_decline_past_randn_and_implicit_tableaux() {
    let kit = Kit::new();
    let (c, _) = all_ops_circuit(); // has Past and Randn
    for backend in kit.backends() {
        let k = kit.kernel(&c, backend, Precision::F64);
        assert_declines(
            &k,
            &c,
            &Tableau::euler(),
            &mut hooked_ctx(),
            &format!("{backend:?} past and randn"),
        );
    }
    // An implicit tableau (nonzero diagonal) on a circuit every fused stepper takes.
    let qif = qif_reference_circuit(false);
    let implicit = Tableau {
        name: "implicit midpoint",
        a: vec![0.5],
        b: vec![1.0],
        c: vec![0.5],
        order: 2,
        b_err: None,
    };
    for backend in kit.backends() {
        let k = kit.kernel(&qif, backend, Precision::F64);
        assert_declines(
            &k,
            &qif,
            &implicit,
            &mut KernelCtx::default(),
            &format!("{backend:?} implicit"),
        );
    }
}

#[test]
fn fused_rk4_decay_matches_exponential() {
    let kit = Kit::new();
    // x' = -k x, its one parameter k swept over the lanes.
    let c = crate::model::test_models::exponential_decay().0;
    let p = vec![0.5, 1.0, 2.0];
    for backend in kit.compiled_backends() {
        let kernel = kit.kernel(&c, backend, Precision::F64);
        let mut y = vec![1.0; p.len()];
        let mut ctx = KernelCtx::default();
        let run = StepRun {
            k: &kernel,
            tab: &Tableau::rk4(),
            lanes: p.len(),
            nsteps: 100,
            t0: 0.0,
            dt: 0.01,
        };
        assert!(fused(run, &mut y, [&p, &[]], &mut ctx));
        for (l, k) in p.iter().enumerate() {
            // RK4 global error ≈ (k·dt)^4 / 120 · k·T·e^{-kT}: below 1e-9 for k ≤ 2, dt = 0.01.
            let want = (-k * 1.0_f64).exp();
            assert!((y[l] - want).abs() < 1e-9, "{backend:?} k={k}: {} vs {want}", y[l]);
        }
    }
}

#[test]
fn specialized_params_match_per_lane_params() {
    let kit = Kit::new();
    let c = crate::model::test_models::reference_circuit().0;
    let layout = c.layout();
    let eta: Vec<VarId> = layout
        .params
        .iter()
        .copied()
        .filter(|v| c.var(*v).name.ends_with("/eta"))
        .collect();
    assert_eq!(eta.len(), 2);
    let special = specialize_params(&c, &eta);
    let lanes = 64;
    let fill = |ids: &[VarId]| -> Vec<f64> {
        ids.iter()
            .flat_map(|v| {
                let var = c.var(*v);
                let swept = var.name.ends_with("/eta");
                (0..lanes).map(move |l| var.value + if swept { 0.1 * l as f64 } else { 0.0 })
            })
            .collect()
    };
    let (y0, p, u) = (fill(&layout.states), fill(&layout.params), fill(&layout.inputs));
    for backend in kit.compiled_backends() {
        let generic = kit.kernel(&c, backend, Precision::F64);
        let specialized = kit.kernel(&special, backend, Precision::F64);
        assert_eq!(specialized.layout(), generic.layout(), "layout unchanged");
        let mut finals = Vec::new();
        for k in [&generic, &specialized] {
            let mut y = y0.clone();
            let mut ctx = KernelCtx::default();
            let run = StepRun {
                k,
                tab: &Tableau::rk4(),
                lanes,
                nsteps: 500,
                t0: 0.0,
                dt: 1e-3,
            };
            assert!(fused(run, &mut y, [&p, &u], &mut ctx));
            finals.push(y);
        }
        for (g, s) in finals[0].iter().zip(&finals[1]) {
            // Folding is exact except that `/tau` was `·(1/tau)` per lane and is `/1` now:
            // an ulp per step at most.
            assert!(close(*g, *s, 1e-12, 0.0), "{backend:?}: {g:e} vs {s:e}");
        }
        assert!(finals[0] != y0, "{backend:?}: the state moved");
    }
}
