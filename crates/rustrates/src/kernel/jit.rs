//! Cranelift JIT back end: generated machine code looping over lanes with SIMD.
//!
//! The circuit is compiled once into one function per precision (see `codegen` for its
//! shape): `f64x2` (or `f32x4`) vectors in a main loop unrolled for instruction-level
//! parallelism, a scalar loop for the remaining lanes, transcendental functions and the
//! delay/noise hooks called out of line (`kernel::mathfns`), constant subexpressions folded
//! at compile time (`fold`). No compiler is needed at run time; compiling a small circuit
//! takes about a millisecond.
//!
//! [`JitKernel::with_population_loops`] compiles a network's node equations once per
//! population, as a loop over its nodes (`loops`), so the function does not grow with the
//! number of nodes.
//!
//! [`JitKernel::steps`] adds a fused fixed-step integrator per explicit tableau, compiled on
//! first use: parameter-only subexpressions and reciprocals of invariant divisors are
//! computed once per call, then the step loop runs around the lane loop.

mod codegen;
mod fold;
mod loops;

use std::sync::Mutex;

use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::default_libcall_names;

use super::ffi::Rows;
use super::Tableau;
use super::{mathfns, KernelCtx, KernelError, KernelOptions, Precision, RhsArgs, RhsArgsF32, StepsArgs};
use crate::model::{Circuit, Expr};

/// In the fused stepper, divide by step-invariant divisors (`/tau`) as a multiplication by
/// a reciprocal computed once per call: ≤ 1 ulp per division against stepping with `rhs`
/// (the contract of [`crate::kernel::Kernel::steps`] allows 1e-12 relative), and it removes
/// the divisions that otherwise dominate a neural-mass right-hand side. Same choice as the
/// C back end.
const RECIPROCAL_DIVISORS: bool = true;

/// Above this many expressions the register allocator is Cranelift's single-pass one:
/// the backtracking allocator grows faster than the function (78 % of a 3–4 s compile of a
/// 1,000-node network's equations, one function), the single-pass one compiles it in a
/// fraction of that at the cost of more spills. Allocation never changes a value.
pub const LARGE_CIRCUIT_EXPRS: usize = 10_000;

/// `fn(lanes, s0, nsteps, t0, dt, y, p, u, work, ctx, prologue)`: the fused stepper (see
/// `codegen::define_stepper`).
type StepFn = unsafe extern "C" fn(
    usize,
    usize,
    usize,
    f64,
    f64,
    *mut f64,
    *const f64,
    *const f64,
    *mut f64,
    *mut KernelCtx,
    usize,
);

/// Block width for which the fused stepper gets its own copy with the lane count, and so
/// every row offset, a constant (as the C back end's [`super::c::BLOCK_LANES`]).
const STEPPER_BLOCK: usize = super::c::BLOCK_LANES;

/// The JIT module and the steppers compiled into it so far (one per tableau and block width).
struct Code {
    module: Option<Box<JITModule>>,
    /// Per tableau: the stepper and the scratch rows per lane it needs.
    /// Per tableau and fixed lane count (`None`: any): the stepper and its scratch rows per lane.
    steppers: Vec<(Tableau, Option<usize>, StepFn, usize)>,
}

/// `fn(lanes, t, y, p, u, dy, a, ctx)`, arrays structure-of-arrays with stride `lanes`.
type KernelFn<T> = unsafe extern "C" fn(usize, f64, *const T, *const T, *const T, *mut T, *mut T, *mut KernelCtx);

pub struct JitKernel {
    /// Owns the executable memory the function pointers point into. Only touched again on
    /// drop; the mutex makes the kernel `Sync` (`JITModule` is `Send` but not `Sync`).
    code: Mutex<Code>,
    /// Kept for compiling fused steppers on first use; `None` when [`JitKernel::steps`]
    /// never compiles one (single precision, `Past`/`Randn`, population loops): a copy of a
    /// 1,000-node circuit is a good part of its compile.
    circuit: Option<Box<Circuit>>,
    /// `Past`/`Randn` need the solver between steps: no fused stepping.
    needs_solver: bool,
    reciprocal: bool,
    f64_fn: Option<KernelFn<f64>>,
    f32_fn: Option<KernelFn<f32>>,
    states: usize,
    params: usize,
    inputs: usize,
    algebraics: usize,
    /// The population loops the rhs runs (their per-node constants are read by the code
    /// through a pointer into this value); `None`: the unrolled equations.
    loops: Option<loops::NetLoops>,
}

