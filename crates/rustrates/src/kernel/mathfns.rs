//! Functions that compiled kernels call back into: transcendental math (one element per call)
//! and the delay and noise hooks of [`KernelCtx`].
//!
//! Every back end must give the same numbers, so the semantics of each [`Func`] live here
//! once: [`func_f64`]/[`func_f32`] are the scalar definitions, and the JIT either calls the
//! `extern "C"` symbols below or emits instructions with identical IEEE results (`abs`,
//! `sqrt`, `floor`, `ceil`, `max`, `min`, `heaviside`, `sign`). Rust's `f64::sin` & co.
//! lower to the platform libm, which is what the C back end links too.

use super::KernelCtx;
use crate::model::Func;

impl KernelCtx {
    /// `past(x, delay)` for lane `lane` at evaluation time `t`, through the solver's hook;
    /// NaN when no hook is installed (the circuit has delays but the solver gave no history).
    pub fn past_value(&mut self, var: u32, lane: usize, t: f64, delay: f64) -> f64 {
        match self.past {
            Some(hook) => hook(self, var, lane, t, delay),
            None => f64::NAN,
        }
    }
    /// A standard normal sample for noise source `source` in lane `lane`; NaN without a hook.
    pub fn randn_value(&mut self, source: u32, lane: usize) -> f64 {
        match self.randn {
            Some(hook) => hook(self, source, lane),
            None => f64::NAN,
        }
    }
}

/// Generated code's entry to [`KernelCtx::past_value`].
///
/// # Safety
/// `ctx` is null or points to a `KernelCtx` that nothing else accesses during the call (the
/// kernel passes the `&mut KernelCtx` of its `RhsArgs`).
pub unsafe extern "C" fn rustrates_past(ctx: *mut KernelCtx, var: u32, lane: usize, t: f64, delay: f64) -> f64 {
    // SAFETY: guaranteed by the caller (see above); null is handled.
    match unsafe { ctx.as_mut() } {
        Some(ctx) => ctx.past_value(var, lane, t, delay),
        None => f64::NAN,
    }
}

/// Generated code's entry to [`KernelCtx::randn_value`].
///
/// # Safety
/// As for [`rustrates_past`].
pub unsafe extern "C" fn rustrates_randn(ctx: *mut KernelCtx, source: u32, lane: usize) -> f64 {
    // SAFETY: guaranteed by the caller (see above); null is handled.
    match unsafe { ctx.as_mut() } {
        Some(ctx) => ctx.randn_value(source, lane),
        None => f64::NAN,
    }
}

/// numpy's `heaviside(x, 0.5)`: NaN stays NaN.
fn heaviside(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        0.0
    } else if x == 0.0 {
        0.5
    } else {
        x
    }
}

/// numpy's `sign`: ±1, zero keeps its sign, NaN stays NaN (unlike `f64::signum`).
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// numpy's `maximum` (`max`) or `minimum`: NaN in either argument gives NaN (unlike
/// `f64::max`), and between ±0 (equal, with different bits) `maximum` takes +0, `minimum` −0.
fn nan_extreme(x: f64, y: f64, max: bool) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == y {
        if x.is_sign_negative() == max {
            y
        } else {
            x
        }
    } else if (x > y) == max {
        x
    } else {
        y
    }
}

/// The functions each precision evaluates in its own arithmetic (`sin` or `sinf` & co.), the
/// one list [`func_f64`] and [`func_f32`] expand; the others are exact in either precision
/// and taken by the caller before.
macro_rules! in_own_precision {
    ($func:expr, $x:ident, $y:ident) => {
        match $func {
            Func::Sin => $x.sin(),
            Func::Cos => $x.cos(),
            Func::Tan => $x.tan(),
            Func::Sinh => $x.sinh(),
            Func::Cosh => $x.cosh(),
            Func::Tanh => $x.tanh(),
            Func::Arcsin => $x.asin(),
            Func::Arccos => $x.acos(),
            Func::Arctan => $x.atan(),
            Func::Arctan2 => $x.atan2($y),
            Func::Exp => $x.exp(),
            Func::Log => $x.ln(),
            Func::Sigmoid => 1.0 / (1.0 + (-$x).exp()),
            exact => unreachable!("{exact:?} is exact in either precision: taken before"),
        }
    };
}

