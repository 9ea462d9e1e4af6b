//! Circuit IR → Cranelift IR for one kernel function over a block of lanes.
//!
//! Generated function (`extern "C"`):
//! `fn(lanes, t, y, p, u, dy, a, ctx)`, arrays structure-of-arrays with stride `lanes`.
//! Shape:
//!
//! ```text
//! entry:  i = 0
//! vhead:  if i + UNROLL*W <= lanes { vbody } else { shead }
//! vbody:  UNROLL interleaved copies of the whole rhs on W-wide vectors; i += UNROLL*W
//! shead:  if i < lanes { sbody } else { exit }
//! sbody:  the rhs on one lane in scalar registers; i += 1
//! ```
//!
//! Copies are interleaved node by node (each IR node is emitted for every copy before the
//! next node) because Cranelift does not schedule instructions: interleaving is what gives
//! the CPU independent work to overlap. Every operation is the same IEEE operation in both
//! loops, so a lane's result does not depend on which loop handled it.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2};
use cranelift_codegen::ir::{AbiParam, BlockArg, InstBuilder, Type, Value};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module};

use super::fold;
use super::loops::NetLoops;
use crate::kernel::KernelError;
use crate::model::{Circuit, Expr, ExprId, Layout};
use body::{Body, NodeAt};

mod body;
mod stepper;
mod validate;

pub(super) use stepper::define_stepper;
pub(super) use validate::validate;

/// Independent vector copies per main-loop iteration: two give the out-of-order core two
/// independent dependency chains per instruction stream; more mostly add spills, since
/// Cranelift allocates only xmm0–15. (Not tuned further; see the benchmark test in `jit.rs`.)
pub(super) const UNROLL: usize = 2;
const MAX_COPIES: usize = 4;

/// Element type of one compiled function.
#[derive(Clone, Copy, Debug)]
pub(super) struct Flavor {
    scalar: Type,
    vector: Type,
    /// Lanes per vector.
    width: usize,
    /// log2 of the element size in bytes.
    elem_shift: i64,
    single: bool,
}

pub(super) const F64_FLAVOR: Flavor = Flavor {
    scalar: F64,
    vector: F64X2,
    width: 2,
    elem_shift: 3,
    single: false,
};
pub(super) const F32_FLAVOR: Flavor = Flavor {
    scalar: F32,
    vector: F32X4,
    width: 4,
    elem_shift: 2,
    single: true,
};

fn codegen_err(reason: impl std::fmt::Display) -> KernelError {
    KernelError::Codegen {
        reason: reason.to_string(),
    }
}

pub(super) fn children(e: &Expr) -> Vec<ExprId> {
    match e {
        Expr::Const(_) | Expr::Var(_) | Expr::Time | Expr::Randn => Vec::new(),
        Expr::Neg(x) | Expr::Past(_, x) => vec![*x],
        Expr::Binary(_, x, y) => vec![*x, *y],
        Expr::Call(_, args) => args.clone(),
        Expr::Select(c, x, y) => vec![*c, *x, *y],
    }
}

/// Every expression id, each after all of its children, so that a pass over the list sees a
/// node's operands before the node. Assumes a validated circuit (ids in range, no cycles).
pub(super) fn children_first(circuit: &Circuit) -> Vec<ExprId> {
    let n = circuit.exprs.len();
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    for start in 0..n {
        let mut stack = vec![(ExprId(start as u32), false)];
        while let Some((id, expanded)) = stack.pop() {
            let ix = id.0 as usize;
            if done[ix] {
                continue;
            }
            if !expanded {
                stack.push((id, true));
                stack.extend(
                    children(circuit.expr(id))
                        .into_iter()
                        .filter(|c| !done[c.0 as usize])
                        .map(|c| (c, false)),
                );
                continue;
            }
            done[ix] = true;
            order.push(id);
        }
    }
    order
}

