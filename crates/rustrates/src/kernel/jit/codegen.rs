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

use std::collections::HashMap;

use cranelift_codegen::entity::packed_option::ReservedValue;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I32};
use cranelift_codegen::ir::{AbiParam, BlockArg, FuncRef, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module};

use super::fold::{self, PowPlan};
use crate::kernel::KernelError;
use crate::kernel::{mathfns, Tableau};
use crate::model::{BinOp, Circuit, Expr, ExprId, Func, Layout, VarId, VarKind};

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

/// Checks the invariants codegen relies on, so that emission itself cannot fail half way:
/// ids in range, arities, no expression cycles, algebraics read only after assignment.
pub(super) fn validate(circuit: &Circuit, layout: &Layout) -> Result<(), KernelError> {
    let n_exprs = circuit.exprs.len();
    let n_vars = circuit.vars.len();
    let expr_ok = |e: ExprId| -> Result<(), KernelError> {
        if (e.0 as usize) < n_exprs {
            Ok(())
        } else {
            Err(codegen_err(format_args!(
                "expression id {} out of range ({n_exprs} expressions)",
                e.0
            )))
        }
    };
    let var_ok = |v: VarId| -> Result<(), KernelError> {
        if (v.0 as usize) < n_vars {
            Ok(())
        } else {
            Err(codegen_err(format_args!(
                "variable id {} out of range ({n_vars} variables)",
                v.0
            )))
        }
    };
    for o in &circuit.odes {
        var_ok(o.var)?;
        expr_ok(o.rhs)?;
        if circuit.var(o.var).kind != VarKind::State {
            return Err(codegen_err(format_args!(
                "'{}' has an ODE but is not a state",
                circuit.var(o.var).name
            )));
        }
    }
    for a in &circuit.assigns {
        var_ok(a.var)?;
        expr_ok(a.rhs)?;
        if circuit.var(a.var).kind != VarKind::Algebraic {
            return Err(codegen_err(format_args!(
                "'{}' is assigned but is not algebraic",
                circuit.var(a.var).name
            )));
        }
    }
    for e in &circuit.exprs {
        match e {
            Expr::Var(v) | Expr::Past(v, _) => var_ok(*v)?,
            Expr::Call(f, args) if args.len() != f.arity() => {
                return Err(codegen_err(format_args!(
                    "{f:?} takes {} argument(s), the IR gives {}",
                    f.arity(),
                    args.len()
                )))
            }
            _ => {}
        }
        for c in children(e) {
            expr_ok(c)?;
        }
    }
    // Cycle check and algebraic ordering, by walking from each root in evaluation order.
    let mut state = vec![0u8; n_exprs]; // 0 unseen, 1 on the stack, 2 done
    let mut assigned = vec![false; n_vars];
    let roots = circuit
        .assigns
        .iter()
        .map(|a| (a.rhs, Some(a.var)))
        .chain(circuit.odes.iter().map(|o| (o.rhs, None)));
    for (root, target) in roots {
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            let ix = id.0 as usize;
            if expanded {
                state[ix] = 2;
                continue;
            }
            match state[ix] {
                2 => continue,
                1 => return Err(codegen_err(format_args!("expression {} depends on itself", id.0))),
                _ => {}
            }
            let e = circuit.expr(id);
            if let Expr::Var(v) | Expr::Past(v, _) = e {
                let var = circuit.var(*v);
                // A delayed read may name an algebraic assigned later (its current value is
                // then the one stored in `a`, as the reference evaluator reads it).
                if matches!(e, Expr::Var(_)) && var.kind == VarKind::Algebraic && !assigned[v.0 as usize] {
                    return Err(codegen_err(format_args!(
                        "'{}' is read before it is assigned",
                        var.name
                    )));
                }
                if layout.slot[v.0 as usize] == u32::MAX {
                    return Err(codegen_err(format_args!(
                        "'{}' has no slot (a state without an ODE?)",
                        var.name
                    )));
                }
            }
            state[ix] = 1;
            stack.push((id, true));
            for c in children(e) {
                match state[c.0 as usize] {
                    2 => {}
                    1 => return Err(codegen_err(format_args!("expression {} depends on itself", c.0))),
                    _ => stack.push((c, false)),
                }
            }
        }
        // Post-order with a shared `state`: a node that finished under an earlier root is
        // done; nodes of this root are all done now.
        if let Some(v) = target {
            assigned[v.0 as usize] = true;
        }
    }
    Ok(())
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