/// The value of `func(x)` or `func(x, y)` (`y` ignored for unary functions) in double
/// precision, as every back end computes it.
pub fn func_f64(func: Func, x: f64, y: f64) -> f64 {
    match func {
        Func::Sqrt => x.sqrt(),
        Func::Abs => x.abs(),
        Func::Max => nan_extreme(x, y, true),
        Func::Min => nan_extreme(x, y, false),
        Func::Heaviside => heaviside(x),
        Func::Floor => x.floor(),
        Func::Ceil => x.ceil(),
        Func::Sign => sign(x),
        _ => in_own_precision!(func, x, y),
    }
}

/// [`func_f64`] in single precision (each function evaluated in `f32`, as `sinf` & co.).
pub fn func_f32(func: Func, x: f32, y: f32) -> f32 {
    match func {
        // Exact in either precision: the f64 result of f32 inputs is representable in f32.
        Func::Sqrt | Func::Abs | Func::Max | Func::Min | Func::Heaviside | Func::Floor | Func::Ceil | Func::Sign => {
            func_f64(func, f64::from(x), f64::from(y)) as f32
        }
        _ => in_own_precision!(func, x, y),
    }
}

/// How every back end evaluates `x ^ c` for a constant exponent `c` — the reference
/// evaluator, the JIT, the C emitter and constant folding — so that they agree bit for bit:
/// an integer exponent up to 64 in size is multiplied out by squaring (each product
/// correctly rounded, as numpy's `x**2` is `x*x`; `pow` itself is only within ≈ 0.52 ulp), a
/// negative one is `1 / x^|c|`, `1/2` is `sqrt`, anything else calls `pow`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PowPlan {
    Integer(i32),
    Sqrt,
    Call,
}

pub(crate) fn pow_plan(exponent: f64) -> PowPlan {
    if exponent.fract() == 0.0 && exponent.abs() <= 64.0 {
        PowPlan::Integer(exponent as i32)
    } else if exponent == 0.5 {
        PowPlan::Sqrt
    } else {
        PowPlan::Call
    }
}

/// One product of [`pow_by_squaring_steps`]: the base squared, or the accumulator times the
/// base.
pub(crate) enum PowStep<'a, V> {
    Square(&'a V),
    Times(&'a V, &'a V),
}

/// `x^n` for `n ≥ 1` by squaring, in the one order every back end uses: for each bit of `n`
/// from the lowest, a set bit multiplies the accumulator by the base (`acc · base`), and the
/// base is squared between bits.
pub(crate) fn pow_by_squaring<V: Clone>(x: V, n: u32, mut mul: impl FnMut(&V, &V) -> V) -> V {
    pow_by_squaring_steps(x, n, |step| match step {
        PowStep::Square(b) => mul(b, b),
        PowStep::Times(a, b) => mul(a, b),
    })
}

