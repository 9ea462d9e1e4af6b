//! Cranelift JIT back end: generated machine code looping over lanes with SIMD.

use super::{KernelError, KernelOptions, RhsArgs, RhsArgsF32};
use crate::model::Circuit;

pub struct JitKernel {}

impl JitKernel {
    pub fn new(_circuit: &Circuit, _opts: &KernelOptions) -> Result<Self, KernelError> {
        Err(KernelError::Codegen { reason: "the Cranelift back end is not built yet".into() })
    }
    pub fn rhs(&self, _args: RhsArgs<'_>) {}
    pub fn rhs_f32(&self, _args: RhsArgsF32<'_>) {}
}
