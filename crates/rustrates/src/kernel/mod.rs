//! Stage 4: circuit IR → compiled right-hand side over blocks of lanes.
//!
//! Input: a lowered [`Circuit`] (edges already turned into assignments by
//! `model::passes`). Output: a [`Kernel`] that evaluates, for a block of `lanes` lanes laid
//! out structure-of-arrays (`x[slot * lanes + lane]`), every algebraic variable and every
//! state derivative. Parameters, initial values and inputs are runtime data: changing them
//! never recompiles. Back ends: `reference` (tree-walking oracle), `jit` (Cranelift), `c`
//! (system C compiler, cached shared library). All agree to 1e-12 relative.

use crate::model::{Circuit, Layout, Var};
pub use tableau::Tableau;

pub(crate) mod aligned;
pub mod auto;
#[cfg(test)]
mod backend_tests;
pub mod c;
mod coupling;
pub(crate) mod ffi;
pub mod jit;
pub mod mathfns;
#[cfg(test)]
mod net_tests;
pub mod precision;
pub mod reference;
pub mod ring;
pub mod tableau;
#[cfg(test)]
pub(crate) mod test_kit;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// C when the run is long enough to amortise its compile or its library is cached,
    /// otherwise the JIT.
    #[default]
    Auto,
    Reference,
    Jit,
    C,
}