/// Declares and defines one kernel function named `name` in `module`: the whole circuit in
/// one pair of lane loops, or with `net`, per population a loop over its nodes around the
/// lane loops of one node's equations (`node: for i in 0..nodes { lane loops }`).
pub(super) fn define_kernel(
    module: &mut JITModule,
    circuit: &Circuit,
    layout: &Layout,
    flavor: Flavor,
    name: &str,
    net: Option<&NetLoops>,
) -> Result<FuncId, KernelError> {
    let ptr = module.target_config().pointer_type();
    // lanes t y p u dy a ctx
    let params = [ptr, F64, ptr, ptr, ptr, ptr, ptr, ptr];
    let konst = match net {
        Some(net) => fold::constants_except(circuit, flavor.single, &net.per_node_constants()),
        None => fold::constants(circuit, flavor.single),
    };
    define_function(module, name, &params, |module, b, params| {
        let (lanes, t64) = (params[0], params[1]);
        let arrays = Arrays {
            y: params[2],
            p: params[3],
            u: params[4],
            dy: params[5],
            a: params[6],
        };
        let stride = b.ins().ishl_imm_u(lanes, flavor.elem_shift);
        let t = if flavor.single { b.ins().fdemote(F32, t64) } else { t64 };
        let prog = Program {
            circuit,
            layout,
            konst: &konst,
        };
        let base = Env::over(lanes, stride, t, t64, params[7], arrays);
        let Some(net) = net else {
            lane_loops(module, b, prog, flavor, base, None, &mut |body| body.emit());
            return;
        };
        // The table outlives the function: the kernel owns both (`JitKernel::loops`).
        let table = b.ins().iconst(ptr, net.table.as_ptr() as i64);
        for pop in &net.pops {
            let zero = b.ins().iconst(ptr, 0);
            let nodes = b.ins().iconst(ptr, pop.nodes as i64);
            counted_loop(
                b,
                ptr,
                zero,
                1,
                |b, node| b.ins().icmp(IntCC::UnsignedLessThan, node, nodes),
                |b, node| {
                    let at = Some(NodeAt { pop, node, table });
                    lane_loops(module, b, prog, flavor, base, at, &mut |body| body.emit_population())
                },
            );
        }
    })
}

/// Declares a function `name` taking `params` and returning nothing in `module`, lets `emit`
/// write its body from the entry block (given the parameter values), returns at the block
/// `emit` ends in, and defines it.
fn define_function(
    module: &mut JITModule,
    name: &str,
    params: &[Type],
    emit: impl FnOnce(&mut JITModule, &mut FunctionBuilder<'_>, &[Value]),
) -> Result<FuncId, KernelError> {
    let mut sig = module.make_signature();
    sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
    let id = module
        .declare_function(name, Linkage::Local, &sig)
        .map_err(codegen_err)?;
    let frontend_config = module.target_config();
    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.switch_to_block(entry);
        b.append_block_params_for_function_params(entry);
        let values = b.block_params(entry).to_vec();
        emit(module, &mut b, &values);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(frontend_config);
    }
    // Machine code listing for performance work: `RUST_LOG=trace` with a logger installed.
    let dump = log::log_enabled!(log::Level::Trace);
    if dump {
        ctx.set_disasm(true);
        log::trace!("CLIF of {name}:\n{}", ctx.func.display());
    }
    module.define_function(id, &mut ctx).map_err(codegen_err)?;
    if let Some(code) = ctx.compiled_code().and_then(|c| c.vcode.as_ref()).filter(|_| dump) {
        log::trace!("machine code of {name}:\n{code}");
    }
    module.clear_context(&mut ctx);
    Ok(id)
}

#[derive(Clone, Copy)]
struct Arrays {
    y: Value,
    p: Value,
    u: Value,
    dy: Value,
    a: Value,
}

