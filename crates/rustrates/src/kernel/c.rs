//! C back end: emit C for the kernel, compile it with the system compiler, cache and load it.

use super::{Backend, KernelError, KernelOptions, RhsArgs, RhsArgsF32};
use crate::model::Circuit;

pub struct CKernel {}

impl CKernel {
    pub fn new(_circuit: &Circuit, _opts: &KernelOptions) -> Result<Self, KernelError> {
        Err(KernelError::NoCompiler { compiler: "cc".into(), reason: "the C back end is not built yet".into() })
    }
    pub fn rhs(&self, _args: RhsArgs<'_>) {}
    pub fn rhs_f32(&self, _args: RhsArgsF32<'_>) {}
}

/// What `Backend::Auto` resolves to for this circuit and run size.
pub fn auto_choice(_circuit: &Circuit, _opts: &KernelOptions) -> Backend {
    Backend::Reference
}