/// [`pow_by_squaring`] telling each product's kind (a code generator keeps squares, which the
/// next square and a product both read, in temporaries).
pub(crate) fn pow_by_squaring_steps<V: Clone>(x: V, n: u32, mut product: impl FnMut(PowStep<'_, V>) -> V) -> V {
    debug_assert!(n > 0, "x^0 is 1, not a product");
    let (mut e, mut base, mut acc) = (n, x, None::<V>);
    loop {
        if e & 1 == 1 {
            acc = Some(match acc {
                None => base.clone(),
                Some(a) => product(PowStep::Times(&a, &base)),
            });
        }
        e >>= 1;
        if e == 0 {
            return acc.expect("n > 0 has a set bit");
        }
        base = product(PowStep::Square(&base));
    }
}

/// `x ^ y` by the one rule ([`pow_plan`]) for any `y`, constant or not, so that a compiled
/// expansion of a constant exponent and a call with the same value at run time give the
/// same bits (a per-node exponent of a network is a call in the loops, a constant in the
/// reference evaluator).
pub fn pow_f64(x: f64, y: f64) -> f64 {
    pow_by_rule(x, y, f64::sqrt, || x.powf(y))
}

/// [`pow_f64`] in single precision (the exponent converts to `f64` exactly).
pub fn pow_f32(x: f32, y: f32) -> f32 {
    pow_by_rule(x, f64::from(y), f32::sqrt, || x.powf(y))
}

fn pow_by_rule<T>(x: T, y: f64, sqrt: fn(T) -> T, call: impl FnOnce() -> T) -> T
where
    T: Copy + From<u8> + std::ops::Mul<Output = T> + std::ops::Div<Output = T>,
{
    match pow_plan(y) {
        PowPlan::Integer(0) => T::from(1),
        PowPlan::Integer(n) => {
            let v = pow_by_squaring(x, n.unsigned_abs(), |a, b| *a * *b);
            if n < 0 {
                T::from(1) / v
            } else {
                v
            }
        }
        PowPlan::Sqrt => sqrt(x),
        PowPlan::Call => call(),
    }
}

macro_rules! extern_unary {
    ($($name:ident $name32:ident => $func:ident),* $(,)?) => {
        $(
            extern "C" fn $name(x: f64) -> f64 {
                func_f64(Func::$func, x, 0.0)
            }
            extern "C" fn $name32(x: f32) -> f32 {
                func_f32(Func::$func, x, 0.0)
            }
        )*
        /// Symbol name of the out-of-line implementation of a unary function, if it has one.
        pub(crate) fn unary_symbol(func: Func, single: bool) -> Option<&'static str> {
            match func {
                $(Func::$func => Some(if single { stringify!($name32) } else { stringify!($name) }),)*
                _ => None,
            }
        }
        fn unary_symbols() -> Vec<(&'static str, *const u8, &'static str, *const u8)> {
            vec![$((stringify!($name), $name as *const u8, stringify!($name32), $name32 as *const u8),)*]
        }
    };
}

extern_unary! {
    rustrates_sin rustrates_sinf => Sin,
    rustrates_cos rustrates_cosf => Cos,
    rustrates_tan rustrates_tanf => Tan,
    rustrates_sinh rustrates_sinhf => Sinh,
    rustrates_cosh rustrates_coshf => Cosh,
    rustrates_tanh rustrates_tanhf => Tanh,
    rustrates_asin rustrates_asinf => Arcsin,
    rustrates_acos rustrates_acosf => Arccos,
    rustrates_atan rustrates_atanf => Arctan,
    rustrates_exp rustrates_expf => Exp,
    rustrates_log rustrates_logf => Log,
    rustrates_sigmoid rustrates_sigmoidf => Sigmoid,
}

extern "C" fn rustrates_atan2(x: f64, y: f64) -> f64 {
    func_f64(Func::Arctan2, x, y)
}
extern "C" fn rustrates_atan2f(x: f32, y: f32) -> f32 {
    func_f32(Func::Arctan2, x, y)
}
extern "C" fn rustrates_pow(x: f64, y: f64) -> f64 {
    pow_f64(x, y)
}
extern "C" fn rustrates_powf(x: f32, y: f32) -> f32 {
    pow_f32(x, y)
}

/// Symbol names of the binary out-of-line functions.
pub(crate) const POW_SYMBOL: [&str; 2] = ["rustrates_pow", "rustrates_powf"];
pub(crate) const ATAN2_SYMBOL: [&str; 2] = ["rustrates_atan2", "rustrates_atan2f"];
pub(crate) const PAST_SYMBOL: &str = "rustrates_past";
pub(crate) const RANDN_SYMBOL: &str = "rustrates_randn";

