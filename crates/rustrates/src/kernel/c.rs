//! C back end: emit C for the kernel, compile it with the system compiler, cache and load it.
//!
//! The generated library exports three functions (all arrays `x[slot * lanes + lane]`):
//! - `rustrates_rhs(lanes, t, y, p, u, dy, a, ctx)` and `rustrates_rhs_f32` (float arrays,
//!   `t` stays double): algebraics into `a`, derivatives into `dy`;
//! - `rustrates_steps(lanes, nsteps, t0, dt, y, p, u, a, ctx, stages, A, B, C, work, slots,
//!   nslots, first, every, count, out)`: advance `y` by `nsteps` explicit Runge–Kutta steps
//!   with inputs held constant, expressions that depend only on parameters and inputs
//!   computed once per call, and a fused loop for Euler; the states `slots` are copied to
//!   `out` after `first + k·every` steps (`k < count`).
//!   Reached through [`crate::kernel::Kernel::steps`].
//!
//! Every function has a copy specialised for blocks of [`BLOCK_LANES`] lanes (constant
//! strides, so the compiler vectorises without runtime alias checks); use that block width.
//! For sweeps, [`specialize_params`] turns the parameters the grid does not vary into
//! constants, which the C compiler folds (the way to match a hand-written loop).
//!
//! `Past` and `Randn` call the Rust trampolines of [`super::mathfns`] (installed through
//! `rustrates_set_hooks` when the library is loaded), which forward to the hooks in the
//! [`KernelCtx`]; without a hook they yield NaN. Because every sub-expression is computed
//! unconditionally, a `Randn` or `Past` inside one branch of a `Select` is called whichever
//! branch is taken. Circuits with `Past` or `Randn` have no fused stepper (the solver must
//! update delay buffers and draw noise between steps).

mod build;
mod emit;
mod net;

use std::ffi::{c_int, c_void};
use std::path::{Path, PathBuf};

use super::ffi::Rows;
use super::{KernelCtx, KernelError, KernelOptions, RhsArgs, RhsArgsF32, StepsArgs};
use crate::model::Circuit;

/// `rustrates_rhs` (`R = f64`) and `rustrates_rhs_f32` (`R = f32`; `t` stays double).
type RhsFn<R> = unsafe extern "C" fn(usize, f64, *const R, *const R, *const R, *mut R, *mut R, *mut c_void);
type RhsF64 = RhsFn<f64>;
type RhsF32 = RhsFn<f32>;
/// The fused stepper's C signature; the network variant appends its data (`$extra`).
macro_rules! steps_fn {
    ($($extra:ty),*) => {
        unsafe extern "C" fn(
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
            *const u32,
            usize,
            usize,
            usize,
            usize,
            *mut f64
            $(, $extra)*
        )
    };
}
type StepsFn = steps_fn!();

/// The block width the generated code is specialised for (constant strides, exact trip
/// counts): solvers get the fastest code with blocks of this many lanes. Other widths work.
pub const BLOCK_LANES: usize = emit::BLOCK;

/// In the fused stepper, divide by a step-invariant divisor (e.g. `/tau`) as a multiplication
/// by its reciprocal computed once per call. Costs at most an ulp per division against `rhs`;
/// divisions dominate the cost of typical neural-mass right-hand sides otherwise.
const RECIPROCAL_DIVISORS: bool = true;

/// The network variants (`rustrates_net_*`, see `net`): the same arguments plus the
/// network's integer and double data.
/// `rhs` also takes the delay ring buffer's view (null when none).
type NetRhsFn<R> = unsafe extern "C" fn(
    usize,
    f64,
    *const R,
    *const R,
    *const R,
    *mut R,
    *mut R,
    *mut c_void,
    *const u64,
    *const f64,
    *const crate::kernel::ring::RingView,
);
type NetStepsFn = steps_fn!(*const u64, *const f64);

/// The library's entry points: one copy of the equations per node, or loops over the
/// populations of a network with its data.
enum Entry {
    Scalar {
        rhs64: RhsF64,
        rhs32: RhsF32,
        steps: StepsFn,
    },
    Network {
        rhs64: NetRhsFn<f64>,
        rhs32: NetRhsFn<f32>,
        steps: NetStepsFn,
        data: net::NetData,
    },
}