/// Declares and defines one kernel function named `name` in `module`.
pub(super) fn define_kernel(
    module: &mut JITModule,
    circuit: &Circuit,
    layout: &Layout,
    flavor: Flavor,
    name: &str,
) -> Result<FuncId, KernelError> {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(ptr)); // lanes
    sig.params.push(AbiParam::new(F64)); // t
    for _ in 0..6 {
        sig.params.push(AbiParam::new(ptr)); // y p u dy a ctx
    }
    let id = module
        .declare_function(name, Linkage::Local, &sig)
        .map_err(codegen_err)?;

    let frontend_config = module.target_config();
    let konst = fold::constants(circuit, flavor.single);
    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        let vhead = b.create_block();
        let vbody = b.create_block();
        let shead = b.create_block();
        let sbody = b.create_block();
        let exit = b.create_block();
        for blk in [vhead, vbody, shead, sbody] {
            b.append_block_param(blk, ptr);
        }

        b.switch_to_block(entry);
        b.append_block_params_for_function_params(entry);
        let params = b.block_params(entry).to_vec();
        let (lanes, t64) = (params[0], params[1]);
        let arrays = Arrays {
            y: params[2],
            p: params[3],
            u: params[4],
            dy: params[5],
            a: params[6],
        };
        let kctx = params[7];
        let stride = b.ins().ishl_imm_u(lanes, flavor.elem_shift);
        let t = if flavor.single { b.ins().fdemote(F32, t64) } else { t64 };
        let zero = b.ins().iconst(ptr, 0);
        b.ins().jump(vhead, &[BlockArg::Value(zero)]);

        let step = (UNROLL * flavor.width) as i64;
        b.switch_to_block(vhead);
        let i = b.block_params(vhead)[0];
        let end = b.ins().iadd_imm_u(i, step);
        let fits = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, lanes);
        b.ins()
            .brif(fits, vbody, &[BlockArg::Value(i)], shead, &[BlockArg::Value(i)]);

        b.switch_to_block(vbody);
        let i = b.block_params(vbody)[0];
        let shape = Shape {
            ty: flavor.vector,
            width: flavor.width,
            copies: UNROLL,
        };
        Body::new(
            module,
            &mut b,
            Program {
                circuit,
                layout,
                konst: &konst,
            },
            flavor,
            shape,
            Env {
                i,
                stride,
                t,
                t64,
                kctx,
                arrays,
            },
        )
        .emit();
        let next = b.ins().iadd_imm_u(i, step);
        b.ins().jump(vhead, &[BlockArg::Value(next)]);

        b.switch_to_block(shead);
        let i = b.block_params(shead)[0];
        let more = b.ins().icmp(IntCC::UnsignedLessThan, i, lanes);
        b.ins().brif(more, sbody, &[BlockArg::Value(i)], exit, &[]);

        b.switch_to_block(sbody);
        let i = b.block_params(sbody)[0];
        let shape = Shape {
            ty: flavor.scalar,
            width: 1,
            copies: 1,
        };
        Body::new(
            module,
            &mut b,
            Program {
                circuit,
                layout,
                konst: &konst,
            },
            flavor,
            shape,
            Env {
                i,
                stride,
                t,
                t64,
                kctx,
                arrays,
            },
        )
        .emit();
        let next = b.ins().iadd_imm_u(i, 1);
        b.ins().jump(shead, &[BlockArg::Value(next)]);

        b.switch_to_block(exit);
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

struct Body<'m, 'b, 'f> {
    module: &'m mut JITModule,
    b: &'b mut FunctionBuilder<'f>,
    circuit: &'m Circuit,
    layout: &'m Layout,
    /// Compile-time value of each expression that has one (`fold::constants`).
    konst: &'m [Option<f64>],
    flavor: Flavor,
    shape: Shape,
    env: Env,
    i_bytes: Value,
    memo: Vec<Option<Vals>>,
    vars: HashMap<VarId, Vals>,
    consts: HashMap<u64, Value>,
    funcs: HashMap<&'static str, FuncRef>,
    /// Fused stepper only: `1/d` for loop-invariant divisors `d`, computed before the loop.
    recip: HashMap<ExprId, Vals>,
    /// Fused stepper only: rows of the scratch array (`arrays.a`) holding hoisted values
    /// and reciprocals, loaded where first used (loading them all up front makes Cranelift
    /// keep them live across the whole body and spill them).
    hoist_rows: HashMap<ExprId, u32>,
    recip_rows: HashMap<ExprId, u32>,
    hoist_cache: HashMap<ExprId, Vals>,
}

/// Access flags: the caller checked every slice length, so nothing traps; no `aligned`
/// (rows start at arbitrary multiples of 8 bytes, and Cranelift must not fold them into
/// SSE instructions that require 16).
fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

impl<'m, 'b, 'f> Body<'m, 'b, 'f> {
    fn new(
        module: &'m mut JITModule,
        b: &'b mut FunctionBuilder<'f>,
        prog: Program<'m>,
        flavor: Flavor,
        shape: Shape,
        env: Env,
    ) -> Self {
        let i_bytes = b.ins().ishl_imm_u(env.i, flavor.elem_shift);
        let Program { circuit, layout, konst } = prog;
        Body {
            module,
            b,
            circuit,
            layout,
            konst,
            flavor,
            shape,
            env,
            i_bytes,
            memo: vec![None; circuit.exprs.len()],
            vars: HashMap::new(),
            consts: HashMap::new(),
            funcs: HashMap::new(),
            recip: HashMap::new(),
            hoist_rows: HashMap::new(),
            recip_rows: HashMap::new(),
            hoist_cache: HashMap::new(),
        }
    }

    fn emit(mut self) {
        let circuit = self.circuit;
        for asg in &circuit.assigns {
            let v = self.eval(asg.rhs);
            let slot = self.layout.slot[asg.var.0 as usize];
            self.store(self.env.arrays.a, slot, v);
            self.vars.insert(asg.var, v);
        }
        for ode in &circuit.odes {
            let v = self.eval(ode.rhs);
            let slot = self.layout.slot[ode.var.0 as usize];
            self.store(self.env.arrays.dy, slot, v);
        }
    }

    fn n(&self) -> usize {
        self.shape.copies
    }