/// Every symbol generated code may call, with its address.
pub(crate) fn symbols() -> Vec<(&'static str, *const u8)> {
    let unary = unary_symbols();
    let mut out = Vec::with_capacity(2 * unary.len() + 6);
    for (n64, p64, n32, p32) in unary {
        out.push((n64, p64));
        out.push((n32, p32));
    }
    out.push((POW_SYMBOL[0], rustrates_pow as *const u8));
    out.push((POW_SYMBOL[1], rustrates_powf as *const u8));
    out.push((ATAN2_SYMBOL[0], rustrates_atan2 as *const u8));
    out.push((ATAN2_SYMBOL[1], rustrates_atan2f as *const u8));
    out.push((PAST_SYMBOL, rustrates_past as *const u8));
    out.push((RANDN_SYMBOL, rustrates_randn as *const u8));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn func_f64_numpy_edge_cases_match_numpy() {
        // Values as numpy 1.26 prints them for np.heaviside(x, 0.5), np.sign, np.maximum.
        assert_eq!(func_f64(Func::Heaviside, 0.0, 0.0), 0.5);
        assert_eq!(func_f64(Func::Heaviside, -0.0, 0.0), 0.5);
        assert_eq!(func_f64(Func::Heaviside, -3.0, 0.0), 0.0);
        assert_eq!(func_f64(Func::Heaviside, 1e-300, 0.0), 1.0);
        assert!(func_f64(Func::Heaviside, f64::NAN, 0.0).is_nan());
        assert_eq!(func_f64(Func::Sign, -2.5, 0.0), -1.0);
        assert_eq!(func_f64(Func::Sign, 0.0, 0.0), 0.0);
        assert!(func_f64(Func::Sign, f64::NAN, 0.0).is_nan());
        assert!(func_f64(Func::Max, f64::NAN, 1.0).is_nan());
        assert!(func_f64(Func::Min, 1.0, f64::NAN).is_nan());
        assert_eq!(func_f64(Func::Max, -0.0, 0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(func_f64(Func::Min, 0.0, -0.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(func_f64(Func::Max, 2.0, 3.0), 3.0);
        assert_eq!(func_f64(Func::Min, 2.0, 3.0), 2.0);
        // sigmoid(0) = 1/2 exactly; sigmoid(2) = 1/(1+e^-2) = 0.8807970779778823 (published).
        assert_eq!(func_f64(Func::Sigmoid, 0.0, 0.0), 0.5);
        assert!((func_f64(Func::Sigmoid, 2.0, 0.0) - 0.880_797_077_977_882_3).abs() < 1e-16);
    }

    #[test]
    fn ctx_hooks_absent_give_nan_present_are_called() {
        let mut ctx = KernelCtx::default();
        assert!(ctx.past_value(3, 1, 0.5, 0.1).is_nan());
        assert!(ctx.randn_value(0, 1).is_nan());
        ctx.past = Some(|_, var, lane, t, d| f64::from(var) * 100.0 + lane as f64 + (t - d));
        ctx.randn = Some(|c, src, lane| (c.first_point + lane) as f64 + f64::from(src) / 8.0);
        ctx.first_point = 10;
        assert_eq!(ctx.past_value(3, 1, 0.5, 0.25), 301.25);
        assert_eq!(ctx.randn_value(4, 2), 12.5);
        // Through the C entry points, as generated code calls them.
        // SAFETY: `ctx` is a live, exclusively borrowed KernelCtx; null is allowed.
        unsafe {
            assert_eq!(rustrates_past(&mut ctx, 3, 1, 0.5, 0.25), 301.25);
            assert_eq!(rustrates_randn(&mut ctx, 4, 2), 12.5);
            assert!(rustrates_past(std::ptr::null_mut(), 3, 1, 0.5, 0.25).is_nan());
        }
    }
}