impl Backend {
    /// Accepts rustrates' names and PyRates' backend names (`numpy`, `default`,
    /// `tensorflow`, `torch`, `fortran`, ... all mean `Auto`).
    pub fn parse(name: &str) -> Option<Backend> {
        Some(match name.to_ascii_lowercase().as_str() {
            "auto" | "numpy" | "default" | "tensorflow" | "torch" | "fortran" | "julia" | "cuda" => Backend::Auto,
            "reference" | "ref" | "interpreter" => Backend::Reference,
            "jit" | "cranelift" => Backend::Jit,
            "c" | "cc" | "native" => Backend::C,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    #[default]
    F64,
    F32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelOptions {
    pub backend: Backend,
    pub precision: Precision,
    /// Expected work (lanes × steps), used by `Auto` to choose between JIT and C.
    pub work_hint: f64,
    /// Where the C back end caches compiled libraries (default: the user cache directory).
    pub cache_dir: Option<std::path::PathBuf>,
    /// JIT only: every node's equations and every edge sum written out, no population loops
    /// and no couplings run by the engine (the code before population loops, kept to compare
    /// against: same values bit for bit). Also set by the environment variable
    /// `RUSTRATES_JIT_UNROLLED=1`, so a benchmark times both forms with one binary.
    pub jit_unrolled: bool,
}

impl KernelOptions {
    /// Whether the JIT writes everything out ([`KernelOptions::jit_unrolled`]).
    fn jit_unrolled(&self) -> bool {
        self.jit_unrolled || std::env::var_os("RUSTRATES_JIT_UNROLLED").is_some_and(|v| v == "1")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "the C back end needs a C compiler: `{compiler}` could not be run ({reason}); install gcc or use backend 'jit'"
    )]
    NoCompiler { compiler: String, reason: String },
    #[error("the C compiler failed on the generated kernel (exit {status}):\n{stderr}")]
    CompileFailed { status: i32, stderr: String },
    #[error("could not load compiled kernel {path}: {reason}")]
    LoadFailed { path: String, reason: String },
    #[error("Cranelift code generation failed: {reason}")]
    Codegen { reason: String },
    #[error("the circuit still has {count} edge(s): run model::passes::lower_edges before compiling")]
    NotLowered { count: usize },
    #[error("kernel cache I/O at {path}: {source}")]
    CacheIo { path: String, source: std::io::Error },
}

/// Per-block state that kernels reach through for delayed values and noise (filled in by
/// the solver; opaque to generated code, which calls back into Rust with it).
#[derive(Debug, Default)]
pub struct KernelCtx {
    /// First global grid-point index of the block (noise streams are seeded per point).
    pub first_point: usize,
    /// Answers `past(x, d)`: the value of variable `var` (a [`crate::model::VarId`] index) in
    /// lane `lane` of the block at time `t - delay`, where `t` is the time of the current
    /// evaluation. `None`: every delayed read yields NaN.
    pub past: Option<PastHook>,
    /// Answers `randn()`: a standard normal sample for noise source `source` (the
    /// [`crate::model::ExprId`] index of the `Randn` node) in lane `lane`. `None`: NaN.
    pub randn: Option<RandnHook>,
    /// The solver's own state for its hooks (delay buffers, random streams); kernels never
    /// touch it.
    pub data: Option<Box<dyn std::any::Any + Send>>,
    /// Delay history the network loops of the C back end and the JIT's engine couplings read
    /// directly (fixed-step runs of a kernel with [`Kernel::delay_ring_span`]); `None`:
    /// delayed reads go through `past`.
    pub ring: Option<ring::DelayRing>,
}

/// `past(ctx, var, lane, t, delay) -> value` (see [`KernelCtx::past`]). Must not panic: it is
/// called from generated code, where an unwinding panic aborts the process.
pub type PastHook = fn(&mut KernelCtx, u32, usize, f64, f64) -> f64;
/// `randn(ctx, source, lane) -> sample` (see [`KernelCtx::randn`]). Must not panic.
pub type RandnHook = fn(&mut KernelCtx, u32, usize) -> f64;

/// One evaluation's buffers, all structure-of-arrays with stride `lanes`, in the kernel's
/// precision `R` (`f64`, or `f32` for [`Precision::F32`]); `t` stays `f64`.
pub struct RhsArgs<'a, R = f64> {
    pub t: f64,
    pub lanes: usize,
    pub y: &'a [R],
    pub p: &'a [R],
    pub u: &'a [R],
    pub dy: &'a mut [R],
    pub a: &'a mut [R],
    pub ctx: &'a mut KernelCtx,
}

/// One evaluation's buffers in single precision.
pub type RhsArgsF32<'a> = RhsArgs<'a, f32>;

/// Arguments of [`Kernel::steps`]: advance a block `nsteps` fixed steps in place.
pub struct StepsArgs<'a> {
    pub lanes: usize,
    pub nsteps: usize,
    /// Time at the start of the first step; step `s` starts at `t0 + s·dt`.
    pub t0: f64,
    pub dt: f64,
    pub tableau: &'a Tableau,
    /// States, advanced in place.
    pub y: &'a mut [f64],
    pub p: &'a [f64],
    /// Inputs, held constant over all `nsteps` steps.
    pub u: &'a [f64],
    /// Algebraics; contents unspecified afterwards (evaluate `rhs` where they are needed).
    pub a: &'a mut [f64],
    /// Scratch, grown by the kernel as needed; reuse it across calls.
    pub work: &'a mut Vec<f64>,
    pub ctx: &'a mut KernelCtx,
    /// States the stepper records on the way, so that a stretch of many samples runs in one
    /// call; `None`: none.
    pub samples: Option<StepSamples<'a>>,
}

/// Samples a fused stepper takes itself (see [`StepsArgs::samples`]): sample `k` is the state
/// after `first + k·every` steps of the call, for `k < count`; `first + (count − 1)·every`
/// must not exceed `nsteps`.
pub struct StepSamples<'a> {
    /// State slots recorded, in output order.
    pub slots: &'a [u32],
    pub first: usize,
    pub every: usize,
    pub count: usize,
    /// `out[(k · slots.len() + o) · lanes + lane]`; at least `count · slots.len() · lanes` long.
    pub out: &'a mut [f64],
}