    fn row(&mut self, base: Value, slot: u32) -> Value {
        let off = self.b.ins().imul_imm_u(self.env.stride, i64::from(slot));
        let row = self.b.ins().iadd(base, off);
        self.b.ins().iadd(row, self.i_bytes)
    }

    fn copy_offset(&self, k: usize) -> i32 {
        // k < MAX_COPIES and width ≤ 4: at most 16 elements of 8 bytes.
        ((k * self.shape.width) << self.flavor.elem_shift) as i32
    }

    fn load(&mut self, base: Value, slot: u32) -> Vals {
        let addr = self.row(base, slot);
        let mut out = [Value::reserved_value(); MAX_COPIES];
        for (k, o) in out.iter_mut().enumerate().take(self.n()) {
            let off = self.copy_offset(k);
            *o = self.b.ins().load(self.shape.ty, mem(), addr, off);
        }
        out
    }

    fn store(&mut self, base: Value, slot: u32, v: Vals) {
        let addr = self.row(base, slot);
        for (k, &x) in v.iter().enumerate().take(self.n()) {
            let off = self.copy_offset(k);
            self.b.ins().store(mem(), x, addr, off);
        }
    }

    /// A constant of the element type, broadcast to the body's shape.
    fn constant(&mut self, c: f64) -> Value {
        let key = c.to_bits();
        if let Some(&v) = self.consts.get(&key) {
            return v;
        }
        let s = if self.flavor.single {
            self.b.ins().f32const(c as f32)
        } else {
            self.b.ins().f64const(c)
        };
        let v = if self.shape.width > 1 {
            self.b.ins().splat(self.shape.ty, s)
        } else {
            s
        };
        self.consts.insert(key, v);
        v
    }

    fn splat_all(&mut self, x: Value) -> Vals {
        let v = if self.shape.width > 1 {
            self.b.ins().splat(self.shape.ty, x)
        } else {
            x
        };
        [v; MAX_COPIES]
    }

