//! JIT-only kernel tests: its exact-arithmetic stepping mode, declined tableaux, code
//! generation errors and its benchmark. What every back end must do is tested once for all
//! in `kernel::backend_tests`.

use super::*;
use crate::kernel::precision::Real;
use crate::kernel::test_kit::{
    add_var, fused, generic_buffers, push_assign, qif_buffers, qif_reference_circuit, same_bits, step_with_rhs,
    stepper_circuits, tableaux, Kit, StepRun,
};
use crate::kernel::{Backend, Kernel, KernelImpl, Tableau};
use crate::model::{Assign, Edge, ExprId, Func, VarKind};

/// A JIT `Kernel` whose fused stepper does exactly the solver's arithmetic (no reciprocals).
fn exact_mode(kit: &Kit, c: &Circuit) -> Kernel {
    let mut k = kit.kernel(c, Backend::Jit, Precision::F64);
    match &mut k.imp {
        KernelImpl::Jit(j) => j.reciprocal = false,
        _ => unreachable!("compiled for the JIT"),
    }
    k
}

/// Timing, not a test: `cargo test --release -p rustrates --lib jit_bench -- --ignored
/// --nocapture`. 10,000 lanes × 5,000 Euler steps of the QIF reference circuit, in
/// blocks of `B` lanes (the block's state stays in cache, as in `montbrio_grid.c`).
#[test]
#[ignore = "benchmark; run explicitly in release mode"]
fn jit_bench_qif_ns_per_lane_step() {
    let euler = Tableau::euler();
    for specialize in [false, true] {
        let c = qif_reference_circuit(specialize);
        let layout = c.layout();
        let t0 = std::time::Instant::now();
        let k = Kernel::compile(
            &c,
            &KernelOptions {
                backend: Backend::Jit,
                ..KernelOptions::default()
            },
        )
        .expect("the QIF circuit compiles");
        eprintln!(
            "constants specialised: {specialize}; compile: {:.2} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        let (total, steps, n, dt) = (10_000usize, 5_000usize, 100usize, 1e-4);
        for block in [64usize, 256, 1024, 10_000] {
            let (mut rhs_s, mut full_s, mut fused_s) = (0.0, 0.0, 0.0);
            let (mut check_rhs, mut check_fused) = (0.0, 0.0);
            let mut first = 0;
            while first < total {
                let lanes = block.min(total - first);
                let [y0, p, u] = qif_buffers(&c, &layout, lanes, first, n);
                let mut y = y0.clone();
                let mut dy = vec![0.0; y.len()];
                let mut a = vec![0.0; 2 * lanes];
                let mut ctx = KernelCtx::default();
                // Euler through rhs + the solver's update.
                let start = std::time::Instant::now();
                for step in 0..steps {
                    let t = step as f64 * dt;
                    f64::rhs(&k, t, lanes, &y, &p, &u, &mut dy, &mut a, &mut ctx);
                    for (yi, di) in y.iter_mut().zip(&dy) {
                        *yi += dt * di;
                    }
                }
                full_s += start.elapsed().as_secs_f64();
                check_rhs += y[..lanes].iter().sum::<f64>();
                // The rhs alone, on the final state (finite for this grid).
                let start = std::time::Instant::now();
                for step in 0..steps {
                    let t = step as f64 * dt;
                    f64::rhs(&k, t, lanes, &y, &p, &u, &mut dy, &mut a, &mut ctx);
                }
                rhs_s += start.elapsed().as_secs_f64();
                // Fused Euler, returning every 10 steps (the C program samples that often).
                let mut y = y0;
                let mut work = Vec::new();
                let start = std::time::Instant::now();
                for chunk in 0..steps / 10 {
                    let ok = k.steps(StepsArgs {
                        lanes,
                        nsteps: 10,
                        t0: (chunk * 10) as f64 * dt,
                        dt,
                        tableau: &euler,
                        y: &mut y,
                        p: &p,
                        u: &u,
                        a: &mut a,
                        work: &mut work,
                        ctx: &mut ctx,
                        samples: None,
                    });
                    assert!(ok);
                }
                fused_s += start.elapsed().as_secs_f64();
                check_fused += y[..lanes].iter().sum::<f64>();
                first += lanes;
            }
            let per = 1e9 / (total * steps) as f64;
            eprintln!(
                    "block {block:>5}: rhs {:.3} ns/lane-eval; Euler via rhs {:.3} ns/lane-step; fused Euler {:.3} ns/lane-step (Σ r_PC {check_rhs:.9e} / {check_fused:.9e})",
                    rhs_s * per,
                    full_s * per,
                    fused_s * per
                );
        }
    }
}

/// With reciprocals off, the fused stepper does exactly the solver's arithmetic on the
/// rhs's arithmetic: bit-identical states after 40 steps of Euler, Heun and RK4, in the
/// vector and the scalar loop (11 lanes), on every Past/Randn-free cross-check circuit.
#[test]
fn jit_steps_exact_mode_equal_rhs_stepping_bitwise() {
    let kit = Kit::new();
    for (name, c) in stepper_circuits() {
        let layout = c.layout();
        let k = exact_mode(&kit, &c);
        let lanes = 11;
        let [y0, p, u] = generic_buffers(&c, &layout, lanes);
        for tab in tableaux() {
            let (tname, tab) = (tab.name, &tab);
            let (t0, dt, nsteps) = (0.25, 1e-3, 40);
            let run = StepRun::new(&k, tab, lanes, nsteps, t0, dt);
            let mut want = y0.clone();
            step_with_rhs(run, &mut want, [&p, &u]);
            let mut got = y0.clone();
            let mut ctx = KernelCtx::default();
            assert!(fused(run, &mut got, [&p, &u], &mut ctx), "{name} {tname}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    same_bits(*g, *w),
                    "{name} {tname} y[{i}]: fused {g} vs rhs stepping {w}"
                );
            }
        }
    }
}