impl JitKernel {
    /// Compiles `circuit` (edges already lowered) for `opts.precision`, every node's
    /// equations written out.
    pub fn new(circuit: &Circuit, opts: &KernelOptions) -> Result<Self, KernelError> {
        Self::compile(circuit, opts, None)
    }

    /// [`JitKernel::new`], with the equations of a network's nodes compiled once per
    /// population, as a loop over its nodes, when `circuit` plans as a network whose edge sums
    /// the engine runs (`kernel::coupling`); otherwise (not a network, an edge sum written
    /// out in the equations) the equations unrolled, as `new`. Same values either way, bit
    /// for bit. `planned`: `circuit`'s [`crate::model::network::plan`], if the caller made it.
    pub(crate) fn with_population_loops(
        circuit: &Circuit,
        opts: &KernelOptions,
        planned: Option<Result<crate::model::network::Network, crate::model::network::NotANetwork>>,
    ) -> Result<Self, KernelError> {
        if !circuit.edges.is_empty() {
            return Err(KernelError::NotLowered {
                count: circuit.edges.len(),
            });
        }
        match loops::NetLoops::plan(circuit, planned) {
            Ok(net) => Self::compile(circuit, opts, Some(net)),
            Err(why) => {
                if why != crate::model::network::NotANetwork::Small {
                    log::info!("JIT: unrolled equations for circuit {}: {why}", circuit.name);
                }
                Self::compile(circuit, opts, None)
            }
        }
    }

    /// Whether the rhs runs population loops ([`JitKernel::with_population_loops`]).
    pub fn is_network(&self) -> bool {
        self.loops.is_some()
    }

    fn compile(circuit: &Circuit, opts: &KernelOptions, net: Option<loops::NetLoops>) -> Result<Self, KernelError> {
        if !circuit.edges.is_empty() {
            return Err(KernelError::NotLowered {
                count: circuit.edges.len(),
            });
        }
        let layout = circuit.layout();
        codegen::validate(circuit, &layout)?;

        let mut flags = settings::builder();
        let set = |flags: &mut settings::Builder, k: &str, v: &str| {
            flags.set(k, v).map_err(|e| KernelError::Codegen {
                reason: format!("setting {k}={v}: {e}"),
            })
        };
        set(&mut flags, "opt_level", "speed")?;
        // Population loops compile one body per population, whatever the circuit's size.
        let compiled_exprs = net.as_ref().map_or(circuit.exprs.len(), |n| n.body_exprs(circuit));
        if compiled_exprs > LARGE_CIRCUIT_EXPRS {
            set(&mut flags, "regalloc_algorithm", "single_pass")?;
        }
        // Required by cranelift-jit: calls to Rust helpers may be far from the JIT memory.
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(&mut flags, "is_pic", "false")?;
        let isa_builder = cranelift_native::builder().map_err(|e| KernelError::Codegen {
            reason: format!("host machine not supported: {e}"),
        })?;
        let isa = isa_builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| KernelError::Codegen {
                reason: format!("target ISA: {e}"),
            })?;
        let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
        for (name, ptr) in mathfns::symbols() {
            builder.symbol(name, ptr);
        }
        let mut module = JITModule::new(builder);