    fn map1(&mut self, x: Vals, mut f: impl FnMut(&mut FunctionBuilder<'f>, Value) -> Value) -> Vals {
        let mut out = x;
        for o in out.iter_mut().take(self.n()) {
            *o = f(self.b, *o);
        }
        out
    }

    fn map2(&mut self, x: Vals, y: Vals, mut f: impl FnMut(&mut FunctionBuilder<'f>, Value, Value) -> Value) -> Vals {
        let mut out = x;
        for (o, &yy) in out.iter_mut().zip(y.iter()).take(self.n()) {
            *o = f(self.b, *o, yy);
        }
        out
    }

    /// `x cc y` as 1.0 / 0.0.
    fn compare(&mut self, cc: FloatCC, x: Vals, y: Vals) -> Vals {
        let one = self.constant(1.0);
        let zero = self.constant(0.0);
        let ty = self.shape.ty;
        let vector = self.shape.width > 1;
        self.map2(x, y, |b, x, y| {
            let m = b.ins().fcmp(cc, x, y);
            if vector {
                // All-ones lanes AND 1.0 = 1.0; all-zeros lanes give +0.0.
                let m = b.ins().bitcast(ty, MemFlagsData::new(), m);
                b.ins().band(m, one)
            } else {
                b.ins().select(m, one, zero)
            }
        })
    }

    /// Per copy: `cc(x, y) ? a : b`, lane-wise.
    fn select_where(&mut self, cc: FloatCC, x: Vals, y: Vals, a: Vals, bb: Vals) -> Vals {
        let ty = self.shape.ty;
        let vector = self.shape.width > 1;
        let mut out = a;
        for k in 0..self.n() {
            let m = self.b.ins().fcmp(cc, x[k], y[k]);
            out[k] = if vector {
                let m = self.b.ins().bitcast(ty, MemFlagsData::new(), m);
                self.b.ins().bitselect(m, a[k], bb[k])
            } else {
                self.b.ins().select(m, a[k], bb[k])
            };
        }
        out
    }

    fn func_ref(&mut self, name: &'static str, params: &[Type], ret: Type) -> FuncRef {
        if let Some(&f) = self.funcs.get(name) {
            return f;
        }
        let mut sig = self.module.make_signature();
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        sig.returns.push(AbiParam::new(ret));
        let id = self
            .module
            .declare_function(name, Linkage::Import, &sig)
            .expect("each helper symbol is declared with one fixed signature");
        let f = self.module.declare_func_in_func(id, self.b.func);
        self.funcs.insert(name, f);
        f
    }

    /// Calls `name` element by element: `args` are element-typed values, the result too.
    fn call_elementwise(&mut self, name: &'static str, args: &[Vals]) -> Vals {
        let el = self.flavor.scalar;
        let f = self.func_ref(name, &vec![el; args.len()], el);
        self.per_element(args, |this, _lane, xs| {
            let call = this.b.ins().call(f, xs);
            this.b.inst_results(call)[0]
        })
    }

    /// Applies `g(self, lane_offset, scalars)` to every element of every copy and reassembles
    /// vectors; `lane_offset` is the element's lane relative to `i`.
    fn per_element(&mut self, args: &[Vals], mut g: impl FnMut(&mut Self, i64, &[Value]) -> Value) -> Vals {
        let mut out = [Value::reserved_value(); MAX_COPIES];
        let w = self.shape.width;
        let mut xs = Vec::with_capacity(args.len());
        for (k, o) in out.iter_mut().enumerate().take(self.n()) {
            let mut acc = None;
            for j in 0..w {
                xs.clear();
                for a in args {
                    let x = if w > 1 {
                        self.b.ins().extractlane(a[k], j as u8)
                    } else {
                        a[k]
                    };
                    xs.push(x);
                }
                let r = g(self, (k * w + j) as i64, &xs);
                acc = Some(match acc {
                    None if w > 1 => self.b.ins().splat(self.shape.ty, r),
                    None => r,
                    Some(v) => self.b.ins().insertlane(v, r, j as u8),
                });
            }
            *o = acc.expect("a shape has at least one lane");
        }
        out
    }

    fn widen(&mut self, x: Value) -> Value {
        if self.flavor.single {
            self.b.ins().fpromote(F64, x)
        } else {
            x
        }
    }

    fn narrow(&mut self, x: Value) -> Value {
        if self.flavor.single {
            self.b.ins().fdemote(F32, x)
        } else {
            x
        }
    }

    fn var(&mut self, v: VarId) -> Vals {
        if let Some(&x) = self.vars.get(&v) {
            return x;
        }
        let slot = self.layout.slot[v.0 as usize];
        let base = match self.circuit.var(v).kind {
            VarKind::State => self.env.arrays.y,
            VarKind::Param => self.env.arrays.p,
            VarKind::Input => self.env.arrays.u,
            // `validate` guarantees an algebraic is assigned (and in `vars`) before any read;
            // reading the stored row instead is the same value.
            VarKind::Algebraic => self.env.arrays.a,
        };
        let x = self.load(base, slot);
        self.vars.insert(v, x);
        x
    }

    /// Evaluates `root` (post-order, iterative: edge sums of big circuits nest deeply).
    fn eval(&mut self, root: ExprId) -> Vals {
        let circuit = self.circuit;
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if self.memo[id.0 as usize].is_some() {
                continue;
            }
            if let Some(&row) = self.hoist_rows.get(&id) {
                let v = match self.hoist_cache.get(&id) {
                    Some(&v) => v,
                    None => {
                        let v = self.load(self.env.arrays.a, row);
                        self.hoist_cache.insert(id, v);
                        v
                    }
                };
                self.memo[id.0 as usize] = Some(v);
                continue;
            }
            if let Some(c) = self.konst[id.0 as usize] {
                let v = self.constant(c);
                self.memo[id.0 as usize] = Some([v; MAX_COPIES]);
                continue;
            }
            let e = circuit.expr(id);
            if !expanded {
                stack.push((id, true));
                for c in children(e) {
                    if self.memo[c.0 as usize].is_none() {
                        stack.push((c, false));
                    }
                }
                continue;
            }
            let v = self.node(id, e);
            self.memo[id.0 as usize] = Some(v);
        }
        self.memo[root.0 as usize].expect("the root was just evaluated")
    }

    /// `1/d` if the fused stepper hoisted it (loaded on first use).
    fn recip_of(&mut self, d: ExprId) -> Option<Vals> {
        if let Some(&r) = self.recip.get(&d) {
            return Some(r);
        }
        let row = *self.recip_rows.get(&d)?;
        let r = self.load(self.env.arrays.a, row);
        self.recip.insert(d, r);
        Some(r)
    }

    fn get(&self, e: ExprId) -> Vals {
        self.memo[e.0 as usize].expect("children are evaluated before their parent")
    }

    fn node(&mut self, id: ExprId, e: &Expr) -> Vals {
        match e {
            Expr::Const(c) => {
                let v = self.constant(*c);
                [v; MAX_COPIES]
            }
            Expr::Var(v) => self.var(*v),
            Expr::Time => self.splat_all(self.env.t),
            Expr::Neg(x) => {
                let x = self.get(*x);
                self.map1(x, |b, x| b.ins().fneg(x))
            }
            Expr::Binary(op, x, y) => self.binary(*op, *x, *y),
            Expr::Call(f, args) => self.call(*f, args),
            Expr::Select(c, x, y) => {
                if let Some(k) = self.konst[c.0 as usize] {
                    return if k != 0.0 { self.get(*x) } else { self.get(*y) };
                }
                let (c, x, y) = (self.get(*c), self.get(*x), self.get(*y));
                let zero = self.constant(0.0);
                // NotEqual is true for NaN: a NaN condition counts as true, as in C and numpy.
                self.select_where(FloatCC::NotEqual, c, [zero; MAX_COPIES], x, y)
            }
            Expr::Past(var, d) => {
                let d = self.get(*d);
                let var_id = var.0;
                let ptr = self.module.target_config().pointer_type();
                let f = self.func_ref(mathfns::PAST_SYMBOL, &[ptr, I32, ptr, F64, F64], F64);
                let delayed = self.per_element(&[d], |this, lane, xs| {
                    let d64 = this.widen(xs[0]);
                    let var = this.b.ins().iconst(I32, i64::from(var_id));
                    let lane = this.b.ins().iadd_imm_u(this.env.i, lane);
                    let call = this.b.ins().call(f, &[this.env.kctx, var, lane, this.env.t64, d64]);
                    let r = this.b.inst_results(call)[0];
                    this.narrow(r)
                });
                // As the reference evaluator: a delay ≤ 0 (or NaN) reads the current value.
                // The hook was still called for those lanes; its answer is discarded.
                let current = self.var(*var);
                let zero = [self.constant(0.0); MAX_COPIES];
                self.select_where(FloatCC::GreaterThan, d, zero, delayed, current)
            }
            Expr::Randn => {
                let source = id.0;
                let ptr = self.module.target_config().pointer_type();
                let f = self.func_ref(mathfns::RANDN_SYMBOL, &[ptr, I32, ptr], F64);
                self.per_element(&[], |this, lane, _| {
                    let src = this.b.ins().iconst(I32, i64::from(source));
                    let lane = this.b.ins().iadd_imm_u(this.env.i, lane);
                    let call = this.b.ins().call(f, &[this.env.kctx, src, lane]);
                    let r = this.b.inst_results(call)[0];
                    this.narrow(r)
                })
            }
        }
    }

    fn binary(&mut self, op: BinOp, xe: ExprId, ye: ExprId) -> Vals {
        let (x, y) = (self.get(xe), self.get(ye));
        let (kx, ky) = (self.konst[xe.0 as usize], self.konst[ye.0 as usize]);
        match op {
            // Exact identities (also for NaN, ±0 and infinities): no instruction needed.
            BinOp::Mul | BinOp::Div if ky == Some(1.0) => x,
            BinOp::Mul if kx == Some(1.0) => y,
            BinOp::Add => self.map2(x, y, |b, x, y| b.ins().fadd(x, y)),
            BinOp::Sub => self.map2(x, y, |b, x, y| b.ins().fsub(x, y)),
            BinOp::Mul => self.map2(x, y, |b, x, y| b.ins().fmul(x, y)),
            BinOp::Div => match self.recip_of(ye) {
                Some(r) => self.map2(x, r, |b, x, r| b.ins().fmul(x, r)),
                None => self.map2(x, y, |b, x, y| b.ins().fdiv(x, y)),
            },
            BinOp::Pow => self.pow(x, y, ky),
            BinOp::Lt => self.compare(FloatCC::LessThan, x, y),
            BinOp::Le => self.compare(FloatCC::LessThanOrEqual, x, y),
            BinOp::Gt => self.compare(FloatCC::GreaterThan, x, y),
            BinOp::Ge => self.compare(FloatCC::GreaterThanOrEqual, x, y),
            BinOp::Eq => self.compare(FloatCC::Equal, x, y),
            // Unordered-or-not-equal: NaN != x is true, as in C and numpy.
            BinOp::Ne => self.compare(FloatCC::NotEqual, x, y),
        }
    }

    /// `x ** y`; constant exponents 0, ±1, ±2, 3, 4 and 1/2 become multiplications, a division
    /// or `sqrt` (within an ulp or two of `pow`, and much faster; `fold::pow_plan` is the one
    /// table, shared with constant folding), anything else calls `pow`.
    fn pow(&mut self, x: Vals, y: Vals, exponent: Option<f64>) -> Vals {
        let one = self.constant(1.0);
        let square = |this: &mut Self, x: Vals| this.map2(x, x, |b, x, y| b.ins().fmul(x, y));
        match exponent.map_or(PowPlan::Call, fold::pow_plan) {
            PowPlan::One => [one; MAX_COPIES],
            PowPlan::Identity => x,
            PowPlan::Square => square(self, x),
            PowPlan::Cube => {
                let x2 = square(self, x);
                self.map2(x2, x, |b, x, y| b.ins().fmul(x, y))
            }
            PowPlan::Fourth => {
                let x2 = square(self, x);
                square(self, x2)
            }
            PowPlan::Reciprocal => self.map1(x, |b, x| b.ins().fdiv(one, x)),
            PowPlan::ReciprocalSquare => {
                let x2 = square(self, x);
                self.map1(x2, |b, x| b.ins().fdiv(one, x))
            }
            PowPlan::Sqrt => self.map1(x, |b, x| b.ins().sqrt(x)),
            PowPlan::Call => {
                let name = mathfns::POW_SYMBOL[usize::from(self.flavor.single)];
                self.call_elementwise(name, &[x, y])
            }
        }
    }

    fn call(&mut self, f: Func, args: &[ExprId]) -> Vals {
        let x = self.get(args[0]);
        match f {
            Func::Abs => self.map1(x, |b, x| b.ins().fabs(x)),
            Func::Sqrt => self.map1(x, |b, x| b.ins().sqrt(x)),
            Func::Floor => self.map1(x, |b, x| b.ins().floor(x)),
            Func::Ceil => self.map1(x, |b, x| b.ins().ceil(x)),
            // Cranelift's fmax/fmin propagate NaN and order -0 < +0, as numpy's maximum does.
            Func::Max => {
                let y = self.get(args[1]);
                self.map2(x, y, |b, x, y| b.ins().fmax(x, y))
            }
            Func::Min => {
                let y = self.get(args[1]);
                self.map2(x, y, |b, x, y| b.ins().fmin(x, y))
            }
            Func::Heaviside => {
                let zero = [self.constant(0.0); MAX_COPIES];
                let half = [self.constant(0.5); MAX_COPIES];
                let one = [self.constant(1.0); MAX_COPIES];
                // x > 0 → 1, x == 0 → 1/2, x < 0 → 0, NaN → NaN (x itself).
                let r = self.select_where(FloatCC::LessThan, x, zero, zero, x);
                let r = self.select_where(FloatCC::Equal, x, zero, half, r);
                self.select_where(FloatCC::GreaterThan, x, zero, one, r)
            }
            Func::Sign => {
                let zero = [self.constant(0.0); MAX_COPIES];
                let one = [self.constant(1.0); MAX_COPIES];
                let minus = [self.constant(-1.0); MAX_COPIES];
                // ±0 and NaN pass through unchanged.
                let r = self.select_where(FloatCC::LessThan, x, zero, minus, x);
                self.select_where(FloatCC::GreaterThan, x, zero, one, r)
            }
            Func::Arctan2 => {
                let y = self.get(args[1]);
                let name = mathfns::ATAN2_SYMBOL[usize::from(self.flavor.single)];
                self.call_elementwise(name, &[x, y])
            }
            _ => {
                let name = mathfns::unary_symbol(f, self.flavor.single)
                    .expect("every function without an inline lowering has a helper symbol");
                self.call_elementwise(name, &[x])
            }
        }
    }
}

/// Which expressions stay the same over a fused run: built from constants, parameters and
/// inputs only (inputs are held constant over a `steps` call).
fn invariants(circuit: &Circuit) -> Vec<bool> {
    let n = circuit.exprs.len();
    let mut inv = vec![false; n];
    let mut done = vec![false; n];
    for start in 0..n {
        let mut stack = vec![(ExprId(start as u32), false)];
        while let Some((id, expanded)) = stack.pop() {
            let ix = id.0 as usize;
            if done[ix] {
                continue;
            }
            let e = circuit.expr(id);
            if !expanded {
                stack.push((id, true));
                stack.extend(
                    children(e)
                        .into_iter()
                        .filter(|c| !done[c.0 as usize])
                        .map(|c| (c, false)),
                );
                continue;
            }
            done[ix] = true;
            inv[ix] = match e {
                Expr::Const(_) => true,
                Expr::Var(v) => matches!(circuit.var(*v).kind, VarKind::Param | VarKind::Input),
                Expr::Time | Expr::Past(..) | Expr::Randn => false,
                _ => children(e).iter().all(|c| inv[c.0 as usize]),
            };
        }
    }
    inv
}

/// Expressions reachable from the assignments and ODEs, in no particular order.
fn reachable(circuit: &Circuit) -> Vec<ExprId> {
    let mut seen = vec![false; circuit.exprs.len()];
    let mut stack: Vec<ExprId> = circuit
        .assigns
        .iter()
        .map(|a| a.rhs)
        .chain(circuit.odes.iter().map(|o| o.rhs))
        .collect();
    let mut out = Vec::new();
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut seen[id.0 as usize], true) {
            continue;
        }
        out.push(id);
        stack.extend(children(circuit.expr(id)));
    }
    out
}