/// Beyond what every back end declines (`backend_tests`): the JIT's stepper also declines
/// single-precision kernels.
#[test]
fn jit_steps_declines_single_precision() {
    let kit = Kit::new();
    let qif = qif_reference_circuit(false);
    let k32 = kit.kernel(&qif, Backend::Jit, Precision::F32);
    crate::kernel::backend_tests::assert_declines(&k32, &qif, &Tableau::euler(), &mut KernelCtx::default(), "f32");
}

#[test]
fn jit_kernel_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<JitKernel>();
    check::<crate::kernel::Kernel>();
}

#[test]
fn jit_invalid_circuits_are_errors_not_panics() {
    let opts = KernelOptions::default();
    type Build = fn(&mut Circuit);
    let codegen_errors: [(&str, Build); 4] = [
        ("an algebraic read before its assignment", |c| {
            let a1 = add_var(c, "a1", VarKind::Algebraic, 0.0);
            let a2 = add_var(c, "a2", VarKind::Algebraic, 0.0);
            let r1 = c.add_expr(Expr::Var(a2));
            let r2 = c.add_expr(Expr::Const(1.0));
            c.assigns.push(Assign {
                var: a1,
                rhs: r1,
                span: None,
            });
            c.assigns.push(Assign {
                var: a2,
                rhs: r2,
                span: None,
            });
        }),
        ("a call of the wrong arity", |c| {
            let one = c.add_expr(Expr::Const(1.0));
            let call = c.add_expr(Expr::Call(Func::Max, vec![one]));
            push_assign(c, "a1", call);
        }),
        ("an expression cycle", |c| {
            c.exprs.push(Expr::Neg(ExprId(1)));
            c.exprs.push(Expr::Neg(ExprId(0)));
            push_assign(c, "a1", ExprId(0));
        }),
        ("a dangling expression id", |c| {
            push_assign(c, "a1", ExprId(9));
        }),
    ];
    for (what, build) in codegen_errors {
        let mut c = Circuit::default();
        build(&mut c);
        assert!(
            matches!(JitKernel::new(&c, &opts), Err(KernelError::Codegen { .. })),
            "{what}"
        );
    }
    // Edges not lowered.
    let mut c = Circuit::default();
    let s = add_var(&mut c, "s", VarKind::State, 0.0);
    c.edges.push(Edge {
        source_node: "a".into(),
        target_node: "b".into(),
        idx: 0,
        source: s,
        target: s,
        params: Vec::new(),
        span: None,
    });
    assert!(matches!(
        JitKernel::new(&c, &opts),
        Err(KernelError::NotLowered { count: 1 })
    ));
}

/// A noisy network's population loops compile the same body whatever N: the engine runs the
/// edge sums, and node `i`'s noise source comes from the table, not from a copy per node.
#[test]
fn noisy_network_loop_body_does_not_grow_with_n() {
    let sizes: Vec<usize> = [5, 40]
        .iter()
        .map(|&n| {
            let c = crate::model::network::testing::noisy(n);
            let planned = crate::model::network::plan(&c).expect("a network");
            let (c, _) = crate::kernel::coupling::prepare_edge_sums(&c, &planned).expect("the engine runs the sums");
            let net = loops::NetLoops::plan(&c, None).expect("population loops");
            assert_eq!(net.table.len(), n, "one noise source per node");
            net.body_exprs(&c)
        })
        .collect();
    assert_eq!(sizes[0], sizes[1]);
}