impl StepSamples<'_> {
    /// Panics when the request would make generated code write out of bounds: a programming
    /// error of the caller, not bad input.
    fn check(&self, lanes: usize, nsteps: usize, states: usize) {
        assert!(self.every >= 1, "StepSamples: every must be at least 1");
        if self.count > 0 {
            let last = (self.count - 1)
                .checked_mul(self.every)
                .and_then(|x| x.checked_add(self.first));
            assert!(
                last.is_some_and(|l| l <= nsteps),
                "StepSamples: sample {} after {} steps lies beyond the call's {nsteps} steps",
                self.count - 1,
                last.map_or("too many".into(), |l| l.to_string())
            );
        }
        assert!(
            self.slots.iter().all(|&s| (s as usize) < states),
            "StepSamples: slot out of range ({states} states)"
        );
        let need = self
            .count
            .checked_mul(self.slots.len())
            .and_then(|x| x.checked_mul(lanes));
        assert!(
            need.is_some_and(|n| self.out.len() >= n),
            "StepSamples: out holds {} values, {} samples × {} slots × {lanes} lanes needed",
            self.out.len(),
            self.count,
            self.slots.len()
        );
    }
}

enum KernelImpl {
    Reference(reference::ReferenceKernel),
    Jit(jit::JitKernel),
    C(c::CKernel),
}

/// A compiled right-hand side. Cheap to share across threads (`Sync`).
pub struct Kernel {
    layout: Layout,
    /// The compiled circuit: the solver reads input defaults, names for its messages, and
    /// which variables are read with a delay.
    circuit: Box<Circuit>,
    backend: Backend,
    precision: Precision,
    imp: KernelImpl,
    /// Couplings the engine runs before `imp` (see [`coupling`]).
    engine: Option<coupling::EngineCouplings>,
}

/// How many kernels [`Kernel::compile_shared`] keeps: the last few circuits a process ran
/// (a network's kernel holds its weights, so not more).
const SHARED_KERNELS: usize = 2;

/// Kernels compiled by [`Kernel::compile_shared`], with the circuit and options each was
/// compiled from, oldest first.
type SharedKernels = Vec<(Circuit, KernelOptions, std::sync::Arc<Kernel>)>;

static SHARED: std::sync::Mutex<SharedKernels> = std::sync::Mutex::new(Vec::new());

impl Kernel {
    /// [`Kernel::compile`], reusing the kernel of an equal circuit compiled with equal
    /// options by an earlier call in this process (a sweep run again, a refine pass): the
    /// network plan, the C source, its hash and the library load, or the JIT's code
    /// generation, happen once. Equality is the whole circuit's (values included), so a
    /// reused kernel is the one a compile would build.
    pub fn compile_shared(circuit: &Circuit, opts: &KernelOptions) -> Result<std::sync::Arc<Kernel>, KernelError> {
        if let Ok(shared) = SHARED.lock() {
            if let Some((_, _, k)) = shared.iter().find(|(c, o, _)| o == opts && c == circuit) {
                return Ok(k.clone());
            }
        }
        let kernel = std::sync::Arc::new(Kernel::compile(circuit, opts)?);
        if let Ok(mut shared) = SHARED.lock() {
            if shared.len() >= SHARED_KERNELS {
                shared.remove(0);
            }
            shared.push((circuit.clone(), opts.clone(), kernel.clone()));
        }
        Ok(kernel)
    }