/// What the fused stepper keeps per lane in its scratch rows: loop-invariant values that
/// the step loop reads (computed once per call), and reciprocals of invariant divisors.
struct Hoisted {
    /// Invariant, non-constant expressions read by a varying parent (bare parameter and
    /// input reads excluded: the step loop loads those from `p`/`u` directly).
    values: Vec<ExprId>,
    /// Invariant divisors `d` whose `x / d` becomes `x · (1/d)`.
    recips: Vec<ExprId>,
}

impl Hoisted {
    fn rows(&self) -> usize {
        self.values.len() + self.recips.len()
    }
}

fn hoisted(circuit: &Circuit, konst: &[Option<f64>], inv: &[bool], reach: &[ExprId], reciprocal: bool) -> Hoisted {
    let mut values = Vec::new();
    let mut recips = Vec::new();
    let mut seen = vec![false; circuit.exprs.len()];
    let mut seen_recip = vec![false; circuit.exprs.len()];
    for &id in reach {
        if inv[id.0 as usize] {
            continue;
        }
        let e = circuit.expr(id);
        for c in children(e) {
            let ci = c.0 as usize;
            let bare = matches!(circuit.expr(c), Expr::Var(_));
            if inv[ci] && konst[ci].is_none() && !bare && !std::mem::replace(&mut seen[ci], true) {
                values.push(c);
            }
        }
        if let Expr::Binary(BinOp::Div, _, d) = e {
            let di = d.0 as usize;
            if reciprocal && inv[di] && konst[di] != Some(1.0) && !std::mem::replace(&mut seen_recip[di], true) {
                recips.push(*d);
            }
        }
    }
    values.sort();
    recips.sort();
    Hoisted { values, recips }
}

