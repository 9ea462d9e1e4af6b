//! One loop body: the circuit's expressions emitted as Cranelift instructions on `copies`
//! interleaved values of one shape (see the module doc of `codegen`).

use std::collections::HashMap;

use cranelift_codegen::entity::packed_option::ReservedValue;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, F64, I32};
use cranelift_codegen::ir::{AbiParam, FuncRef, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;
use cranelift_jit::JITModule;
use cranelift_module::{Linkage, Module};

use super::{children, Env, Flavor, Program, Shape, Vals, MAX_COPIES};
use crate::kernel::jit::loops::PopLoop;
use crate::kernel::mathfns::{self, PowPlan};
use crate::model::{BinOp, Circuit, Expr, ExprId, Func, Layout, VarId, VarKind};

pub(super) struct Body<'m, 'b, 'f> {
    module: &'m mut JITModule,
    b: &'b mut FunctionBuilder<'f>,
    pub(super) circuit: &'m Circuit,
    pub(super) layout: &'m Layout,
    /// Compile-time value of each expression that has one (`fold::constants`).
    konst: &'m [Option<f64>],
    flavor: Flavor,
    shape: Shape,
    pub(super) env: Env,
    i_bytes: Value,
    pub(super) memo: Vec<Option<Vals>>,
    pub(super) vars: HashMap<VarId, Vals>,
    consts: HashMap<u64, Value>,
    funcs: HashMap<&'static str, FuncRef>,
    /// Fused stepper only: `1/d` for loop-invariant divisors `d`, computed before the loop.
    recip: HashMap<ExprId, Vals>,
    /// Fused stepper only: rows of the scratch array (`arrays.a`) holding hoisted values
    /// and reciprocals, loaded where first used (loading them all up front makes Cranelift
    /// keep them live across the whole body and spill them).
    pub(super) hoist_rows: HashMap<ExprId, u32>,
    pub(super) recip_rows: HashMap<ExprId, u32>,
    hoist_cache: HashMap<ExprId, Vals>,
    /// Population loops only: the node this body evaluates (see `jit::loops`).
    at: Option<NodeAt<'m>>,
}

/// The node of a population loop a body is emitted for: node 0's variables are read and
/// written at the node's slots, its per-node constants read from the table.
#[derive(Clone, Copy)]
pub(super) struct NodeAt<'m> {
    pub(super) pop: &'m PopLoop,
    /// Node index (pointer-sized integer).
    pub(super) node: Value,
    /// Address of `NetLoops::table`.
    pub(super) table: Value,
}

/// Access flags: the caller checked every slice length, so nothing traps; no `aligned`
/// (rows start at arbitrary multiples of 8 bytes, and Cranelift must not fold them into
/// SSE instructions that require 16).
fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

