//! C back end: emit C for the kernel, compile it with the system compiler, cache and load it.
//!
//! The generated library exports three functions (all arrays `x[slot * lanes + lane]`):
//! - `rustrates_rhs(lanes, t, y, p, u, dy, a, ctx)` and `rustrates_rhs_f32` (float arrays,
//!   `t` stays double): algebraics into `a`, derivatives into `dy`;
//! - `rustrates_steps(lanes, nsteps, t0, dt, y, p, u, a, ctx, stages, A, B, C, work)`: advance
//!   `y` by `nsteps` explicit Runge–Kutta steps with inputs held constant, expressions that
//!   depend only on parameters and inputs computed once per call, and a fused loop for Euler.
//!   Reached through [`crate::kernel::Kernel::steps`].
//!
//! `Past` and `Randn` call `ctx->past` / `ctx->randn` (the start of the `#[repr(C)]`
//! [`KernelCtx`]); a missing callback yields NaN. Because every sub-expression is computed
//! unconditionally, a `Randn` or `Past` inside one branch of a `Select` is called whichever
//! branch is taken. Circuits with `Past` or `Randn` have no fused stepper (the solver must
//! update delay buffers and draw noise between steps).

mod build;
mod emit;

use std::ffi::{c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{Backend, KernelCtx, KernelError, KernelOptions, RhsArgs, RhsArgsF32, StepsArgs};
use crate::model::Circuit;

type RhsF64 = unsafe extern "C" fn(usize, f64, *const f64, *const f64, *const f64, *mut f64, *mut f64, *mut c_void);
type RhsF32 = unsafe extern "C" fn(usize, f64, *const f32, *const f32, *const f32, *mut f32, *mut f32, *mut c_void);
type StepsFn = unsafe extern "C" fn(
    usize,
    usize,
    f64,
    f64,
    *mut f64,
    *const f64,
    *const f64,
    *mut f64,
    *mut c_void,
    c_int,
    *const f64,
    *const f64,
    *const f64,
    *mut f64,
);

/// In the fused stepper, divide by a step-invariant divisor (e.g. `/tau`) as a multiplication
/// by its reciprocal computed once per call. Costs at most an ulp per division against `rhs`;
/// divisions dominate the cost of typical neural-mass right-hand sides otherwise.
const RECIPROCAL_DIVISORS: bool = true;

/// A compiled and loaded kernel library.
pub struct CKernel {
    rhs64: RhsF64,
    rhs32: RhsF32,
    steps: StepsFn,
    states: usize,
    params: usize,
    inputs: usize,
    algebraics: usize,
    hoisted: usize,
    uses_callbacks: bool,
    path: PathBuf,
    compiled: bool,
    /// Keeps the code behind the function pointers mapped; dropped last.
    _lib: libloading::Library,
}

struct Loaded {
    rhs64: RhsF64,
    rhs32: RhsF32,
    steps: StepsFn,
    lib: libloading::Library,
}

fn load(path: &Path) -> Result<Loaded, KernelError> {
    let fail =
        |e: libloading::Error| KernelError::LoadFailed { path: path.display().to_string(), reason: e.to_string() };
    // SAFETY: the library is one this module generated and compiled (its only code is the
    // three kernel functions and static helpers; no initialisers run on load).
    let lib = unsafe { libloading::Library::new(path) }.map_err(fail)?;
    // SAFETY: the symbol types match the C prototypes emitted by `emit::emit`; the pointers
    // are only used while `lib` is alive (both live in the same `CKernel`).
    unsafe {
        let rhs64 = *lib.get::<RhsF64>(b"rustrates_rhs\0").map_err(fail)?;
        let rhs32 = *lib.get::<RhsF32>(b"rustrates_rhs_f32\0").map_err(fail)?;
        let steps = *lib.get::<StepsFn>(b"rustrates_steps\0").map_err(fail)?;
        Ok(Loaded { rhs64, rhs32, steps, lib })
    }
}

impl CKernel {
    pub fn new(circuit: &Circuit, opts: &KernelOptions) -> Result<Self, KernelError> {
        if !circuit.edges.is_empty() {
            return Err(KernelError::NotLowered { count: circuit.edges.len() });
        }
        let source = emit::emit(circuit, RECIPROCAL_DIVISORS);
        let cmd = build::compiler_command();
        let version = build::compiler_version(&cmd)?;
        let key = build::cache_key(&source.text, &cmd, &version);
        let path = build::library_path(&build::cache_dir(opts), &key);
        let mut compiled = false;
        if !path.exists() {
            build::compile(&source.text, &cmd, &path)?;
            compiled = true;
        }
        let loaded = match load(&path) {
            Ok(l) => l,
            // A damaged cache entry (e.g. a disk filled up): rebuild it once.
            Err(e) if !compiled => {
                log::warn!("{e}; recompiling");
                build::compile(&source.text, &cmd, &path)?;
                compiled = true;
                load(&path)?
            }
            Err(e) => return Err(e),
        };
        let layout = circuit.layout();
        Ok(CKernel {
            rhs64: loaded.rhs64,
            rhs32: loaded.rhs32,
            steps: loaded.steps,
            states: layout.states.len(),
            params: layout.params.len(),
            inputs: layout.inputs.len(),
            algebraics: layout.algebraics.len(),
            hoisted: source.hoisted,
            uses_callbacks: source.uses_callbacks,
            path,
            compiled,
            _lib: loaded.lib,
        })
    }

    /// The loaded library file in the cache.
    pub fn library_path(&self) -> &Path {
        &self.path
    }

    /// Whether building this kernel ran the compiler (false: loaded from the cache).
    pub fn compiled_now(&self) -> bool {
        self.compiled
    }

    /// Buffers too short for the layout would make the C code read or write out of bounds:
    /// a programming error of the caller, so it panics rather than risk memory corruption.
    fn check(&self, lanes: usize, y: usize, p: usize, u: usize, dy: usize, a: usize) {
        assert!(
            y >= self.states * lanes
                && p >= self.params * lanes
                && u >= self.inputs * lanes
                && dy >= self.states * lanes
                && a >= self.algebraics * lanes,
            "C kernel buffers too short for {lanes} lanes (states {}, params {}, inputs {}, algebraics {})",
            self.states,
            self.params,
            self.inputs,
            self.algebraics
        );
    }

    pub fn rhs(&self, args: RhsArgs<'_>) {
        let RhsArgs { t, lanes, y, p, u, dy, a, ctx } = args;
        self.check(lanes, y.len(), p.len(), u.len(), dy.len(), a.len());
        if lanes == 0 {
            return;
        }
        let ctx: *mut KernelCtx = ctx;
        // SAFETY: lengths checked above; the C function touches exactly `slots × lanes`
        // elements of each array, and `ctx` points to a live `#[repr(C)] KernelCtx`.
        unsafe {
            (self.rhs64)(lanes, t, y.as_ptr(), p.as_ptr(), u.as_ptr(), dy.as_mut_ptr(), a.as_mut_ptr(), ctx.cast());
        }
    }

    pub fn rhs_f32(&self, args: RhsArgsF32<'_>) {
        let RhsArgsF32 { t, lanes, y, p, u, dy, a, ctx } = args;
        self.check(lanes, y.len(), p.len(), u.len(), dy.len(), a.len());
        if lanes == 0 {
            return;
        }
        let ctx: *mut KernelCtx = ctx;
        // SAFETY: as in `rhs`.
        unsafe {
            (self.rhs32)(lanes, t, y.as_ptr(), p.as_ptr(), u.as_ptr(), dy.as_mut_ptr(), a.as_mut_ptr(), ctx.cast());
        }
    }

    /// See [`crate::kernel::Kernel::steps`].
    pub fn steps(&self, args: StepsArgs<'_>) -> bool {
        let StepsArgs { lanes, nsteps, t0, dt, tableau, y, p, u, a, work, ctx } = args;
        let stages = tableau.b.len();
        if self.uses_callbacks
            || stages == 0
            || tableau.a.len() != stages * stages
            || tableau.c.len() != stages
            || c_int::try_from(stages).is_err()
        {
            return false;
        }
        self.check(lanes, y.len(), p.len(), u.len(), y.len(), a.len());
        if lanes == 0 || nsteps == 0 {
            return true;
        }
        let need = (self.hoisted + (stages + 1) * self.states) * lanes;
        if work.len() < need {
            work.resize(need, 0.0);
        }
        let ctx: *mut KernelCtx = ctx;
        // SAFETY: array lengths checked above, `work` holds the hoisted values, stage
        // derivatives and a stage state (`need`), the tableau slices have the lengths the C
        // code indexes (`stages²`, `stages`, `stages`).
        unsafe {
            (self.steps)(
                lanes,
                nsteps,
                t0,
                dt,
                y.as_mut_ptr(),
                p.as_ptr(),
                u.as_ptr(),
                a.as_mut_ptr(),
                ctx.cast(),
                stages as c_int,
                tableau.a.as_ptr(),
                tableau.b.as_ptr(),
                tableau.c.as_ptr(),
                work.as_mut_ptr(),
            );
        }
        true
    }
}

/// Whether a C compiler (`$CC` or `cc`) can be run.
pub fn compiler_available() -> bool {
    build::compiler_version(&build::compiler_command()).is_ok()
}

/// Whether the library for this circuit is already in the cache (no compile needed).
pub fn is_cached(circuit: &Circuit, opts: &KernelOptions) -> bool {
    let cmd = build::compiler_command();
    let Ok(version) = build::compiler_version(&cmd) else {
        return false;
    };
    let source = emit::emit(circuit, RECIPROCAL_DIVISORS);
    let key = build::cache_key(&source.text, &cmd, &version);
    build::library_path(&build::cache_dir(opts), &key).exists()
}

/// Typical time to compile a kernel library (cc -O3 on a small circuit: 0.1–0.3 s).
pub const COMPILE_SECONDS: f64 = 0.2;
/// Largest share of the expected run time `Auto` lets a C compile take.
pub const MAX_COMPILE_SHARE: f64 = 0.1;
/// Cost model for the expected run time: seconds per lane-step per state variable.
pub const SECONDS_PER_LANE_STEP_STATE: f64 = 1e-9;

/// Everything `Backend::Auto` decides on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AutoFacts {
    pub compiler: bool,
    pub cached: bool,
    pub jit_works: bool,
    /// Lanes × steps of the run.
    pub work_hint: f64,
    pub states: usize,
}