/// Declares and defines a fused fixed-step integrator:
/// `fn(lanes, s0, nsteps, t0, dt, y, p, u, work, ctx, prologue)`, advancing `y`
/// (`[state][lane]`) in place by steps `s0 .. s0 + nsteps` of `tab`, step `s` starting at
/// `t0 + s·dt`. First, when `prologue` is nonzero, per lane, the expressions of parameters
/// and inputs only that the rhs needs are computed once into `work` (rows × lanes values,
/// rows returned with the id; a later call with the same `p`, `u` may skip this); with `reciprocal`, a division by such an expression becomes a multiplication by
/// its reciprocal (≤ 1 ulp per division; `false` keeps every result bit-identical to stepping
/// with the rhs kernel and the solver's stage arithmetic). Then the step loop runs outside
/// the lane loop, as in `montbrio_grid.c`: lanes are independent, so the CPU overlaps them,
/// while a block's rows stay in L1. The circuit must not contain `Past` or `Randn`.
pub(super) fn define_stepper(
    module: &mut JITModule,
    circuit: &Circuit,
    layout: &Layout,
    tab: &Tableau,
    reciprocal: bool,
    fixed_lanes: Option<usize>,
    name: &str,
) -> Result<(FuncId, usize), KernelError> {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    for t in [ptr, ptr, ptr, F64, F64, ptr, ptr, ptr, ptr, ptr, ptr] {
        sig.params.push(AbiParam::new(t)); // lanes s0 nsteps t0 dt y p u work ctx prologue
    }
    let id = module
        .declare_function(name, Linkage::Local, &sig)
        .map_err(codegen_err)?;
    let frontend_config = module.target_config();
    let konst = fold::constants(circuit, false);
    let inv = invariants(circuit);
    let reach = reachable(circuit);
    let hoist = hoisted(circuit, &konst, &inv, &reach, reciprocal);
    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.switch_to_block(entry);
        b.append_block_params_for_function_params(entry);
        let params = b.block_params(entry).to_vec();
        let (s0, nsteps, t0, dt) = (params[1], params[2], params[3], params[4]);
        // A constant lane count makes every row offset a constant: addresses become a base
        // plus a displacement instead of products computed in the loop.
        let lanes = match fixed_lanes {
            Some(n) => b.ins().iconst(ptr, n as i64),
            None => params[0],
        };
        let (y, p, u, work, kctx, prologue) = (params[5], params[6], params[7], params[8], params[9], params[10]);
        let stride = b.ins().ishl_imm_u(lanes, 3);
        // `a` is never written; `dy` holds the hoisted rows (so `store`/`load` reach them).
        let arrays = Arrays {
            y,
            p,
            u,
            dy: work,
            a: work,
        };
        let prog = Program {
            circuit,
            layout,
            konst: &konst,
        };
        let base = Env {
            i: lanes,
            stride,
            t: t0,
            t64: t0,
            kctx,
            arrays,
        };

        // Prologue (when asked for): hoisted rows.
        let prologue_blk = b.create_block();
        let main_blk = b.create_block();
        b.ins().brif(prologue, prologue_blk, &[], main_blk, &[]);
        b.switch_to_block(prologue_blk);
        lane_loops(module, &mut b, prog, base, &mut |body| {
            for (row, &e) in hoist.values.iter().enumerate() {
                let v = body.eval(e);
                body.store(work, row as u32, v);
            }
            let one = body.constant(1.0);
            for (k, &d) in hoist.recips.iter().enumerate() {
                let v = body.eval(d);
                let r = body.map1(v, |b, x| b.ins().fdiv(one, x));
                body.store(work, (hoist.values.len() + k) as u32, r);
            }
        });
        b.ins().jump(main_blk, &[]);
        b.switch_to_block(main_blk);

        // Step loop around the lane loops.
        let head = b.create_block();
        let step_blk = b.create_block();
        let exit = b.create_block();
        b.append_block_param(head, ptr);
        b.append_block_param(step_blk, ptr);
        let end = b.ins().iadd(s0, nsteps);
        b.ins().jump(head, &[BlockArg::Value(s0)]);
        b.switch_to_block(head);
        let s = b.block_params(head)[0];
        let go = b.ins().icmp(IntCC::UnsignedLessThan, s, end);
        b.ins().brif(go, step_blk, &[BlockArg::Value(s)], exit, &[]);
        b.switch_to_block(step_blk);
        let s = b.block_params(step_blk)[0];
        // Step s starts at t0 + s·dt; stage j is evaluated at that + c_j·dt (the solver's order).
        let sf = b.ins().fcvt_from_uint(F64, s);
        let sdt = b.ins().fmul(sf, dt);
        let t_step = b.ins().fadd(t0, sdt);
        let stage_t: Vec<Value> = tab
            .c
            .iter()
            .map(|&c| {
                let cv = b.ins().f64const(c);
                let cdt = b.ins().fmul(cv, dt);
                b.ins().fadd(t_step, cdt)
            })
            .collect();
        lane_loops(module, &mut b, prog, base, &mut |body| {
            step_group(body, &hoist, tab, &stage_t, dt);
        });
        let s1 = b.ins().iadd_imm_u(s, 1);
        b.ins().jump(head, &[BlockArg::Value(s1)]);

        b.switch_to_block(exit);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(frontend_config);
    }
    module.define_function(id, &mut ctx).map_err(codegen_err)?;
    module.clear_context(&mut ctx);
    Ok((id, hoist.rows()))
}

