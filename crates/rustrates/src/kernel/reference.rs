//! Tree-walking evaluator, one lane at a time: the test oracle for the compiled back ends.

use super::{RhsArgs, RhsArgsF32};
use crate::model::Circuit;

pub struct ReferenceKernel {
    circuit: Circuit,
}

impl ReferenceKernel {
    pub fn new(circuit: &Circuit) -> Self {
        Self { circuit: circuit.clone() }
    }
    pub fn rhs(&self, _args: RhsArgs<'_>) {
        let _ = &self.circuit;
        todo!("reference kernel: owned by the kernel/solve helper")
    }
    pub fn rhs_f32(&self, _args: RhsArgsF32<'_>) {
        todo!("reference kernel f32")
    }
}