/// A compiled and loaded kernel library.
pub struct CKernel {
    entry: Entry,
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

type SetHooksFn = unsafe extern "C" fn(
    unsafe extern "C" fn(*mut KernelCtx, u32, usize, f64, f64) -> f64,
    unsafe extern "C" fn(*mut KernelCtx, u32, usize) -> f64,
);

struct LoadedLibrary {
    entry: Entry,
    lib: libloading::Library,
}

fn load(path: &Path, net: Option<&net::NetData>) -> Result<LoadedLibrary, KernelError> {
    let fail = |e: libloading::Error| KernelError::LoadFailed {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    // SAFETY: the library is one this module generated and compiled (its only code is the
    // three kernel functions and static helpers; no initialisers run on load).
    let lib = unsafe { libloading::Library::new(path) }.map_err(fail)?;
    // SAFETY: the symbol types match the C prototypes emitted by `emit::emit`; the pointers
    // are only used while `lib` is alive (both live in the same `CKernel`).
    unsafe {
        let entry = match net {
            None => Entry::Scalar {
                rhs64: *lib.get::<RhsF64>(b"rustrates_rhs\0").map_err(fail)?,
                rhs32: *lib.get::<RhsF32>(b"rustrates_rhs_f32\0").map_err(fail)?,
                steps: *lib.get::<StepsFn>(b"rustrates_steps\0").map_err(fail)?,
            },
            Some(data) => Entry::Network {
                rhs64: *lib.get::<NetRhsFn<f64>>(b"rustrates_net_rhs\0").map_err(fail)?,
                rhs32: *lib.get::<NetRhsFn<f32>>(b"rustrates_net_rhs_f32\0").map_err(fail)?,
                steps: *lib.get::<NetStepsFn>(b"rustrates_net_steps\0").map_err(fail)?,
                data: data.clone(),
            },
        };
        let set_hooks = *lib.get::<SetHooksFn>(b"rustrates_set_hooks\0").map_err(fail)?;
        // Generated code reaches `Past`/`Randn` through these trampolines, which forward to
        // the hooks the solver installs in the `KernelCtx`.
        set_hooks(super::mathfns::rustrates_past, super::mathfns::rustrates_randn);
        Ok(LoadedLibrary { entry, lib })
    }
}

/// The function `call_rhs` calls, with the network's data when it has some.
enum Call<'a, R> {
    Scalar(RhsFn<R>),
    Network(NetRhsFn<R>, &'a net::NetData),
}

/// A circuit's C source and the cache entry its library lives in: emitted and hashed once per
/// kernel, whether `Auto` only asks if it is cached or the kernel is then built from it.
pub(crate) struct CBuild {
    source: emit::Source,
    /// The network's data when the source is the network form (`net`).
    net: Option<net::NetData>,
    cmd: Vec<String>,
    path: PathBuf,
}

impl CBuild {
    pub(crate) fn new(circuit: &Circuit, opts: &KernelOptions) -> Result<Self, KernelError> {
        if !circuit.edges.is_empty() {
            return Err(KernelError::NotLowered {
                count: circuit.edges.len(),
            });
        }
        let cmd = build::compiler_command();
        let version = build::compiler_version(&cmd)?;
        // Couplings the loops do not read as nodes (a scaled block with delays) are written
        // out (same layout), and the written-out sums planned again.
        let first = crate::model::network::plan(circuit);
        let expanded = match &first {
            Err(_) if !circuit.couplings.is_empty() => Some(crate::model::passes::expand_couplings(circuit)),
            _ => None,
        };
        let planned = match (first, &expanded) {
            (Ok(p), _) => Ok((circuit, p)),
            (Err(_), Some(e)) => crate::model::network::plan(e).map(|p| (e, p)),
            (Err(why), None) => Err(why),
        };
        let (source, net) = match planned {
            Ok((circuit, plan)) => {
                let (source, data) = net::emit(circuit, &plan);
                (source, Some(data))
            }
            Err(why) => {
                if why != crate::model::network::NotANetwork::Small {
                    log::info!("C back end: unrolled code for circuit {}: {why}", circuit.name);
                }
                let circuit = expanded.as_ref().unwrap_or(circuit);
                (emit::emit(circuit, RECIPROCAL_DIVISORS), None)
            }
        };
        let key = build::cache_key(&source.text, &cmd, &version);
        let path = build::library_path(&build::cache_dir(opts), &key);
        Ok(CBuild { source, net, cmd, path })
    }

    pub(crate) fn is_cached(&self) -> bool {
        self.path.exists()
    }

    /// Whether the source is the network form (population loops), which only this back end
    /// emits.
    pub(crate) fn is_network(&self) -> bool {
        self.net.is_some()
    }
}

impl CKernel {
    pub fn new(circuit: &Circuit, opts: &KernelOptions) -> Result<Self, KernelError> {
        Self::from_build(circuit, CBuild::new(circuit, opts)?)
    }

    pub(crate) fn from_build(circuit: &Circuit, build: CBuild) -> Result<Self, KernelError> {
        let CBuild { source, net, cmd, path } = build;
        let mut compiled = false;
        if !path.exists() {
            build::compile(&source.text, &cmd, &path)?;
            compiled = true;
        }
        let loaded = match load(&path, net.as_ref()) {
            Ok(l) => l,
            // A damaged cache entry (e.g. a disk filled up): rebuild it once.
            Err(e) if !compiled => {
                log::warn!("{e}; recompiling");
                build::compile(&source.text, &cmd, &path)?;
                compiled = true;
                load(&path, net.as_ref())?
            }
            Err(e) => return Err(e),
        };
        let layout = circuit.layout();
        Ok(CKernel {
            entry: loaded.entry,
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
        let rows = Rows {
            states: self.states,
            params: self.params,
            inputs: self.inputs,
            algebraics: self.algebraics,
        };
        rows.check("C", lanes, [y, p, u, dy, a]);
    }

    /// Whether the library runs loops over a network's populations (see `net`) rather
    /// than one copy of the equations per node.
    pub fn is_network(&self) -> bool {
        matches!(self.entry, Entry::Network { .. })
    }

    /// See [`crate::kernel::Kernel::delay_ring_span`].
    pub fn delay_ring_span(&self) -> Option<f64> {
        match &self.entry {
            Entry::Network { data, .. } => data.ring_span,
            Entry::Scalar { .. } => None,
        }
    }

    /// See [`crate::kernel::Kernel::delay_ring_terms`].
    pub fn delay_ring_terms(&self) -> &[f64] {
        match &self.entry {
            Entry::Network { data, .. } => &data.delay_terms,
            Entry::Scalar { .. } => &[],
        }
    }

    /// See [`crate::kernel::Kernel::delay_ring_lane_terms`].
    pub fn delay_ring_lane_terms(&self) -> &[(f64, u32)] {
        match &self.entry {
            Entry::Network { data, .. } => &data.lane_terms,
            Entry::Scalar { .. } => &[],
        }
    }

    pub fn rhs(&self, args: RhsArgs<'_>) {
        match &self.entry {
            Entry::Scalar { rhs64, .. } => self.call_rhs(Call::Scalar(*rhs64), args),
            Entry::Network { rhs64, data, .. } => self.call_rhs(Call::Network(*rhs64, data), args),
        }
    }

    pub fn rhs_f32(&self, args: RhsArgsF32<'_>) {
        match &self.entry {
            Entry::Scalar { rhs32, .. } => self.call_rhs(Call::Scalar(*rhs32), args),
            Entry::Network { rhs32, data, .. } => self.call_rhs(Call::Network(*rhs32, data), args),
        }
    }

    fn call_rhs<R>(&self, f: Call<'_, R>, args: RhsArgs<'_, R>) {
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
        self.check(lanes, y.len(), p.len(), u.len(), dy.len(), a.len());
        if lanes == 0 {
            return;
        }
        // The network loops read delayed terms from the ring when the solver keeps one for
        // exactly these lanes and this kernel's delayed terms (else through the `past` hook).
        let terms = match &f {
            Call::Network(_, d) => (d.delay_terms.len(), d.lane_terms.len()),
            Call::Scalar(_) => (0, 0),
        };
        let ring = ctx
            .ring
            .as_ref()
            .filter(|r| r.lanes() == lanes && r.terms() == terms)
            .map(|r| r.view(t));
        let ring_ptr = ring.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
        let ctx: *mut KernelCtx = ctx;
        // SAFETY: lengths checked above; `f` is the library's function for this precision,
        // which touches exactly `slots × lanes` elements of each array, and `ctx` points to a
        // live `#[repr(C)] KernelCtx`. A network's function also reads its data at the offsets
        // `net` baked into the same library from this very data, and the ring (if any)
        // through `ring`, whose pointers stay valid as the ring is borrowed for this call
        // (lanes equal to this call's; slots cover every read, `DelayRing::slots_for`).
        unsafe {
            // The arguments of both entry points; the network's append its data and the ring.
            macro_rules! call_rhs {
                ($f:expr $(, $extra:expr)*) => {
                    $f(
                        lanes,
                        t,
                        y.as_ptr(),
                        p.as_ptr(),
                        u.as_ptr(),
                        dy.as_mut_ptr(),
                        a.as_mut_ptr(),
                        ctx.cast()
                        $(, $extra)*
                    )
                };
            }
            match f {
                Call::Scalar(f) => call_rhs!(f),
                Call::Network(f, d) => call_rhs!(f, d.ni.as_ptr(), d.nd.as_ptr(), ring_ptr),
            }
        }
    }

    /// See [`crate::kernel::Kernel::steps`].
    pub fn steps(&self, args: StepsArgs<'_>) -> bool {
        let StepsArgs {
            lanes,
            nsteps,
            t0,
            dt,
            tableau,
            y,
            p,
            u,
            a,
            work,
            ctx,
            samples,
        } = args;
        let stages = tableau.stages();
        if self.uses_callbacks || !tableau.is_explicit() || c_int::try_from(stages).is_err() {
            return false;
        }
        self.check(lanes, y.len(), p.len(), u.len(), y.len(), a.len());
        if let Some(s) = &samples {
            s.check(lanes, nsteps, self.states);
        }
        if lanes == 0 || (nsteps == 0 && samples.as_ref().is_none_or(|s| s.count == 0)) {
            return true;
        }
        let need = (self.hoisted + (stages + 1) * self.states) * lanes;
        if work.len() < need {
            work.resize(need, 0.0);
        }
        let ctx: *mut KernelCtx = ctx;
        let (slots, first, every, count, out) = match samples {
            Some(s) => (s.slots, s.first, s.every, s.count, s.out.as_mut_ptr()),
            None => (&[][..], 0, 1, 0, std::ptr::null_mut()),
        };
        // SAFETY: array lengths checked above, `work` holds the hoisted values, stage
        // derivatives and a stage state (`need`), the tableau slices have the lengths the C
        // code indexes (`stages²`, `stages`, `stages`); the samples were checked above (slots in
        // range, `out` long enough, every sample within the call).
        unsafe {
            // The arguments of both entry points; the network's append its data.
            macro_rules! call_steps {
                ($f:expr $(, $extra:expr)*) => {
                    $f(
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
                        slots.as_ptr(),
                        slots.len(),
                        first,
                        every,
                        count,
                        out
                        $(, $extra)*
                    )
                };
            }
            match &self.entry {
                Entry::Scalar { steps, .. } => call_steps!(steps),
                Entry::Network { steps, data, .. } => call_steps!(steps, data.ni.as_ptr(), data.nd.as_ptr()),
            }
        }
        true
    }
}

/// Moved to `model::passes`; kept here for the back end's own tests and callers.
pub use crate::model::passes::specialize_params;

/// Whether a C compiler (`$CC` or `cc`) can be run.
pub fn compiler_available() -> bool {
    build::compiler_version(&build::compiler_command()).is_ok()
}

/// Whether the library for this circuit is already in the cache (no compile needed).
pub fn is_cached(circuit: &Circuit, opts: &KernelOptions) -> bool {
    CBuild::new(circuit, opts).is_ok_and(|b| b.is_cached())
}

#[cfg(test)]
mod tests;