/// Emits a vector loop (UNROLL × f64x2 lanes per iteration) and a scalar tail loop over
/// `0..lanes` (`base.i` holds `lanes`), each body produced by `f`; continues in a new block
/// after both loops.
fn lane_loops(
    module: &mut JITModule,
    b: &mut FunctionBuilder<'_>,
    prog: Program<'_>,
    base: Env,
    f: &mut dyn FnMut(&mut Body<'_, '_, '_>),
) {
    let ptr = module.target_config().pointer_type();
    let lanes = base.i;
    let flavor = F64_FLAVOR;
    let vhead = b.create_block();
    let vbody = b.create_block();
    let shead = b.create_block();
    let sbody = b.create_block();
    let after = b.create_block();
    for blk in [vhead, vbody, shead, sbody] {
        b.append_block_param(blk, ptr);
    }
    let zero = b.ins().iconst(ptr, 0);
    b.ins().jump(vhead, &[BlockArg::Value(zero)]);

    let step = (UNROLL * flavor.width) as i64;
    b.switch_to_block(vhead);
    let i = b.block_params(vhead)[0];
    let end = b.ins().iadd_imm_u(i, step);
    let fits = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, lanes);
    b.ins()
        .brif(fits, vbody, &[BlockArg::Value(i)], shead, &[BlockArg::Value(i)]);

    b.switch_to_block(vbody);
    let i = b.block_params(vbody)[0];
    let shape = Shape {
        ty: flavor.vector,
        width: flavor.width,
        copies: UNROLL,
    };
    {
        let mut body = Body::new(module, b, prog, flavor, shape, Env { i, ..base });
        f(&mut body);
    }
    let next = b.ins().iadd_imm_u(i, step);
    b.ins().jump(vhead, &[BlockArg::Value(next)]);

    b.switch_to_block(shead);
    let i = b.block_params(shead)[0];
    let more = b.ins().icmp(IntCC::UnsignedLessThan, i, lanes);
    b.ins().brif(more, sbody, &[BlockArg::Value(i)], after, &[]);

    b.switch_to_block(sbody);
    let i = b.block_params(sbody)[0];
    let shape = Shape {
        ty: flavor.scalar,
        width: 1,
        copies: 1,
    };
    {
        let mut body = Body::new(module, b, prog, flavor, shape, Env { i, ..base });
        f(&mut body);
    }
    let next = b.ins().iadd_imm_u(i, 1);
    b.ins().jump(shead, &[BlockArg::Value(next)]);

    b.switch_to_block(after);
}