impl<'m, 'b, 'f> Body<'m, 'b, 'f> {
    pub(super) fn new(
        module: &'m mut JITModule,
        b: &'b mut FunctionBuilder<'f>,
        prog: Program<'m>,
        flavor: Flavor,
        shape: Shape,
        env: Env,
        at: Option<NodeAt<'m>>,
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
            at,
        }
    }

    /// A population's equations for the node of `self.at`: node 0's assignments in
    /// evaluation order, then its ODEs, each stored at the node's slots.
    pub(super) fn emit_population(&mut self) {
        let pop = self.at.expect("a population body is emitted for a node").pop;
        for &(var, rhs) in &pop.assigns {
            let v = self.eval(rhs);
            let addr = self.var_row(self.env.arrays.a, var);
            self.store_at(addr, v);
            self.vars.insert(var, v);
        }
        for &(var, rhs) in &pop.odes {
            let v = self.eval(rhs);
            let addr = self.var_row(self.env.arrays.dy, var);
            self.store_at(addr, v);
        }
    }

    /// The address of `var`'s row (at this body's lanes) in `base`: its fixed slot, or in a
    /// population loop the slot of the current node.
    fn var_row(&mut self, base: Value, var: VarId) -> Value {
        match self.at.and_then(|at| at.pop.slots.get(&var).map(|&s| (at.node, s))) {
            Some((node, (first, spacing))) => {
                let slot = self.b.ins().imul_imm_u(node, i64::from(spacing));
                let slot = self.b.ins().iadd_imm_u(slot, i64::from(first));
                let off = self.b.ins().imul(slot, self.env.stride);
                let row = self.b.ins().iadd(base, off);
                self.b.ins().iadd(row, self.i_bytes)
            }
            None => self.row(base, self.layout.slot[var.0 as usize]),
        }
    }

    /// A per-node constant of a population loop at the current node, broadcast.
    fn node_constant(&mut self, at: NodeAt<'_>, first: usize) -> Vals {
        let x = self.node_entry(at, first);
        let x = self.narrow(x);
        self.splat_all(x)
    }

    /// The current node's entry of the run starting at index `first` (node 0's) of the table.
    fn node_entry(&mut self, at: NodeAt<'_>, first: usize) -> Value {
        let index = self.b.ins().iadd_imm_u(at.node, first as i64);
        let off = self.b.ins().ishl_imm_u(index, 3);
        let addr = self.b.ins().iadd(at.table, off);
        self.b.ins().load(F64, mem(), addr, 0)
    }

    /// The current node's noise source at index `first` (node 0's) of the table.
    fn node_source(&mut self, at: NodeAt<'_>, first: usize) -> Value {
        let x = self.node_entry(at, first);
        // Exact: the table holds whole numbers below 2³².
        self.b.ins().fcvt_to_uint(I32, x)
    }

    pub(super) fn emit(&mut self) {
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
        self.load_at(addr)
    }

    fn load_at(&mut self, addr: Value) -> Vals {
        let mut out = [Value::reserved_value(); MAX_COPIES];
        for (k, o) in out.iter_mut().enumerate().take(self.n()) {
            let off = self.copy_offset(k);
            *o = self.b.ins().load(self.shape.ty, mem(), addr, off);
        }
        out
    }

    pub(super) fn store(&mut self, base: Value, slot: u32, v: Vals) {
        let addr = self.row(base, slot);
        self.store_at(addr, v);
    }

    fn store_at(&mut self, addr: Value, v: Vals) {
        for (k, &x) in v.iter().enumerate().take(self.n()) {
            let off = self.copy_offset(k);
            self.b.ins().store(mem(), x, addr, off);
        }
    }

    /// A constant of the element type, broadcast to the body's shape.
    pub(super) fn constant(&mut self, c: f64) -> Value {
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

    pub(super) fn splat_all(&mut self, x: Value) -> Vals {
        let v = if self.shape.width > 1 {
            self.b.ins().splat(self.shape.ty, x)
        } else {
            x
        };
        [v; MAX_COPIES]
    }

    pub(super) fn map1(&mut self, x: Vals, mut f: impl FnMut(&mut FunctionBuilder<'f>, Value) -> Value) -> Vals {
        let mut out = x;
        for o in out.iter_mut().take(self.n()) {
            *o = f(self.b, *o);
        }
        out
    }

    pub(super) fn map2(
        &mut self,
        x: Vals,
        y: Vals,
        mut f: impl FnMut(&mut FunctionBuilder<'f>, Value, Value) -> Value,
    ) -> Vals {
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

    pub(super) fn var(&mut self, v: VarId) -> Vals {
        if let Some(&x) = self.vars.get(&v) {
            return x;
        }
        let base = match self.circuit.var(v).kind {
            VarKind::State => self.env.arrays.y,
            VarKind::Param => self.env.arrays.p,
            VarKind::Input => self.env.arrays.u,
            // `validate` guarantees an algebraic is assigned (and in `vars`) before any read;
            // reading the stored row instead is the same value.
            VarKind::Algebraic => self.env.arrays.a,
        };
        let addr = self.var_row(base, v);
        let x = self.load_at(addr);
        self.vars.insert(v, x);
        x
    }

    /// Evaluates `root` (post-order, iterative: edge sums of big circuits nest deeply).
    pub(super) fn eval(&mut self, root: ExprId) -> Vals {
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
                if let Some(at) = self.at {
                    if let Some(&first) = at.pop.tables.get(&id) {
                        return self.node_constant(at, first);
                    }
                }
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
                let ptr = self.module.target_config().pointer_type();
                let f = self.func_ref(mathfns::RANDN_SYMBOL, &[ptr, I32, ptr], F64);
                // The noise source: this expression's id, or in a population loop the
                // current node's, from the table.
                let src = match self.at.and_then(|at| Some((at, *at.pop.noise.get(&id)?))) {
                    Some((at, first)) => self.node_source(at, first),
                    None => self.b.ins().iconst(I32, i64::from(id.0)),
                };
                self.per_element(&[], |this, lane, _| {
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

    /// `x ** y` by the one rule of every back end (`mathfns::pow_plan`): a constant integer
    /// exponent multiplied out by squaring, `1/2` as `sqrt`, anything else a call of `pow`.
    fn pow(&mut self, x: Vals, y: Vals, exponent: Option<f64>) -> Vals {
        let one = self.constant(1.0);
        match exponent.map_or(PowPlan::Call, mathfns::pow_plan) {
            PowPlan::Integer(0) => [one; MAX_COPIES],
            PowPlan::Integer(n) => {
                let v = mathfns::pow_by_squaring(x, n.unsigned_abs(), |a, b| {
                    self.map2(*a, *b, |b, x, y| b.ins().fmul(x, y))
                });
                if n < 0 {
                    self.map1(v, |b, x| b.ins().fdiv(one, x))
                } else {
                    v
                }
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
