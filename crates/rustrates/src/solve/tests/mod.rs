//! Solver tests against independent references (analytic solutions, discrete closed forms,
//! algebraic fixed points, single-lane runs).

use std::sync::Arc;

use super::*;
use crate::kernel::test_kit::assert_lanes_equal_single_runs;
use crate::kernel::{Backend, KernelOptions, Precision};
use crate::model::test_models::{self, Builder};
use crate::model::{BinOp, Circuit, Expr, VarKind};

mod delays;
mod fused;
mod methods;
mod models;
mod sampling;

fn compile(c: &Circuit, precision: Precision) -> Kernel {
    Kernel::compile(
        c,
        &KernelOptions {
            backend: Backend::Reference,
            precision,
            ..KernelOptions::default()
        },
    )
    .expect("the reference back end always compiles")
}

/// `c` with its reference kernel in double precision.
fn with_reference_kernel(c: Circuit) -> (Circuit, Kernel) {
    let k = compile(&c, Precision::F64);
    (c, k)
}

fn out(c: &Circuit, name: &str) -> OutputBinding {
    OutputBinding {
        key: name.into(),
        var: c.find_var(name).expect("test models name their vars"),
    }
}

fn run_default(c: &Circuit, k: &Kernel, cfg: &SimConfig, outputs: &[OutputBinding], lanes: usize) -> Trajectories {
    simulate(
        k,
        cfg,
        &[],
        outputs,
        &default_params(c, lanes),
        &default_init(c, lanes),
        lanes,
    )
    .expect("valid run")
}

fn assert_bitwise_eq(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "sample {i}: {x} vs {y}");
    }
}

/// `x' = c·x²`, x(0) = 1: blows up at t = 1/c for c > 0, x = 1/(1 − c t).
fn blow_up() -> Circuit {
    let mut b = Builder::new("blowup");
    let x = b.var("n/op/x", VarKind::State, 1.0);
    let cc = b.var("n/op/c", VarKind::Param, 1.0);
    b.blow_up(x, cc);
    b.c
}

fn slot_of(c: &Circuit, name: &str) -> usize {
    c.layout().slot[c.find_var(name).unwrap_or_else(|| panic!("{name} exists")).0 as usize] as usize
}

fn compile_c(c: &Circuit) -> Kernel {
    let dir = std::env::temp_dir().join("rustrates-solve-tests-cache");
    Kernel::compile(
        c,
        &KernelOptions {
            backend: Backend::C,
            cache_dir: Some(dir),
            ..KernelOptions::default()
        },
    )
    .expect("the test machine has a C compiler")
}

fn compile_jit(c: &Circuit) -> Kernel {
    Kernel::compile(
        c,
        &KernelOptions {
            backend: Backend::Jit,
            ..KernelOptions::default()
        },
    )
    .expect("the JIT compiles the test models")
}