    pub fn compile(circuit: &Circuit, opts: &KernelOptions) -> Result<Kernel, KernelError> {
        if !circuit.edges.is_empty() {
            return Err(KernelError::NotLowered {
                count: circuit.edges.len(),
            });
        }
        if circuit.couplings.iter().any(|cp| !cp.lowered) {
            return Err(KernelError::NotLowered {
                count: circuit.couplings.iter().map(|cp| cp.len()).sum(),
            });
        }
        let (backend, c_build) = match opts.backend {
            Backend::Auto => auto::auto_resolve(circuit, opts),
            b => (b, None),
        };
        // Kept couplings run in the C back end's network loops (which write the sums out
        // themselves when the circuit is not a network); for the other back ends the engine
        // runs them before the compiled right-hand side (`coupling`), or, when it cannot,
        // the sums are written into the assignments term by term. Same results either way.
        // The JIT has the engine run the edge sums of a network written out in the equations
        // too (an edge list), so that its node equations compile as population loops.
        let unrolled = backend == Backend::Jit && opts.jit_unrolled();
        let mut rewritten = None;
        let mut engine = None;
        if !circuit.couplings.is_empty() && backend != Backend::C {
            rewritten = Some(match coupling::prepare(circuit).filter(|_| !unrolled) {
                Some((c, e)) => {
                    engine = Some(e);
                    c
                }
                None => crate::model::passes::expand_couplings(circuit),
            });
        }
        // The circuit is planned as a network once: that plan finds the edge sums the engine
        // can run, and, when there are none, is the population loops' plan too.
        let mut planned = None;
        if backend == Backend::Jit && !unrolled {
            let current = rewritten.as_ref().unwrap_or(circuit);
            let net = crate::model::network::plan(current);
            match net.as_ref().ok().and_then(|n| coupling::prepare_edge_sums(current, n)) {
                Some((c, e)) => {
                    engine = Some(match engine {
                        Some(kept) => kept.and(e),
                        None => e,
                    });
                    rewritten = Some(c);
                }
                None => planned = Some(net),
            }
        }
        let compiled = rewritten.as_ref().unwrap_or(circuit);
        let imp = match (backend, c_build) {
            (Backend::C, Some(build)) => KernelImpl::C(c::CKernel::from_build(compiled, build)?),
            (Backend::C, None) => KernelImpl::C(c::CKernel::new(compiled, opts)?),
            // With the couplings run by the engine, a network's node equations are
            // independent per node: the JIT compiles them as population loops.
            (Backend::Jit, _) if engine.is_some() => {
                KernelImpl::Jit(jit::JitKernel::with_population_loops(compiled, opts, planned)?)
            }
            (Backend::Jit, _) => KernelImpl::Jit(jit::JitKernel::new(compiled, opts)?),
            (Backend::Reference | Backend::Auto, _) => KernelImpl::Reference(reference::ReferenceKernel::new(compiled)),
        };
        let layout = compiled.layout();
        // The rewritten circuit is moved in, not copied (a copy of a 1,000-node circuit and
        // its drop cost as much as compiling its population loops).
        let circuit = Box::new(rewritten.unwrap_or_else(|| circuit.clone()));
        Ok(Kernel {
            layout,
            circuit,
            backend,
            precision: opts.precision,
            imp,
            engine,
        })
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    /// The circuit this kernel was compiled from.
    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }
    /// The compiled circuit's variables, indexed by `VarId`.
    pub fn vars(&self) -> &[Var] {
        &self.circuit.vars
    }
    /// The back end actually used (`Auto` resolved).
    pub fn backend(&self) -> Backend {
        self.backend
    }
    pub fn precision(&self) -> Precision {
        self.precision
    }
    /// Whether the kernel runs loops over the populations of a network (see
    /// [`crate::model::network`]) rather than one copy of the equations per node: the C back
    /// end's network loops, or the JIT's population loops (node equations only, the
    /// couplings run by the engine). The reference evaluator always runs the unrolled code.
    pub fn is_network(&self) -> bool {
        match &self.imp {
            KernelImpl::C(k) => k.is_network(),
            KernelImpl::Jit(k) => k.is_network(),
            KernelImpl::Reference(_) => false,
        }
    }
    /// Whether the engine runs the circuit's couplings before the compiled right-hand side
    /// (reference and JIT kernels of a circuit with kept couplings of states, no delays).
    pub fn runs_couplings(&self) -> bool {
        self.engine.is_some()
    }
    /// The largest delay of a kernel whose loops read a [`ring::DelayRing`] when the context
    /// holds one (the C back end's network loops with delays, the JIT's engine couplings with
    /// delays); `None` otherwise.
    pub fn delay_ring_span(&self) -> Option<f64> {
        match (&self.imp, &self.engine) {
            (KernelImpl::C(k), _) => k.delay_ring_span(),
            (_, Some(engine)) => engine.ring_span(),
            (_, None) => None,
        }
    }
    /// The delays of the delayed terms the ring-reading loops index (empty without a ring).
    pub fn delay_ring_terms(&self) -> &[f64] {
        match (&self.imp, &self.engine) {
            (KernelImpl::C(k), _) => k.delay_ring_terms(),
            (_, Some(engine)) => engine.ring_terms(),
            (_, None) => &[],
        }
    }
    /// The delayed terms whose delays differ per lane, as the ring-reading loops index them:
    /// (length, the velocity's parameter slot), or (delay, `u32::MAX`) for a constant one.
    pub fn delay_ring_lane_terms(&self) -> &[(f64, u32)] {
        match (&self.imp, &self.engine) {
            (KernelImpl::C(k), _) => k.delay_ring_lane_terms(),
            (_, Some(engine)) => engine.ring_lane_terms(),
            (_, None) => &[],
        }
    }
    /// Evaluate all algebraics (into `a`) and derivatives (into `dy`) for a block.
    pub fn rhs(&self, args: RhsArgs<'_>) {
        self.rhs_with_couplings(args, Self::rhs_compiled);
    }
    /// Single-precision evaluation; the kernel must have been compiled with `Precision::F32`.
    pub fn rhs_f32(&self, args: RhsArgsF32<'_>) {
        self.rhs_with_couplings(args, Self::rhs_f32_compiled);
    }
    /// `compiled` on `args`, its inputs first completed by the engine's couplings when the
    /// kernel has any. `compiled` is a function item: each precision gets its own copy, with
    /// the back end's call made directly.
    fn rhs_with_couplings<T: coupling::Lane>(&self, args: RhsArgs<'_, T>, compiled: impl Fn(&Self, RhsArgs<'_, T>)) {
        match &self.engine {
            Some(engine) => {
                let RhsArgs {
                    t,
                    lanes,
                    y,
                    p,
                    u,
                    dy,
                    a,
                    ctx,
                } = args;
                engine.with_inputs(t, lanes, y, p, u, ctx, |u, ctx| {
                    compiled(
                        self,
                        RhsArgs {
                            t,
                            lanes,
                            y,
                            p,
                            u,
                            dy,
                            a,
                            ctx,
                        },
                    )
                });
            }
            None => compiled(self, args),
        }
    }
    fn rhs_compiled(&self, args: RhsArgs<'_>) {
        match &self.imp {
            KernelImpl::Reference(k) => k.rhs(args),
            KernelImpl::Jit(k) => k.rhs(args),
            KernelImpl::C(k) => k.rhs(args),
        }
    }
    fn rhs_f32_compiled(&self, args: RhsArgsF32<'_>) {
        match &self.imp {
            KernelImpl::Reference(k) => k.rhs_f32(args),
            KernelImpl::Jit(k) => k.rhs_f32(args),
            KernelImpl::C(k) => k.rhs_f32(args),
        }
    }
    /// Fused fixed-step integration: advance `args.y` by `args.nsteps` steps of the explicit
    /// Runge–Kutta method `args.tableau`, inputs held constant, without returning to Rust
    /// between steps. Returns `false` (and touches nothing) when this back end has no fused
    /// path or the circuit needs per-step solver work (`Past`, `Randn`); the solver then
    /// steps with [`Kernel::rhs`]. Within 1e-12 relative of stepping with `rhs`; the result
    /// is the same for a lane whatever the block size, and whether a stretch of steps is
    /// taken in one call or several (step `s` of a call starts at exactly `t0 + s·dt`, so a
    /// caller replaying part of a call from its step `s` passes `t0 + s·dt`).
    ///
    /// With [`StepsArgs::samples`], the requested states are copied out at the requested
    /// steps inside the call (the whole run between two checks of the solver is one call).
    pub fn steps(&self, args: StepsArgs<'_>) -> bool {
        // The engine's couplings run between stages, outside compiled code.
        if self.engine.is_some() {
            return false;
        }
        match &self.imp {
            KernelImpl::C(k) => k.steps(args),
            KernelImpl::Jit(k) => k.steps(args),
            KernelImpl::Reference(_) => false,
        }
    }
}