        let (flavor, name) = match opts.precision {
            Precision::F64 => (codegen::F64_FLAVOR, "rustrates_rhs_f64"),
            Precision::F32 => (codegen::F32_FLAVOR, "rustrates_rhs_f32"),
        };
        let id = match codegen::define_kernel(&mut module, circuit, &layout, flavor, name, net.as_ref()) {
            Ok(id) => id,
            Err(e) => {
                // SAFETY: nothing from this module was finalized, so no pointer into it exists.
                unsafe { module.free_memory() };
                return Err(e);
            }
        };
        module.finalize_definitions().map_err(|e| KernelError::Codegen {
            reason: format!("finalizing: {e}"),
        })?;
        let code = module.get_finalized_function(id);
        let needs_solver = circuit.exprs.iter().any(|e| matches!(e, Expr::Past(..) | Expr::Randn));
        let (mut f64_fn, mut f32_fn) = (None, None);
        // SAFETY: `code` is the entry of a function just generated with exactly this
        // signature (see `codegen::define_kernel`), living as long as `module`, which we keep.
        unsafe {
            match opts.precision {
                Precision::F64 => f64_fn = Some(std::mem::transmute::<*const u8, KernelFn<f64>>(code)),
                Precision::F32 => f32_fn = Some(std::mem::transmute::<*const u8, KernelFn<f32>>(code)),
            }
        }
        Ok(JitKernel {
            code: Mutex::new(Code {
                module: Some(Box::new(module)),
                steppers: Vec::new(),
            }),
            circuit: (!needs_solver && opts.precision == Precision::F64 && net.is_none())
                .then(|| Box::new(circuit.clone())),
            needs_solver,
            reciprocal: RECIPROCAL_DIVISORS,
            f64_fn,
            f32_fn,
            states: layout.states.len(),
            params: layout.params.len(),
            inputs: layout.inputs.len(),
            algebraics: layout.algebraics.len(),
            loops: net,
        })
    }

    fn rows(&self) -> Rows {
        Rows {
            states: self.states,
            params: self.params,
            inputs: self.inputs,
            algebraics: self.algebraics,
        }
    }

    pub fn rhs(&self, args: RhsArgs<'_>) {
        let f = self
            .f64_fn
            .expect("JIT kernel compiled for Precision::F32: call rhs_f32");
        self.call_rhs(f, args);
    }

    pub fn rhs_f32(&self, args: RhsArgsF32<'_>) {
        let f = self.f32_fn.expect("JIT kernel compiled for Precision::F64: call rhs");
        self.call_rhs(f, args);
    }

    fn call_rhs<R>(&self, f: KernelFn<R>, args: RhsArgs<'_, R>) {
        let lanes = args.lanes;
        self.rows().check(
            "JIT",
            lanes,
            [args.y.len(), args.p.len(), args.u.len(), args.dy.len(), args.a.len()],
        );
        if lanes == 0 {
            return;
        }
        // SAFETY: lengths checked above; `f` was generated for this precision; the slices are
        // distinct borrows (no aliasing between inputs and outputs); `ctx` is exclusively
        // borrowed for the call.
        unsafe {
            f(
                lanes,
                args.t,
                args.y.as_ptr(),
                args.p.as_ptr(),
                args.u.as_ptr(),
                args.dy.as_mut_ptr(),
                args.a.as_mut_ptr(),
                args.ctx,
            )
        }
    }
}