/// One step of `tab` for the lane group of `body`: evaluate the stages (states, parameters
/// and hoisted rows loaded where first used), combine as the solver does, store the states.
fn step_group(body: &mut Body<'_, '_, '_>, hoist: &Hoisted, tab: &Tableau, stage_t: &[Value], dt: Value) {
    let circuit = body.circuit;
    let layout = body.layout;
    let y = body.env.arrays.y;
    body.hoist_rows = hoist.values.iter().enumerate().map(|(r, &e)| (e, r as u32)).collect();
    body.recip_rows = hoist
        .recips
        .iter()
        .enumerate()
        .map(|(r, &e)| (e, (hoist.values.len() + r) as u32))
        .collect();
    let dtv = body.splat_all(dt);
    let mut ys: Vec<Vals> = Vec::new();
    let mut ks: Vec<Vec<Vals>> = Vec::with_capacity(tab.stages());
    for (st, &t) in stage_t.iter().enumerate() {
        body.env.t = t;
        body.env.t64 = t;
        body.memo.iter_mut().for_each(|m| *m = None);
        // Parameter and input loads stay valid across stages; everything else is per stage.
        body.vars
            .retain(|v, _| matches!(circuit.var(*v).kind, VarKind::Param | VarKind::Input));
        if st > 0 {
            let ytmp = combine(body, &ys, dtv, &tab.nonzero_row(st), &ks);
            for (&v, &val) in layout.states.iter().zip(&ytmp) {
                body.vars.insert(v, val);
            }
        }
        // Stage 0 reads the states themselves (row 0 of an explicit tableau is empty):
        // `var` loads each from `y` where first used.
        for asg in &circuit.assigns {
            let v = body.eval(asg.rhs);
            body.vars.insert(asg.var, v);
        }
        let k: Vec<Vals> = circuit.odes.iter().map(|o| body.eval(o.rhs)).collect();
        if st == 0 {
            ys = layout.states.iter().map(|&v| body.var(v)).collect();
        }
        ks.push(k);
    }
    let ynew = combine(body, &ys, dtv, &tab.nonzero_weights(), &ks);
    for (&v, val) in layout.states.iter().zip(ynew) {
        body.store(y, layout.slot[v.0 as usize], val);
    }
}

/// `y + dt·Σ c_m·k_m` over nonzero `(m, c_m)`, summed left to right, with exactly the
/// solver's arithmetic (`solve::fixed::combine`): one term is `y + dt·(c·k)`, several are
/// `y + dt·((c0·k0 + c1·k1) + …)`.
fn combine(body: &mut Body<'_, '_, '_>, y: &[Vals], dt: Vals, coeffs: &[(usize, f64)], ks: &[Vec<Vals>]) -> Vec<Vals> {
    let mut out = Vec::with_capacity(y.len());
    for (j, &yj) in y.iter().enumerate() {
        let Some((&(m0, c0), rest)) = coeffs.split_first() else {
            out.push(yj);
            continue;
        };
        // c·k with c = 1 is k exactly: skip the multiplication.
        let c0v = [body.constant(c0); MAX_COPIES];
        let mut acc = if c0 == 1.0 {
            ks[m0][j]
        } else {
            body.map2(c0v, ks[m0][j], |b, c, k| b.ins().fmul(c, k))
        };
        for &(m, c) in rest {
            let cv = [body.constant(c); MAX_COPIES];
            let term = body.map2(cv, ks[m][j], |b, c, k| b.ins().fmul(c, k));
            acc = body.map2(acc, term, |b, a, t| b.ins().fadd(a, t));
        }
        let inc = body.map2(dt, acc, |b, d, a| b.ins().fmul(d, a));
        out.push(body.map2(yj, inc, |b, y, i| b.ins().fadd(y, i)));
    }
    out
}
