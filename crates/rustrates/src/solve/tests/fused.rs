//! The compiled back ends' fused steppers and solver hooks against the solver's own stepping:
//! the same numbers, divergence marked at the exact step, the same samples recorded.

use super::*;

#[test]
fn fused_c_path_matches_reference_stepping() {
    // The C back end integrates stretches between samples itself (Kernel::steps). Against the
    // reference kernel stepped here: 1e-12 relative (the back ends' agreement contract; the
    // arithmetic of a step is the same, only libm calls and hoisted divisions may round
    // differently), and lanes equal their single runs bit for bit.
    let (c, _) = test_models::reference_circuit();
    let kc = compile_c(&c);
    let kr = compile(&c, Precision::F64);
    let eta = slot_of(&c, "PC/qif_op/eta");
    let lanes = 3;
    let mut p = default_params(&c, lanes);
    p[eta * lanes..(eta + 1) * lanes].copy_from_slice(&[-5.0, 0.0, 4.0]);
    let outputs = [out(&c, "PC/qif_op/r"), out(&c, "IIN/qif_op/r_in")];
    for method in [Method::Euler, Method::Rk4] {
        let config = SimConfig::new(method, 2.0, 1e-3, Some(1e-2));
        let fused = simulate(&kc, &config, &[], &outputs, &p, &default_init(&c, lanes), lanes).expect("run");
        let stepped = simulate(&kr, &config, &[], &outputs, &p, &default_init(&c, lanes), lanes).expect("run");
        assert_eq!(fused.time, stepped.time);
        for (x, y) in fused.data.iter().zip(&stepped.data) {
            assert!((x - y).abs() <= 1e-12 * x.abs().max(1e-3), "{method:?}: {x} vs {y}");
        }
        assert_lanes_equal_single_runs(&fused, &kc, &c, (&config, &outputs), &p, 0..lanes);
    }
}

#[test]
fn fused_c_path_marks_divergence_at_the_exact_step() {
    // The stretch in which a lane diverges is replayed step by step: the mark equals the
    // stepwise reference path's, and the healthy lanes equal their single runs bit for bit.
    let c = blow_up();
    let kc = compile_c(&c);
    let kr = compile(&c, Precision::F64);
    let cs = [-1.0, 1.0, 0.25];
    let config = SimConfig::new(Method::Rk4, 1.5, 1e-3, Some(5e-2));
    let x = [out(&c, "n/op/x")];
    let fused = simulate(&kc, &config, &[], &x, &cs, &[1.0; 3], 3).expect("run");
    let stepped = simulate(&kr, &config, &[], &x, &cs, &[1.0; 3], 3).expect("run");
    assert_eq!(fused.status, stepped.status);
    assert!(matches!(fused.status[1], PointStatus::NonFinite { .. }));
    for l in [0, 2] {
        let one = simulate(&kc, &config, &[], &x, &[cs[l]], &[1.0], 1).expect("run");
        assert_bitwise_eq(fused.trace(0, l), one.trace(0, 0));
    }
    let n_ok = fused.time.iter().filter(|t| **t < 0.95).count();
    assert!(fused.trace(0, 1)[..n_ok].iter().all(|v| v.is_finite()));
    assert!(fused.trace(0, 1)[n_ok + 2..].iter().all(|v| v.is_nan()));
}

#[test]
fn fused_recording_takes_the_same_samples_as_solver_sampling() {
    // With only state outputs the fused back ends record the samples themselves, many per
    // call; an algebraic output makes the solver sample between calls of one sample stretch
    // each instead. Same steps, same arithmetic: the state columns must agree bit for bit,
    // over 3000 steps (several calls of ≤ 1024 steps), with a cutoff that falls inside a
    // call, for strides 1 and 7. Both also stay within 1e-12 relative of the reference
    // kernel stepped by the solver (the back ends' contract). 64 lanes: the block width the
    // back ends have constant-offset copies for; the first and last lane equal their
    // single-lane runs (the generic copies) bit for bit.
    let (c, _) = test_models::reference_circuit();
    let algebraic = c
        .vars
        .iter()
        .find(|v| v.kind == VarKind::Algebraic)
        .expect("the reference circuit has algebraics (its lowered edges)")
        .name
        .clone();
    let states = [out(&c, "PC/qif_op/r"), out(&c, "IIN/qif_op/v")];
    let mixed = [states[0].clone(), states[1].clone(), out(&c, &algebraic)];
    let eta = slot_of(&c, "PC/qif_op/eta");
    let lanes = 64;
    let mut p = default_params(&c, lanes);
    for l in 0..lanes {
        p[eta * lanes + l] = -5.0 + 10.0 * l as f64 / (lanes - 1) as f64;
    }
    let init = default_init(&c, lanes);
    let kr = compile(&c, Precision::F64);
    for kernel in [compile_c(&c), compile_jit(&c)] {
        for (method, dts) in [(Method::Euler, 1e-3), (Method::Euler, 7e-3), (Method::Rk4, 7e-3)] {
            let config = SimConfig {
                cutoff: 0.5,
                ..SimConfig::new(method, 3.0, 1e-3, Some(dts))
            };
            let recorded = simulate(&kernel, &config, &[], &states, &p, &init, lanes).expect("run");
            let sampled = simulate(&kernel, &config, &[], &mixed, &p, &init, lanes).expect("run");
            let stepped = simulate(&kr, &config, &[], &states, &p, &init, lanes).expect("run");
            let what = format!("{:?} {method:?} dts {dts}", kernel.backend());
            assert_eq!(recorded.time, sampled.time, "{what}");
            assert_eq!(recorded.time, stepped.time, "{what}");
            assert!(
                (recorded.time[0] - 0.5).abs() < 1e-12 * 0.5 + dts,
                "{what}: cutoff applied"
            );
            for o in 0..states.len() {
                for l in 0..lanes {
                    assert_bitwise_eq(recorded.trace(o, l), sampled.trace(o, l));
                    for (x, y) in recorded.trace(o, l).iter().zip(stepped.trace(o, l)) {
                        assert!((x - y).abs() <= 1e-12 * y.abs().max(1e-3), "{what}: {x} vs {y}");
                    }
                }
            }
            assert_lanes_equal_single_runs(&recorded, &kernel, &c, (&config, &states), &p, [0, lanes - 1]);
        }
    }
}