impl JitKernel {
    /// Fused fixed-step integration (see [`crate::kernel::Kernel::steps`]). Compiles a
    /// stepper for `args.tableau` on first use (≈ the cost of compiling the rhs) and keeps
    /// it. `false` for single-precision kernels, circuits with `Past`/`Randn`, population
    /// loops, and tableaux that are not explicit (`a` strictly lower triangular) or malformed.
    pub fn steps(&self, args: StepsArgs<'_>) -> bool {
        // A population-loop kernel's couplings run in the engine between stages, and its
        // stepper would compile every node's equations written out (what the loops avoid).
        if self.needs_solver || self.f64_fn.is_none() || self.loops.is_some() {
            return false;
        }
        let tab = args.tableau;
        if !tab.is_explicit() {
            return false;
        }
        let lanes = args.lanes;
        self.rows().check(
            "JIT",
            lanes,
            [
                args.y.len(),
                args.p.len(),
                args.u.len(),
                self.states * lanes,
                self.algebraics * lanes,
            ],
        );
        let fixed = (lanes == STEPPER_BLOCK).then_some(lanes);
        let Some((f, rows)) = self.stepper(tab, fixed) else {
            return false;
        };
        let StepsArgs {
            nsteps,
            t0,
            dt,
            y,
            p,
            u,
            work,
            ctx,
            mut samples,
            ..
        } = args;
        if let Some(s) = &samples {
            s.check(lanes, nsteps, self.states);
        }
        if lanes == 0 {
            return true;
        }
        let need = rows.checked_mul(lanes).expect("scratch rows × lanes overflows usize");
        if work.len() < need {
            work.resize(need, 0.0);
        }
        let mut hoisted = false;
        let mut advance = |y: &mut [f64], s0: usize, n: usize| {
            if n == 0 {
                return;
            }
            // SAFETY: `y`, `p`, `u` hold their rows for `lanes` lanes (checked above); `work`
            // was sized to `rows × lanes` and holds the hoisted rows once `hoisted`; `y` is
            // exclusively borrowed; `ctx` is never read (no `Past`/`Randn`).
            unsafe {
                f(
                    lanes,
                    s0,
                    n,
                    t0,
                    dt,
                    y.as_mut_ptr(),
                    p.as_ptr(),
                    u.as_ptr(),
                    work.as_mut_ptr(),
                    &mut *ctx,
                    usize::from(!hoisted),
                );
            }
            hoisted = true;
        };
        let mut done = 0;
        if let Some(s) = samples.as_mut() {
            let width = s.slots.len() * lanes;
            for k in 0..s.count {
                let at = s.first + k * s.every;
                advance(y, done, at - done);
                done = at;
                for (o, &slot) in s.slots.iter().enumerate() {
                    let row = &y[slot as usize * lanes..(slot as usize + 1) * lanes];
                    s.out[k * width + o * lanes..][..lanes].copy_from_slice(row);
                }
            }
        }
        advance(y, done, nsteps - done);
        true
    }

    /// The stepper for `tab`, compiled on first request; `None` if code generation failed.
    fn stepper(&self, tab: &Tableau, fixed_lanes: Option<usize>) -> Option<(StepFn, usize)> {
        let mut code = match self.code.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((_, _, f, rows)) = code.steppers.iter().find(|(t, n, _, _)| t == tab && *n == fixed_lanes) {
            return Some((*f, *rows));
        }
        let name = format!("rustrates_steps_{}", code.steppers.len());
        let circuit = self.circuit.as_deref()?;
        let module = code.module.as_mut()?;
        let layout = circuit.layout();
        let (id, rows) =
            match codegen::define_stepper(module, circuit, &layout, tab, self.reciprocal, fixed_lanes, &name) {
                Ok(r) => r,
                Err(e) => {
                    log::warn!("JIT fused stepper unavailable, stepping with rhs: {e}");
                    return None;
                }
            };
        if let Err(e) = module.finalize_definitions() {
            log::warn!("JIT fused stepper unavailable, stepping with rhs: {e}");
            return None;
        }
        let ptr = module.get_finalized_function(id);
        // SAFETY: `ptr` is the entry of a function generated with exactly `StepFn`'s
        // signature (see `codegen::define_stepper`), alive as long as the module (= self).
        let f = unsafe { std::mem::transmute::<*const u8, StepFn>(ptr) };
        code.steppers.push((tab.clone(), fixed_lanes, f, rows));
        Some((f, rows))
    }
}

impl Drop for JitKernel {
    fn drop(&mut self) {
        let module = match self.code.get_mut() {
            Ok(c) => c.module.take(),
            Err(poisoned) => poisoned.into_inner().module.take(),
        };
        if let Some(module) = module {
            // SAFETY: the function pointers live in `self` and die with it; `&mut self`
            // means no call is running. (`JITModule`'s own drop would leak the code.)
            unsafe { module.free_memory() };
        }
    }
}

#[cfg(test)]
mod tests;