/// The `Auto` rule: C when a compiler exists and either its library is cached or the compile
/// costs at most [`MAX_COMPILE_SHARE`] of the expected run; otherwise the JIT, or the
/// reference evaluator while the JIT back end cannot build kernels.
pub fn decide(f: AutoFacts) -> Backend {
    let expected_run = f.work_hint.max(0.0) * f.states.max(1) as f64 * SECONDS_PER_LANE_STEP_STATE;
    let long_enough = COMPILE_SECONDS <= MAX_COMPILE_SHARE * expected_run;
    if f.compiler && (f.cached || long_enough) {
        Backend::C
    } else if f.jit_works {
        Backend::Jit
    } else {
        Backend::Reference
    }
}

/// Whether the JIT back end builds kernels at all (probed once on a one-variable circuit).
fn jit_works(opts: &KernelOptions) -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        use crate::model::{Expr, Ode, Var, VarKind};
        let mut c = Circuit { name: "probe".into(), ..Circuit::default() };
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
        c.odes.push(Ode { var: x, rhs, span: None });
        let probe = KernelOptions { backend: Backend::Jit, cache_dir: None, ..opts.clone() };
        super::jit::JitKernel::new(&c, &probe).is_ok()
    })
}

/// What `Backend::Auto` resolves to for this circuit and run size.
pub fn auto_choice(circuit: &Circuit, opts: &KernelOptions) -> Backend {
    let compiler = compiler_available();
    let facts = AutoFacts {
        compiler,
        cached: compiler && is_cached(circuit, opts),
        jit_works: jit_works(opts),
        work_hint: opts.work_hint,
        states: circuit.odes.len(),
    };
    decide(facts)
}