#[test]
fn fused_recording_keeps_diverged_lanes_nan_in_later_calls() {
    // x' = c·x², x(0) = 1 blows up at t = 1/c. With c = 1 the lane diverges near step 1000,
    // inside the first fused call (1024 steps at stride 1); the call is replayed step by step,
    // and the calls after it record the frozen lane as NaN (the bits `f64::NAN` has, like the
    // solver's own sampling) while the other lanes equal their single runs bit for bit. The
    // mark equals the one of the reference kernel stepped by the solver.
    let c = blow_up();
    let kr = compile(&c, Precision::F64);
    let cs = [-1.0, 1.0, 0.25];
    let config = SimConfig::new(Method::Rk4, 3.0, 1e-3, Some(1e-3));
    let x = [out(&c, "n/op/x")];
    let stepped = simulate(&kr, &config, &[], &x, &cs, &[1.0; 3], 3).expect("run");
    for kernel in [compile_c(&c), compile_jit(&c)] {
        let fused = simulate(&kernel, &config, &[], &x, &cs, &[1.0; 3], 3).expect("run");
        assert_eq!(fused.status, stepped.status, "{:?}", kernel.backend());
        let PointStatus::NonFinite { t } = fused.status[1] else {
            panic!("lane 1 not marked: {:?}", fused.status[1]);
        };
        let trace = fused.trace(0, 1);
        let first_nan = fused
            .time
            .iter()
            .position(|&s| s >= t - 1e-9)
            .expect("mark within the run");
        assert!(
            first_nan < 1024 && fused.time.len() > 2048,
            "diverges in the first of ≥ 3 calls"
        );
        assert!(trace[..first_nan].iter().all(|v| v.is_finite()));
        for v in &trace[first_nan..] {
            assert_eq!(v.to_bits(), f64::NAN.to_bits());
        }
        for l in [0, 2] {
            let one = simulate(&kernel, &config, &[], &x, &[cs[l]], &[1.0], 1).expect("run");
            assert_bitwise_eq(fused.trace(0, l), one.trace(0, 0));
        }
    }
}

#[test]
fn compiled_back_ends_through_solver_hooks_match_reference() {
    // Delays and noise reach the solver through KernelCtx hooks from generated code too: the
    // JIT and C kernels, stepped by every method, agree with the reference kernel to 1e-12
    // relative (the back ends' contract) on a delayed, noisy, time-dependent model.
    let mut b = Builder::new("hooks");
    let (x, np) = b.parameter_delayed_decay(0.3);
    let noise = b.c.add_expr(Expr::Randn);
    let s = b.k(0.1);
    let sn = b.mul(s, noise);
    let tt = b.c.add_expr(Expr::Time);
    let sin = b.call(crate::model::Func::Sin, vec![tt]);
    let r1 = b.add(np, sn);
    let rhs = b.add(r1, sin);
    b.ode(x, rhs);
    let c = b.c;
    let kr = compile(&c, Precision::F64);
    let kj = compile_jit(&c);
    let kc = compile_c(&c);
    let lanes = 3;
    let p = [0.3, 0.5, 0.7];
    let outputs = [out(&c, "n/op/x")];
    for method in [Method::Euler, Method::Rk4, Method::Rk45 { rtol: 1e-6, atol: 1e-9 }] {
        let config = SimConfig::new(method, 2.0, 1e-2, Some(5e-2));
        let want = simulate(&kr, &config, &[], &outputs, &p, &[1.0; 3], lanes).expect("run");
        for k in [&kj, &kc] {
            let got = simulate(k, &config, &[], &outputs, &p, &[1.0; 3], lanes).expect("run");
            for (x, y) in got.data.iter().zip(&want.data) {
                assert!(
                    (x - y).abs() <= 1e-12 * y.abs().max(1e-3),
                    "{:?} {method:?}: {x} vs {y}",
                    k.backend()
                );
            }
        }
    }
}
