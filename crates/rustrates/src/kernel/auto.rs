//! `Backend::Auto`: which back end a circuit and run size get. C when a compiler exists and
//! its library is cached or the compile is amortised by the run (and always for a network,
//! whose C loops run every coupling and step fused); otherwise the JIT, or the reference
//! evaluator while the JIT cannot build kernels.

use std::sync::OnceLock;

use super::c::CBuild;
use super::{Backend, KernelOptions};
use crate::model::Circuit;

/// Typical time to compile a kernel library (cc -O3 on the two-population QIF circuit: about
/// 0.3 s of CPU on this project's machines; larger circuits take longer).
pub const COMPILE_SECONDS: f64 = 0.3;
/// Largest share of the expected run time `Auto` lets a C compile take.
pub const MAX_COMPILE_SHARE: f64 = 0.1;
/// Cost model for the expected run time: seconds per lane-step per state variable.
pub const SECONDS_PER_LANE_STEP_STATE: f64 = 1e-9;
/// Largest circuit (in expressions) `Auto` hands to the C compiler when it is not a network
/// and its library is not cached: `cc -O3` on one function grows much faster than the
/// function (a swept conduction velocity at N = 68, 4,624 delayed terms written out, had not
/// compiled after 5 minutes; an N = 200 edge list written out, 42 MB of C, not after 15),
/// while the JIT takes such circuits in seconds (its single-pass register allocation from
/// the same size, `jit::LARGE_CIRCUIT_EXPRS`).
pub const C_COMPILE_MAX_EXPRS: usize = super::jit::LARGE_CIRCUIT_EXPRS;

/// Everything `Backend::Auto` decides on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AutoFacts {
    pub compiler: bool,
    pub cached: bool,
    pub jit_works: bool,
    /// Lanes × steps of the run.
    pub work_hint: f64,
    pub states: usize,
    /// Expressions of the circuit (the size of the C function to compile).
    pub exprs: usize,
}

/// The `Auto` rule: C when a compiler exists and either its library is cached or the compile
/// costs at most [`MAX_COMPILE_SHARE`] of the expected run and the circuit is at most
/// [`C_COMPILE_MAX_EXPRS`] expressions; otherwise the JIT, or the reference evaluator while
/// the JIT back end cannot build kernels.
pub fn decide(f: AutoFacts) -> Backend {
    let expected_run = f.work_hint.max(0.0) * f.states.max(1) as f64 * SECONDS_PER_LANE_STEP_STATE;
    let long_enough = COMPILE_SECONDS <= MAX_COMPILE_SHARE * expected_run;
    let compile_bounded = f.exprs <= C_COMPILE_MAX_EXPRS;
    if f.compiler && (f.cached || (long_enough && compile_bounded)) {
        Backend::C
    } else if f.jit_works {
        Backend::Jit
    } else {
        Backend::Reference
    }
}

/// Whether the JIT back end builds kernels at all (probed once on a one-variable circuit).
pub(crate) fn jit_works(opts: &KernelOptions) -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        use crate::model::{Expr, Ode, Var, VarKind};
        let mut c = Circuit {
            name: "probe".into(),
            ..Circuit::default()
        };
        let x = c.add_var(Var {
            name: "n/op/x".into(),
            kind: VarKind::State,
            value: 1.0,
            node: Some("n".into()),
            external_input: None,
            span: None,
        });
        let e = c.add_expr(Expr::Var(x));
        let rhs = c.add_expr(Expr::Neg(e));
        c.odes.push(Ode {
            var: x,
            rhs,
            span: None,
        });
        let probe = KernelOptions {
            backend: Backend::Jit,
            cache_dir: None,
            ..opts.clone()
        };
        super::jit::JitKernel::new(&c, &probe).is_ok()
    })
}

/// What `Backend::Auto` resolves to for this circuit and run size.
pub fn auto_choice(circuit: &Circuit, opts: &KernelOptions) -> Backend {
    auto_resolve(circuit, opts).0
}

/// [`auto_choice`], plus the C build it looked up when that is the choice, so the kernel is
/// built without emitting and hashing its source again. The JIT is probed only when C is not
/// chosen (its probe costs a Cranelift compile in every process).
pub(crate) fn auto_resolve(circuit: &Circuit, opts: &KernelOptions) -> (Backend, Option<CBuild>) {
    let build = CBuild::new(circuit, opts).ok();
    // A network runs fastest as the C loops: the JIT runs only a `connectivity:` block of
    // current values as population loops (the engine's product, 3–5× the C program), and
    // compiles any other coupling one term per edge (code growing with the edges; 53 s to
    // first result at N = 200 all-to-all); the cost model below counts states, not the
    // coupling's N² terms per step.
    if build.as_ref().is_some_and(CBuild::is_network) {
        return (Backend::C, build);
    }
    let mut facts = AutoFacts {
        compiler: build.is_some(),
        cached: build.as_ref().is_some_and(CBuild::is_cached),
        jit_works: true,
        work_hint: opts.work_hint,
        states: circuit.odes.len(),
        exprs: circuit.exprs.len(),
    };
    if decide(facts) == Backend::C {
        return (Backend::C, build);
    }
    facts.jit_works = jit_works(opts);
    (decide(facts), None)
}