/// Loop-body inputs: lane index, row stride in bytes, time, the ctx pointer and arrays.
#[derive(Clone, Copy)]
struct Env {
    i: Value,
    stride: Value,
    /// Time in the flavor's element type.
    t: Value,
    t64: Value,
    kctx: Value,
    arrays: Arrays,
}

impl Env {
    /// The lane loops' inputs, `i` holding the lane count (each loop sets its lane index).
    fn over(lanes: Value, stride: Value, t: Value, t64: Value, kctx: Value, arrays: Arrays) -> Env {
        Env {
            i: lanes,
            stride,
            t,
            t64,
            kctx,
            arrays,
        }
    }
}

/// How one loop body evaluates: `copies` values of type `ty`, each covering `width` lanes.
#[derive(Clone, Copy)]
struct Shape {
    ty: Type,
    width: usize,
    copies: usize,
}

type Vals = [Value; MAX_COPIES];

/// What a loop body is compiled from.
#[derive(Clone, Copy)]
struct Program<'m> {
    circuit: &'m Circuit,
    layout: &'m Layout,
    /// Compile-time value of each expression that has one (`fold::constants`).
    konst: &'m [Option<f64>],
}

/// Emits `i = start; while fits(i) { body(i); i += step }` and continues in a new block after
/// the loop, returning the index the loop stopped at.
fn counted_loop<'f>(
    b: &mut FunctionBuilder<'f>,
    ptr: Type,
    start: Value,
    step: i64,
    fits: impl FnOnce(&mut FunctionBuilder<'f>, Value) -> Value,
    body: impl FnOnce(&mut FunctionBuilder<'f>, Value),
) -> Value {
    let head = b.create_block();
    let blk = b.create_block();
    let after = b.create_block();
    for block in [head, blk, after] {
        b.append_block_param(block, ptr);
    }
    b.ins().jump(head, &[BlockArg::Value(start)]);
    b.switch_to_block(head);
    let i = b.block_params(head)[0];
    let go = fits(b, i);
    b.ins()
        .brif(go, blk, &[BlockArg::Value(i)], after, &[BlockArg::Value(i)]);
    b.switch_to_block(blk);
    let i = b.block_params(blk)[0];
    body(b, i);
    let next = b.ins().iadd_imm_u(i, step);
    b.ins().jump(head, &[BlockArg::Value(next)]);
    b.switch_to_block(after);
    b.block_params(after)[0]
}

/// Emits the vector loop (UNROLL × `flavor.width` lanes per iteration) and the scalar tail
/// loop over `0..lanes` (`base.i` holds `lanes`), each body (for the node `at` of a
/// population loop, if any) produced by `f`; continues in a new block after both loops.
fn lane_loops(
    module: &mut JITModule,
    b: &mut FunctionBuilder<'_>,
    prog: Program<'_>,
    flavor: Flavor,
    base: Env,
    at: Option<NodeAt<'_>>,
    f: &mut dyn FnMut(&mut Body<'_, '_, '_>),
) {
    let ptr = module.target_config().pointer_type();
    let lanes = base.i;
    let step = (UNROLL * flavor.width) as i64;
    let vector = Shape {
        ty: flavor.vector,
        width: flavor.width,
        copies: UNROLL,
    };
    let scalar = Shape {
        ty: flavor.scalar,
        width: 1,
        copies: 1,
    };
    let zero = b.ins().iconst(ptr, 0);
    let tail = counted_loop(
        b,
        ptr,
        zero,
        step,
        |b, i| {
            let end = b.ins().iadd_imm_u(i, step);
            b.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, lanes)
        },
        |b, i| f(&mut Body::new(module, b, prog, flavor, vector, Env { i, ..base }, at)),
    );
    counted_loop(
        b,
        ptr,
        tail,
        1,
        |b, i| b.ins().icmp(IntCC::UnsignedLessThan, i, lanes),
        |b, i| f(&mut Body::new(module, b, prog, flavor, scalar, Env { i, ..base }, at)),
    );
}
