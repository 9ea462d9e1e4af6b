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
    fn powf(self, o: Self) -> Self;
    /// `f(x)` or `f(x, y)` (`y` ignored for unary functions) with the semantics every back
    /// end shares: `mathfns`'s definition in this precision.
    fn func(f: Func, x: Self, y: Self) -> Self;
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

impl crate::model::BinOp {
    /// `x op y` in `T`, comparisons giving 1 or 0: the one meaning of each operator for the
    /// evaluators that compute in Rust (the reference back end, constant folding, the tests').
    pub(crate) fn apply<T: Real>(self, x: T, y: T) -> T {
        use crate::model::BinOp::*;
        let truth = |b: bool| if b { T::ONE } else { T::ZERO };
        match self {
            Add => x + y,
            Sub => x - y,
            Mul => x * y,
            Div => x / y,
            Pow => x.powf(y),
            Lt => truth(x < y),
            Le => truth(x <= y),
            Gt => truth(x > y),
            Ge => truth(x >= y),
            Eq => truth(x == y),
            Ne => truth(x != y),
        }
    }
}

macro_rules! impl_real {
    ($t:ty, $eval:ident, $func:path, $pow:path) => {
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
            fn powf(self, o: Self) -> Self {
                $pow(self, o)
            }
            fn func(f: Func, x: Self, y: Self) -> Self {
                $func(f, x, y)
            }
            fn eval(kernel: &Kernel, args: RhsArgs<'_, $t>) {
                kernel.$eval(args);
            }
        }
    };
}
impl_real!(f64, rhs, super::mathfns::func_f64, super::mathfns::pow_f64);
impl_real!(f32, rhs_f32, super::mathfns::func_f32, super::mathfns::pow_f32);
