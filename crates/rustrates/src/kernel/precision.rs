//! One precision trait: what the stages generic over `f64`/`f32` need of a number — the
//! reference evaluator's arithmetic and functions, the solvers' conversions, and the kernel's
//! evaluation in that precision.

use super::{Kernel, KernelCtx, RhsArgs};
use crate::model::Func;

/// `f64`, or `f32` (PyRates' old default): the kernel's and the solver's state precision.
pub trait Real:
    Copy
    + Default
    + PartialEq
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    const NAN: Self;
    /// `x` rounded to this precision.
    fn of(x: f64) -> Self;
    /// Widened to `f64` (exact).
    fn wide(self) -> f64;
    fn finite(self) -> bool;
    fn is_nan(self) -> bool;
    fn is_sign_negative(self) -> bool;
    fn powf(self, o: Self) -> Self;
    fn atan2(self, o: Self) -> Self;
    /// A one-argument function with the semantics every back end shares (see
    /// `kernel::reference`); the binary ones give NaN here.
    fn unary(f: Func, x: Self) -> Self;
    /// The kernel's evaluation in this precision.
    fn eval(kernel: &Kernel, args: RhsArgs<'_, Self>);
    #[allow(clippy::too_many_arguments)]
    fn rhs(
        kernel: &Kernel,
        t: f64,
        lanes: usize,
        y: &[Self],
        p: &[Self],
        u: &[Self],
        dy: &mut [Self],
        a: &mut [Self],
        ctx: &mut KernelCtx,
    ) {
        Self::eval(
            kernel,
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
        );
    }
}

macro_rules! impl_real {
    ($t:ty, $eval:ident) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAN: Self = <$t>::NAN;
            #[allow(clippy::cast_possible_truncation, clippy::unnecessary_cast)]
            fn of(x: f64) -> Self {
                x as $t
            }
            #[allow(clippy::unnecessary_cast)]
            fn wide(self) -> f64 {
                self as f64
            }
            fn finite(self) -> bool {
                <$t>::is_finite(self)
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn is_sign_negative(self) -> bool {
                <$t>::is_sign_negative(self)
            }
            fn powf(self, o: Self) -> Self {
                <$t>::powf(self, o)
            }
            fn atan2(self, o: Self) -> Self {
                <$t>::atan2(self, o)
            }
            fn unary(f: Func, x: Self) -> Self {
                match f {
                    Func::Sin => x.sin(),
                    Func::Cos => x.cos(),
                    Func::Tan => x.tan(),
                    Func::Sinh => x.sinh(),
                    Func::Cosh => x.cosh(),
                    Func::Tanh => x.tanh(),
                    Func::Arcsin => x.asin(),
                    Func::Arccos => x.acos(),
                    Func::Arctan => x.atan(),
                    Func::Exp => x.exp(),
                    Func::Log => x.ln(),
                    Func::Sqrt => x.sqrt(),
                    Func::Abs => x.abs(),
                    Func::Sigmoid => 1.0 / (1.0 + (-x).exp()),
                    Func::Floor => x.floor(),
                    Func::Ceil => x.ceil(),
                    Func::Heaviside => {
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
                    // numpy's sign: zero and NaN pass through (unlike `signum`).
                    Func::Sign => {
                        if x > 0.0 {
                            1.0
                        } else if x < 0.0 {
                            -1.0
                        } else {
                            x
                        }
                    }
                    // Binary functions never reach here (see `eval`).
                    Func::Arctan2 | Func::Max | Func::Min => <$t>::NAN,
                }
            }
            fn eval(kernel: &Kernel, args: RhsArgs<'_, $t>) {
                kernel.$eval(args);
            }
        }
    };
}
impl_real!(f64, rhs);
impl_real!(f32, rhs_f32);
