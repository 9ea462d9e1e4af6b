use super::*;
use crate::model::{Assign, BinOp, Edge, ExprId, Func, Layout, Ode, Var, VarId, VarKind};

fn add_var(c: &mut Circuit, name: &str, kind: VarKind, value: f64) -> VarId {
    c.add_var(Var {
        name: name.into(),
        kind,
        value,
        node: None,
        external_input: None,
        span: None,
    })
}

/// Per-lane inputs of the test circuit, as the reference closures see them.
#[derive(Clone, Copy, Debug)]
struct V {
    x: f64,
    w: f64,
    k: f64,
    q: f64,
    s: f64,
    t: f64,
    lane: usize,
    /// Expr id of the circuit's `Randn` node (the hook's noise source).
    randn_src: u32,
}

#[derive(Clone, Copy, Debug)]
enum Tol {
    /// Same IEEE operations (or the same Rust libm call) in the same order: bit-equal.
    Exact,
    /// `pow` expanded into multiplications / `sqrt` versus `powf`: each differs from the
    /// exact power by at most ~1 ulp, so they differ by ≤ 2 ulp ≈ 4.4e-16 relative.
    Pow,
}

struct Case {
    name: &'static str,
    build: fn(&mut Builder) -> ExprId,
    reference: fn(&V) -> f64,
    tol: Tol,
}

struct Builder {
    c: Circuit,
    x: VarId,
    w: VarId,
    k: VarId,
    q: VarId,
    s: VarId,
    randn: Option<ExprId>,
}

impl Builder {
    fn e(&mut self, e: Expr) -> ExprId {
        self.c.add_expr(e)
    }
    fn v(&mut self, v: VarId) -> ExprId {
        self.e(Expr::Var(v))
    }
    fn bin(&mut self, op: BinOp, a: ExprId, b: ExprId) -> ExprId {
        self.e(Expr::Binary(op, a, b))
    }
    fn num(&mut self, c: f64) -> ExprId {
        self.e(Expr::Const(c))
    }
    fn pow_const(&mut self, v: VarId, c: f64) -> ExprId {
        let a = self.v(v);
        let b = self.num(c);
        self.bin(BinOp::Pow, a, b)
    }
    fn vv(&mut self, op: BinOp, a: VarId, b: VarId) -> ExprId {
        let a = self.v(a);
        let b = self.v(b);
        self.bin(op, a, b)
    }
    fn call1(&mut self, f: Func, a: VarId) -> ExprId {
        let a = self.v(a);
        self.e(Expr::Call(f, vec![a]))
    }
    fn call2(&mut self, f: Func, a: VarId, b: VarId) -> ExprId {
        let a = self.v(a);
        let b = self.v(b);
        self.e(Expr::Call(f, vec![a, b]))
    }
}

fn past_hook(_: &mut KernelCtx, var: u32, lane: usize, t: f64, delay: f64) -> f64 {
    f64::from(var) * 1000.0 + lane as f64 + 10.0 * t - delay
}
fn randn_hook(ctx: &mut KernelCtx, source: u32, lane: usize) -> f64 {
    (ctx.first_point + lane) as f64 * 0.5 + f64::from(source) / 4.0
}
const FIRST_POINT: usize = 100;
/// Var id of `x` and expr id of the Randn node in the circuit built by `all_ops_circuit`
/// (asserted there), for the hook references.
const X_ID: u32 = 0;

fn cases() -> Vec<Case> {
    use BinOp::*;
    macro_rules! case {
        ($name:literal, $tol:ident, |$b:ident| $build:expr, |$v:ident| $r:expr) => {
            Case {
                name: $name,
                build: |$b| $build,
                reference: |$v| $r,
                tol: Tol::$tol,
            }
        };
    }
    let pi = std::f64::consts::PI;
    let _ = pi;
    vec![
        case!("const", Exact, |b| b.num(2.5), |_v| 2.5),
        case!("add", Exact, |b| b.vv(Add, b.x, b.k), |v| v.x + v.k),
        // Constant subtrees are folded at compile time: same bits as evaluating them.
        case!(
            "fold_const",
            Exact,
            |b| {
                let two = b.num(2.0);
                let s2 = b.e(Expr::Call(Func::Sin, vec![two]));
                let (one, three) = (b.num(1.0), b.num(3.0));
                let third = b.bin(Div, one, three);
                let sum = b.bin(Add, s2, third);
                let x = b.v(b.x);
                b.bin(Mul, sum, x)
            },
            |v| (2f64.sin() + 1.0 / 3.0) * v.x
        ),
        case!(
            "mul_one",
            Exact,
            |b| {
                let one = b.num(1.0);
                let x = b.v(b.x);
                b.bin(Mul, one, x)
            },
            |v| v.x
        ),
        case!(
            "div_one",
            Exact,
            |b| {
                let one = b.num(1.0);
                let k = b.v(b.k);
                b.bin(Div, k, one)
            },
            |v| v.k
        ),
        case!(
            "select_const_cond",
            Exact,
            |b| {
                let zero = b.num(0.0);
                let (x, k) = (b.v(b.x), b.v(b.k));
                b.e(Expr::Select(zero, x, k))
            },
            |v| v.k
        ),
        case!(
            "pow_folded_exponent",
            Pow,
            |b| {
                let (one, one2) = (b.num(1.0), b.num(1.0));
                let two = b.bin(Add, one, one2);
                let w = b.v(b.w);
                b.bin(Pow, w, two)
            },
            |v| v.w.powf(2.0)
        ),
        case!("sub", Exact, |b| b.vv(Sub, b.k, b.w), |v| v.k - v.w),
        case!("mul", Exact, |b| b.vv(Mul, b.x, b.s), |v| v.x * v.s),
        case!("div", Exact, |b| b.vv(Div, b.k, b.w), |v| v.k / v.w),
        case!(
            "neg",
            Exact,
            |b| {
                let x = b.v(b.x);
                b.e(Expr::Neg(x))
            },
            |v| -v.x
        ),
        case!(
            "time",
            Exact,
            |b| {
                let t = b.e(Expr::Time);
                let x = b.v(b.x);
                b.bin(Mul, t, x)
            },
            |v| v.t * v.x
        ),
        case!("input", Exact, |b| b.v(b.s), |v| v.s),
        case!("pow0", Exact, |b| b.pow_const(b.k, 0.0), |v| v.k.powf(0.0)),
        case!("pow1", Exact, |b| b.pow_const(b.k, 1.0), |v| v.k.powf(1.0)),
        case!("pow2", Pow, |b| b.pow_const(b.k, 2.0), |v| v.k.powf(2.0)),
        case!("pow3", Pow, |b| b.pow_const(b.s, 3.0), |v| v.s.powf(3.0)),
        case!("pow4", Pow, |b| b.pow_const(b.s, 4.0), |v| v.s.powf(4.0)),
        case!("pow_m1", Pow, |b| b.pow_const(b.w, -1.0), |v| v.w.powf(-1.0)),
        case!(
            "pow_neg2",
            Pow,
            |b| {
                let w = b.v(b.w);
                let two = b.num(2.0);
                let m2 = b.e(Expr::Neg(two));
                b.bin(Pow, w, m2)
            },
            |v| v.w.powf(-2.0)
        ),
        case!("pow_half", Pow, |b| b.pow_const(b.w, 0.5), |v| v.w.powf(0.5)),
        case!("pow_general_const", Exact, |b| b.pow_const(b.w, 1.7), |v| v.w.powf(1.7)),
        case!("pow_general_var", Exact, |b| b.vv(Pow, b.w, b.k), |v| v.w.powf(v.k)),
        case!("lt", Exact, |b| b.vv(Lt, b.x, b.q), |v| f64::from(u8::from(v.x < v.q))),
        case!("le", Exact, |b| b.vv(Le, b.x, b.q), |v| f64::from(u8::from(v.x <= v.q))),
        case!("gt", Exact, |b| b.vv(Gt, b.x, b.q), |v| f64::from(u8::from(v.x > v.q))),
        case!("ge", Exact, |b| b.vv(Ge, b.x, b.q), |v| f64::from(u8::from(v.x >= v.q))),
        case!("eq", Exact, |b| b.vv(Eq, b.x, b.q), |v| f64::from(u8::from(v.x == v.q))),
        case!("ne", Exact, |b| b.vv(Ne, b.x, b.q), |v| f64::from(u8::from(v.x != v.q))),
        case!(
            "select_value",
            Exact,
            |b| {
                let c = b.vv(Sub, b.x, b.q);
                let (k, s) = (b.v(b.k), b.v(b.s));
                b.e(Expr::Select(c, k, s))
            },
            |v| if v.x - v.q != 0.0 { v.k } else { v.s }
        ),
        case!(
            "select_compare",
            Exact,
            |b| {
                let c = b.vv(Gt, b.x, b.q);
                let w = b.v(b.w);
                let nw = b.e(Expr::Neg(w));
                b.e(Expr::Select(c, w, nw))
            },
            |v| if v.x > v.q { v.w } else { -v.w }
        ),
        case!("sin", Exact, |b| b.call1(Func::Sin, b.k), |v| v.k.sin()),
        case!("cos", Exact, |b| b.call1(Func::Cos, b.k), |v| v.k.cos()),
        case!("tan", Exact, |b| b.call1(Func::Tan, b.x), |v| v.x.tan()),
        case!("sinh", Exact, |b| b.call1(Func::Sinh, b.k), |v| v.k.sinh()),
        case!("cosh", Exact, |b| b.call1(Func::Cosh, b.k), |v| v.k.cosh()),
        case!("tanh", Exact, |b| b.call1(Func::Tanh, b.k), |v| v.k.tanh()),
        case!("arcsin", Exact, |b| b.call1(Func::Arcsin, b.x), |v| v.x.asin()),
        case!("arccos", Exact, |b| b.call1(Func::Arccos, b.x), |v| v.x.acos()),
        case!("arctan", Exact, |b| b.call1(Func::Arctan, b.k), |v| v.k.atan()),
        case!("arctan2", Exact, |b| b.call2(Func::Arctan2, b.k, b.s), |v| v
            .k
            .atan2(v.s)),
        case!("exp", Exact, |b| b.call1(Func::Exp, b.k), |v| v.k.exp()),
        case!("log", Exact, |b| b.call1(Func::Log, b.w), |v| v.w.ln()),
        case!("sqrt", Exact, |b| b.call1(Func::Sqrt, b.w), |v| v.w.sqrt()),
        case!("abs", Exact, |b| b.call1(Func::Abs, b.k), |v| v.k.abs()),
        case!("sigmoid", Exact, |b| b.call1(Func::Sigmoid, b.k), |v| 1.0
            / (1.0 + (-v.k).exp())),
        case!("max", Exact, |b| b.call2(Func::Max, b.x, b.q), |v| v.x.max(v.q)),
        case!("min", Exact, |b| b.call2(Func::Min, b.x, b.q), |v| v.x.min(v.q)),
        case!(
            "heaviside",
            Exact,
            |b| {
                let d = b.vv(Sub, b.x, b.q);
                b.e(Expr::Call(Func::Heaviside, vec![d]))
            },
            |v| {
                let d = v.x - v.q;
                if d > 0.0 {
                    1.0
                } else if d == 0.0 {
                    0.5
                } else {
                    0.0
                }
            }
        ),
        case!("floor", Exact, |b| b.call1(Func::Floor, b.k), |v| v.k.floor()),
        case!("ceil", Exact, |b| b.call1(Func::Ceil, b.k), |v| v.k.ceil()),
        case!(
            "sign",
            Exact,
            |b| {
                let d = b.vv(Sub, b.x, b.q);
                b.e(Expr::Call(Func::Sign, vec![d]))
            },
            |v| {
                let d = v.x - v.q;
                if d > 0.0 {
                    1.0
                } else if d < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
        ),
        case!(
            "past",
            Exact,
            |b| {
                let d = b.v(b.w);
                b.e(Expr::Past(b.x, d))
            },
            |v| f64::from(X_ID) * 1000.0 + v.lane as f64 + 10.0 * v.t - v.w
        ),
        case!(
            "past_negative_delay_is_current",
            Exact,
            |b| {
                let w = b.v(b.w);
                let d = b.e(Expr::Neg(w));
                b.e(Expr::Past(b.x, d))
            },
            |v| v.x
        ),
        case!(
            "past_zero_delay_is_current",
            Exact,
            |b| {
                let d = b.num(0.0);
                b.e(Expr::Past(b.k, d))
            },
            |v| v.k
        ),
        case!(
            "randn",
            Exact,
            |b| {
                let r = b.e(Expr::Randn);
                b.randn = Some(r);
                r
            },
            |v| (FIRST_POINT + v.lane) as f64 * 0.5 + f64::from(v.randn_src) / 4.0
        ),
    ]
}

/// One algebraic per case, then `chain = a_add * a_sin` (an algebraic read back), and
/// ODEs `x' = a_add + a_sin`, `w' = -w*k + s`.
fn all_ops_circuit() -> (Circuit, Vec<Case>) {
    let mut c = Circuit {
        name: "AllOps".into(),
        ..Circuit::default()
    };
    let x = add_var(&mut c, "n/op/x", VarKind::State, 0.1);
    assert_eq!(x.0, X_ID);
    let w = add_var(&mut c, "n/op/w", VarKind::State, 1.0);
    let k = add_var(&mut c, "n/op/k", VarKind::Param, 0.5);
    let q = add_var(&mut c, "n/op/q", VarKind::Param, 0.0);
    let s = add_var(&mut c, "n/op/s", VarKind::Input, 0.0);
    let mut b = Builder {
        c,
        x,
        w,
        k,
        q,
        s,
        randn: None,
    };
    let cases = cases();
    let mut alg = Vec::new();
    for case in &cases {
        let rhs = (case.build)(&mut b);
        let var = add_var(&mut b.c, &format!("n/op/{}", case.name), VarKind::Algebraic, 0.0);
        b.c.assigns.push(Assign { var, rhs, span: None });
        alg.push(var);
    }
    assert!(b.randn.is_some());
    let find = |name: &str| alg[cases.iter().position(|c| c.name == name).expect("case exists")];
    let (a_add, a_sin) = (find("add"), find("sin"));
    let chain = b.vv(BinOp::Mul, a_add, a_sin);
    let chain_var = add_var(&mut b.c, "n/op/chain", VarKind::Algebraic, 0.0);
    b.c.assigns.push(Assign {
        var: chain_var,
        rhs: chain,
        span: None,
    });
    let dx = b.vv(BinOp::Add, a_add, a_sin);
    b.c.odes.push(Ode {
        var: x,
        rhs: dx,
        span: None,
    });
    let wv = b.v(w);
    let nw = b.e(Expr::Neg(wv));
    let kv = b.v(k);
    let nwk = b.bin(BinOp::Mul, nw, kv);
    let sv = b.v(s);
    let dw = b.bin(BinOp::Add, nwk, sv);
    b.c.odes.push(Ode {
        var: w,
        rhs: dw,
        span: None,
    });
    (b.c, cases)
}

/// Deterministic, varied lane values: x in (-0.9, 0.9), w in (0.2, 2.6), k in (-3, 3),
/// s in (-2, 2), q equal to x on every third lane (to exercise ==, heaviside(0), sign(0)).
fn lane_values(c: &Circuit, lanes: usize, t: f64) -> Vec<V> {
    let randn_src = c
        .exprs
        .iter()
        .position(|e| matches!(e, Expr::Randn))
        .map_or(u32::MAX, |i| i as u32);
    (0..lanes)
        .map(|l| {
            let f = |m: f64| ((l as f64 + 1.0) * m).fract();
            let x = if l % 7 == 3 {
                0.0
            } else {
                -0.9 + 1.8 * f(0.618_033_988_7)
            };
            let q = if l % 3 == 0 { x } else { -0.9 + 1.8 * f(0.414_213_562_3) };
            V {
                x,
                w: 0.2 + 2.4 * f(0.732_050_807_5),
                k: -3.0 + 6.0 * f(0.236_067_977_5),
                q,
                s: -2.0 + 4.0 * f(0.645_751_311_1),
                t,
                lane: l,
                randn_src,
            }
        })
        .collect()
}

/// Fills y, p, u for `lanes` in the circuit's layout.
fn buffers(c: &Circuit, layout: &Layout, vals: &[V]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let lanes = vals.len();
    let pick = |id: VarId, v: &V| match c.var(id).name.as_str() {
        "n/op/x" => v.x,
        "n/op/w" => v.w,
        "n/op/k" => v.k,
        "n/op/q" => v.q,
        "n/op/s" => v.s,
        other => panic!("no test value for {other}"),
    };
    let fill = |ids: &[VarId]| {
        let mut out = vec![0.0; ids.len() * lanes];
        for (slot, &id) in ids.iter().enumerate() {
            for (l, v) in vals.iter().enumerate() {
                out[slot * lanes + l] = pick(id, v);
            }
        }
        out
    };
    (fill(&layout.states), fill(&layout.params), fill(&layout.inputs))
}

fn hooked_ctx() -> KernelCtx {
    KernelCtx {
        first_point: FIRST_POINT,
        past: Some(past_hook),
        randn: Some(randn_hook),
        ..KernelCtx::default()
    }
}

fn jit(c: &Circuit, precision: Precision) -> JitKernel {
    JitKernel::new(
        c,
        &KernelOptions {
            backend: crate::kernel::Backend::Jit,
            precision,
            ..KernelOptions::default()
        },
    )
    .expect("the test circuit compiles")
}

fn run_f64(k: &JitKernel, c: &Circuit, layout: &Layout, vals: &[V], t: f64) -> (Vec<f64>, Vec<f64>) {
    let lanes = vals.len();
    let (y, p, u) = buffers(c, layout, vals);
    let mut dy = vec![f64::NAN; layout.states.len() * lanes];
    let mut a = vec![f64::NAN; layout.algebraics.len() * lanes];
    let mut ctx = hooked_ctx();
    k.rhs(RhsArgs {
        t,
        lanes,
        y: &y,
        p: &p,
        u: &u,
        dy: &mut dy,
        a: &mut a,
        ctx: &mut ctx,
    });
    (dy, a)
}

fn same_or_close(got: f64, want: f64, tol: Tol) -> bool {
    match tol {
        Tol::Exact => got.to_bits() == want.to_bits() || (got == want) || (got.is_nan() && want.is_nan()),
        Tol::Pow => (got - want).abs() <= 1e-15 * want.abs(),
    }
}

#[test]
fn jit_every_expr_and_func_matches_rust_reference_f64() {
    let (c, cases) = all_ops_circuit();
    let layout = c.layout();
    let k = jit(&c, Precision::F64);
    let t = 0.75;
    for lanes in [1, 2, 3, 7, 64] {
        let vals = lane_values(&c, lanes, t);
        let (dy, a) = run_f64(&k, &c, &layout, &vals, t);
        for (ci, case) in cases.iter().enumerate() {
            for (l, v) in vals.iter().enumerate() {
                let got = a[ci * lanes + l];
                let want = (case.reference)(v);
                assert!(
                    same_or_close(got, want, case.tol),
                    "{} lanes={lanes} lane={l}: jit {got:e} vs reference {want:e} ({v:?})",
                    case.name
                );
            }
        }
        let pos = |name: &str| cases.iter().position(|c| c.name == name).expect("case exists");
        let (add, sin) = (cases[pos("add")].reference, cases[pos("sin")].reference);
        for (l, v) in vals.iter().enumerate() {
            let chain = a[cases.len() * lanes + l];
            assert_eq!(chain.to_bits(), (add(v) * sin(v)).to_bits(), "chain lane {l}");
            assert_eq!(dy[l].to_bits(), (add(v) + sin(v)).to_bits(), "x' lane {l}");
            assert_eq!(dy[lanes + l].to_bits(), ((-v.w) * v.k + v.s).to_bits(), "w' lane {l}");
        }
    }
}

#[test]
fn jit_block_of_lanes_equals_single_lane_runs_bitwise() {
    let (c, _) = all_ops_circuit();
    let layout = c.layout();
    let k = jit(&c, Precision::F64);
    let t = 1.25;
    let lanes = 11; // 2 vector iterations of 4 lanes + 3 scalar lanes
    let vals = lane_values(&c, lanes, t);
    let (dy, a) = run_f64(&k, &c, &layout, &vals, t);
    for (l, v) in vals.iter().enumerate() {
        // A one-lane block holding lane l's values; its lane index is 0, so move the
        // hooks' lane-dependent part into the values.
        let single = V { lane: l, ..*v };
        let (dy1, a1) = {
            let (y, p, u) = buffers(&c, &layout, &[single]);
            let mut dy1 = vec![0.0; layout.states.len()];
            let mut a1 = vec![0.0; layout.algebraics.len()];
            let mut ctx = hooked_ctx();
            ctx.first_point = FIRST_POINT + l;
            ctx.past = Some(|ctx, var, lane, t, d| past_hook(ctx, var, lane + ctx.first_point - FIRST_POINT, t, d));
            k.rhs(RhsArgs {
                t,
                lanes: 1,
                y: &y,
                p: &p,
                u: &u,
                dy: &mut dy1,
                a: &mut a1,
                ctx: &mut ctx,
            });
            (dy1, a1)
        };
        for s in 0..layout.states.len() {
            assert_eq!(dy[s * lanes + l].to_bits(), dy1[s].to_bits(), "dy slot {s} lane {l}");
        }
        for s in 0..layout.algebraics.len() {
            assert_eq!(a[s * lanes + l].to_bits(), a1[s].to_bits(), "a slot {s} lane {l}");
        }
    }
}

#[test]
fn jit_every_expr_and_func_matches_rust_reference_f32() {
    let (c, cases) = all_ops_circuit();
    let layout = c.layout();
    let k = jit(&c, Precision::F32);
    let t = 0.75;
    for lanes in [1, 3, 7, 8, 64, 67] {
        // Round the lane values to f32 first, so the f64 reference sees the same inputs.
        let r = |x: f64| f64::from(x as f32);
        let vals: Vec<V> = lane_values(&c, lanes, t)
            .into_iter()
            .map(|v| V {
                x: r(v.x),
                w: r(v.w),
                k: r(v.k),
                q: r(v.q),
                s: r(v.s),
                ..v
            })
            .collect();
        let (y, p, u) = buffers(&c, &layout, &vals);
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let (y, p, u) = (to32(y), to32(p), to32(u));
        let mut dy = vec![f32::NAN; layout.states.len() * lanes];
        let mut a = vec![f32::NAN; layout.algebraics.len() * lanes];
        let mut ctx = hooked_ctx();
        k.rhs_f32(RhsArgsF32 {
            t,
            lanes,
            y: &y,
            p: &p,
            u: &u,
            dy: &mut dy,
            a: &mut a,
            ctx: &mut ctx,
        });
        // Single precision rounds each operation to 2^-24 ≈ 6e-8 relative; a case chains
        // at most a few operations plus one libm call (≤ 2 ulp), so 1e-6 relative holds
        // with margin. Results that cancel towards 0 (x' = add + sin) get the same bound
        // relative to the operands' scale 1.
        let close = |got: f32, want: f64| {
            (f64::from(got) - want).abs() <= 1e-6 * want.abs().max(1.0) || (got.is_nan() && want.is_nan())
        };
        for (ci, case) in cases.iter().enumerate() {
            for (l, v) in vals.iter().enumerate() {
                let got = a[ci * lanes + l];
                let want = (case.reference)(v);
                assert!(
                    close(got, want),
                    "{} lanes={lanes} lane={l}: jit {got:e} vs reference {want:e}",
                    case.name
                );
            }
        }
        let pos = |name: &str| cases.iter().position(|c| c.name == name).expect("case exists");
        let (add, sin) = (cases[pos("add")].reference, cases[pos("sin")].reference);
        for (l, v) in vals.iter().enumerate() {
            assert!(close(dy[l], add(v) + sin(v)), "x' lane {l}");
            assert!(close(dy[lanes + l], (-v.w) * v.k + v.s), "w' lane {l}");
        }
    }
}

/// NaN and signed-zero inputs through the functions whose semantics the JIT emits inline,
/// against the shared scalar definitions (`mathfns::func_f64`, checked against numpy's
/// documented values in its own tests), in both the vector and the scalar loop.
#[test]
fn jit_inline_funcs_on_nan_and_zero_match_shared_definitions() {
    let mut c = Circuit::default();
    let x = add_var(&mut c, "x", VarKind::Input, 0.0);
    let y = add_var(&mut c, "y", VarKind::Input, 0.0);
    let funcs = [
        Func::Max,
        Func::Min,
        Func::Heaviside,
        Func::Sign,
        Func::Abs,
        Func::Floor,
        Func::Ceil,
        Func::Sqrt,
    ];
    for f in funcs {
        let xe = c.add_expr(Expr::Var(x));
        let ye = c.add_expr(Expr::Var(y));
        let args = if f.arity() == 2 { vec![xe, ye] } else { vec![xe] };
        let rhs = c.add_expr(Expr::Call(f, args));
        let var = add_var(&mut c, &format!("{f:?}"), VarKind::Algebraic, 0.0);
        c.assigns.push(Assign { var, rhs, span: None });
    }
    let specials = [f64::NAN, 0.0, -0.0, 1.5, -2.5, f64::INFINITY, f64::NEG_INFINITY];
    let pairs: Vec<(f64, f64)> = specials
        .iter()
        .flat_map(|&a| specials.iter().map(move |&b| (a, b)))
        .collect();
    let lanes = pairs.len(); // 49: 12 vector iterations and one scalar lane
    let mut u = vec![0.0; 2 * lanes];
    for (l, &(a, b)) in pairs.iter().enumerate() {
        u[l] = a;
        u[lanes + l] = b;
    }
    let k = jit(&c, Precision::F64);
    let mut a = vec![0.0; funcs.len() * lanes];
    let mut ctx = KernelCtx::default();
    k.rhs(RhsArgs {
        t: 0.0,
        lanes,
        y: &[],
        p: &[],
        u: &u,
        dy: &mut [],
        a: &mut a,
        ctx: &mut ctx,
    });
    for (fi, &f) in funcs.iter().enumerate() {
        for (l, &(xa, yb)) in pairs.iter().enumerate() {
            let got = a[fi * lanes + l];
            let want = mathfns::func_f64(f, xa, yb);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{f:?}({xa}, {yb}) lane {l}: jit {got} vs {want}"
            );
        }
    }
}

#[test]
fn jit_without_hooks_past_and_randn_give_nan() {
    let (c, cases) = all_ops_circuit();
    let layout = c.layout();
    let k = jit(&c, Precision::F64);
    let lanes = 5;
    let vals = lane_values(&c, lanes, 0.0);
    let (y, p, u) = buffers(&c, &layout, &vals);
    let mut dy = vec![0.0; layout.states.len() * lanes];
    let mut a = vec![0.0; layout.algebraics.len() * lanes];
    let mut ctx = KernelCtx::default();
    k.rhs(RhsArgs {
        t: 0.0,
        lanes,
        y: &y,
        p: &p,
        u: &u,
        dy: &mut dy,
        a: &mut a,
        ctx: &mut ctx,
    });
    for name in ["past", "randn"] {
        let ci = cases.iter().position(|c| c.name == name).expect("case exists");
        assert!(a[ci * lanes..(ci + 1) * lanes].iter().all(|x| x.is_nan()), "{name}");
    }
    let ci = cases.iter().position(|c| c.name == "add").expect("case exists");
    assert!(a[ci * lanes..(ci + 1) * lanes].iter().all(|x| x.is_finite()));
}

#[test]
fn jit_zero_lanes_is_a_no_op() {
    // Buffers with room for a lane, filled with a sentinel: zero lanes must write nothing.
    let (c, _) = all_ops_circuit();
    let layout = c.layout();
    let k = jit(&c, Precision::F64);
    let mut ctx = KernelCtx::default();
    let sentinel = -1234.5;
    let (y, p, u) = (
        vec![0.5; layout.states.len()],
        vec![0.5; layout.params.len()],
        vec![0.5; layout.inputs.len()],
    );
    let mut dy = vec![sentinel; layout.states.len()];
    let mut a = vec![sentinel; layout.algebraics.len()];
    assert!(!dy.is_empty() && !a.is_empty(), "the circuit has states and algebraics");
    k.rhs(RhsArgs {
        t: 0.0,
        lanes: 0,
        y: &y,
        p: &p,
        u: &u,
        dy: &mut dy,
        a: &mut a,
        ctx: &mut ctx,
    });
    assert!(dy.iter().chain(&a).all(|&v| v == sentinel), "dy {dy:?}, a {a:?}");
}

#[test]
#[should_panic(expected = "`dy` holds")]
fn jit_short_buffer_panics_before_calling_generated_code() {
    let (c, _) = all_ops_circuit();
    let layout = c.layout();
    let k = jit(&c, Precision::F64);
    let vals = lane_values(&c, 4, 0.0);
    let (y, p, u) = buffers(&c, &layout, &vals);
    let mut dy = vec![0.0; 7]; // needs 2 × 4
    let mut a = vec![0.0; layout.algebraics.len() * 4];
    let mut ctx = KernelCtx::default();
    k.rhs(RhsArgs {
        t: 0.0,
        lanes: 4,
        y: &y,
        p: &p,
        u: &u,
        dy: &mut dy,
        a: &mut a,
        ctx: &mut ctx,
    });
}

/// The two-population QIF reference circuit of `shared/bench/README.md`, lowered as the
/// model passes lower it (every constant a per-lane parameter, edges as an algebraic
/// `r_in` with weight parameters, `I_ext` an input). Returns the circuit and, per state
/// slot, its initial value.
fn qif_reference_circuit(specialize: bool) -> Circuit {
    let mut c = Circuit {
        name: "qif_ref".into(),
        ..Circuit::default()
    };
    let mut pops = Vec::new();
    for (node, eta) in [("PC", -5.0), ("IIN", -5.0)] {
        let v = |n: &str| format!("{node}/qif_op/{n}");
        let r = add_var(&mut c, &v("r"), VarKind::State, 0.01);
        let vv = add_var(&mut c, &v("v"), VarKind::State, -2.0);
        let tau = add_var(&mut c, &v("tau"), VarKind::Param, 1.0);
        let delta = add_var(&mut c, &v("Delta"), VarKind::Param, 1.0);
        let eta = add_var(&mut c, &v("eta"), VarKind::Param, eta);
        let iext = add_var(&mut c, &v("I_ext"), VarKind::Input, 0.0);
        let r_in = add_var(&mut c, &v("r_in"), VarKind::Algebraic, 0.0);
        pops.push((r, vv, tau, delta, eta, iext, r_in));
    }
    let w_pp = add_var(&mut c, "edge:PC->PC:0/weight", VarKind::Param, 15.0);
    let w_pi = add_var(&mut c, "edge:PC->IIN:0/weight", VarKind::Param, 10.0);
    let w_ip = add_var(&mut c, "edge:IIN->PC:0/weight", VarKind::Param, -10.0);
    let mut b = Builder {
        c,
        x: w_pp,
        w: w_pp,
        k: w_pp,
        q: w_pp,
        s: w_pp,
        randn: None,
    };
    let (r_pc, r_iin) = (pops[0].0, pops[1].0);
    // r_in(PC) = w_pp r_PC + w_ip r_IIN; r_in(IIN) = w_pi r_PC
    // `specialize`: parameters the sweep does not vary become constants (what a sweep
    // that specialises its kernel would compile); otherwise every one is per-lane data.
    let pv = |b: &mut Builder, var: VarId| {
        if specialize {
            b.num(b.c.var(var).value)
        } else {
            b.v(var)
        }
    };
    let (w1, rp) = (pv(&mut b, w_pp), b.v(r_pc));
    let t1 = b.bin(BinOp::Mul, w1, rp);
    let (w2, ri) = (pv(&mut b, w_ip), b.v(r_iin));
    let t2 = b.bin(BinOp::Mul, w2, ri);
    let rin_pc = b.bin(BinOp::Add, t1, t2);
    b.c.assigns.push(Assign {
        var: pops[0].6,
        rhs: rin_pc,
        span: None,
    });
    let (w3, rp) = (pv(&mut b, w_pi), b.v(r_pc));
    let rin_iin = b.bin(BinOp::Mul, w3, rp);
    b.c.assigns.push(Assign {
        var: pops[1].6,
        rhs: rin_iin,
        span: None,
    });
    for &(r, v, tau, delta, eta, iext, r_in) in &pops {
        let pi = b.num(std::f64::consts::PI);
        // r' = (Delta/(pi*tau) + 2*r*v) / tau
        let tauv = pv(&mut b, tau);
        let pitau = b.bin(BinOp::Mul, pi, tauv);
        let dl = pv(&mut b, delta);
        let q = b.bin(BinOp::Div, dl, pitau);
        let two = b.num(2.0);
        let rv = b.v(r);
        let r2 = b.bin(BinOp::Mul, two, rv);
        let vv = b.v(v);
        let r2v = b.bin(BinOp::Mul, r2, vv);
        let num = b.bin(BinOp::Add, q, r2v);
        let dr = b.bin(BinOp::Div, num, tauv);
        b.c.odes.push(Ode {
            var: r,
            rhs: dr,
            span: None,
        });
        // v' = (v^2 + eta + I_ext + tau*r_in - (pi*tau*r)^2) / tau
        let v2 = b.pow_const(v, 2.0);
        let e = b.v(eta);
        let s1 = b.bin(BinOp::Add, v2, e);
        let ie = b.v(iext);
        let s2 = b.bin(BinOp::Add, s1, ie);
        let ri = b.v(r_in);
        let tri = b.bin(BinOp::Mul, tauv, ri);
        let s3 = b.bin(BinOp::Add, s2, tri);
        let ptr_ = b.bin(BinOp::Mul, pitau, rv);
        let two2 = b.num(2.0);
        let sq = b.bin(BinOp::Pow, ptr_, two2);
        let s4 = b.bin(BinOp::Sub, s3, sq);
        let dv = b.bin(BinOp::Div, s4, tauv);
        b.c.odes.push(Ode {
            var: v,
            rhs: dv,
            span: None,
        });
    }
    b.c
}

/// Per-lane buffers of the QIF circuit: defaults, with (eta_PC, eta_IIN) on the √N × √N
/// grid of `linspace(-5, 5, √N)` in PyRates' `permute_grid=True` order, I_ext(PC) = 1.
fn qif_buffers(c: &Circuit, layout: &Layout, lanes: usize, first: usize, n: usize) -> [Vec<f64>; 3] {
    let e = |i: usize| {
        if n == 1 {
            -5.0
        } else {
            -5.0 + 10.0 * i as f64 / (n - 1) as f64
        }
    };
    let fill = |ids: &[VarId]| {
        let mut out = vec![0.0; ids.len() * lanes];
        for (slot, &id) in ids.iter().enumerate() {
            let var = c.var(id);
            for l in 0..lanes {
                let k = first + l;
                out[slot * lanes + l] = match var.name.as_str() {
                    "PC/qif_op/eta" => e(k % n),
                    "IIN/qif_op/eta" => e(k / n),
                    "PC/qif_op/I_ext" => 1.0,
                    _ => var.value,
                };
            }
        }
        out
    };
    [fill(&layout.states), fill(&layout.params), fill(&layout.inputs)]
}

/// The QIF circuit's JIT rhs against `montbrio_grid.c`'s formulas with τ = Δ = 1 folded
/// by hand. The IR's extra operations are multiplications and divisions by 1 and
/// `w_ip·r` with w_ip = −10 instead of `− 10·r`, all exact, so the results are equal.
#[test]
fn jit_qif_reference_circuit_matches_hand_written_rhs() {
    for specialize in [false, true] {
        let c = qif_reference_circuit(specialize);
        let layout = c.layout();
        let k = jit(&c, Precision::F64);
        let (lanes, n) = (25, 5);
        let [y, p, u] = qif_buffers(&c, &layout, lanes, 0, n);
        let mut dy = vec![0.0; 4 * lanes];
        let mut a = vec![0.0; 2 * lanes];
        let mut ctx = KernelCtx::default();
        k.rhs(RhsArgs {
            t: 0.0,
            lanes,
            y: &y,
            p: &p,
            u: &u,
            dy: &mut dy,
            a: &mut a,
            ctx: &mut ctx,
        });
        let pi = std::f64::consts::PI;
        for l in 0..lanes {
            let e = |i: usize| -5.0 + 10.0 * i as f64 / 4.0;
            let (eta_p, eta_i) = (e(l % n), e(l / n));
            let (rp, vp, ri, vi) = (0.01, -2.0, 0.01, -2.0);
            let rin_p = 15.0 * rp - 10.0 * ri;
            let rin_i = 10.0 * rp;
            let want = [
                1.0 / pi + 2.0 * rp * vp,
                vp * vp + eta_p + 1.0 + rin_p - (pi * rp) * (pi * rp),
                1.0 / pi + 2.0 * ri * vi,
                vi * vi + eta_i + 0.0 + rin_i - (pi * ri) * (pi * ri),
            ];
            for (s, w) in want.iter().enumerate() {
                let got = dy[s * lanes + l];
                assert_eq!(
                    got.to_bits(),
                    w.to_bits(),
                    "specialize {specialize} slot {s} lane {l}: {got} vs {w}"
                );
            }
        }
    }
}

/// Timing, not a test: `cargo test --release -p rustrates --lib jit_bench -- --ignored
/// --nocapture`. 10,000 lanes × 5,000 Euler steps of the QIF reference circuit, in
/// blocks of `B` lanes (the block's state stays in cache, as in `montbrio_grid.c`).
#[test]
#[ignore = "benchmark; run explicitly in release mode"]
fn jit_bench_qif_ns_per_lane_step() {
    let euler = crate::kernel::TableauRef {
        a: &[0.0],
        b: &[1.0],
        c: &[0.0],
    };
    for specialize in [false, true] {
        let c = qif_reference_circuit(specialize);
        let layout = c.layout();
        let t0 = std::time::Instant::now();
        let k = jit(&c, Precision::F64);
        eprintln!(
            "constants specialised: {specialize}; compile: {:.2} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        let (total, steps, n, dt) = (10_000usize, 5_000usize, 100usize, 1e-4);
        for block in [64usize, 256, 1024, 10_000] {
            let (mut rhs_s, mut full_s, mut fused_s) = (0.0, 0.0, 0.0);
            let (mut check_rhs, mut check_fused) = (0.0, 0.0);
            let mut first = 0;
            while first < total {
                let lanes = block.min(total - first);
                let [y0, p, u] = qif_buffers(&c, &layout, lanes, first, n);
                let mut y = y0.clone();
                let mut dy = vec![0.0; y.len()];
                let mut a = vec![0.0; 2 * lanes];
                let mut ctx = KernelCtx::default();
                // Euler through rhs + the solver's update.
                let start = std::time::Instant::now();
                for step in 0..steps {
                    let t = step as f64 * dt;
                    k.rhs(RhsArgs {
                        t,
                        lanes,
                        y: &y,
                        p: &p,
                        u: &u,
                        dy: &mut dy,
                        a: &mut a,
                        ctx: &mut ctx,
                    });
                    for (yi, di) in y.iter_mut().zip(&dy) {
                        *yi += dt * di;
                    }
                }
                full_s += start.elapsed().as_secs_f64();
                check_rhs += y[..lanes].iter().sum::<f64>();
                // The rhs alone, on the final state (finite for this grid).
                let start = std::time::Instant::now();
                for step in 0..steps {
                    let t = step as f64 * dt;
                    k.rhs(RhsArgs {
                        t,
                        lanes,
                        y: &y,
                        p: &p,
                        u: &u,
                        dy: &mut dy,
                        a: &mut a,
                        ctx: &mut ctx,
                    });
                }
                rhs_s += start.elapsed().as_secs_f64();
                // Fused Euler, returning every 10 steps (the C program samples that often).
                let mut y = y0;
                let mut work = Vec::new();
                let start = std::time::Instant::now();
                for chunk in 0..steps / 10 {
                    let ok = k.steps(StepsArgs {
                        lanes,
                        nsteps: 10,
                        t0: (chunk * 10) as f64 * dt,
                        dt,
                        tableau: euler,
                        y: &mut y,
                        p: &p,
                        u: &u,
                        a: &mut a,
                        work: &mut work,
                        ctx: &mut ctx,
                        samples: None,
                    });
                    assert!(ok);
                }
                fused_s += start.elapsed().as_secs_f64();
                check_fused += y[..lanes].iter().sum::<f64>();
                first += lanes;
            }
            let per = 1e9 / (total * steps) as f64;
            eprintln!(
                    "block {block:>5}: rhs {:.3} ns/lane-eval; Euler via rhs {:.3} ns/lane-step; fused Euler {:.3} ns/lane-step (Σ r_PC {check_rhs:.9e} / {check_fused:.9e})",
                    rhs_s * per,
                    full_s * per,
                    fused_s * per
                );
        }
    }
}

/// Per-lane data for any circuit: each parameter and initial state its default scaled
/// by a lane-dependent factor in [0.8, 1.2] (0 stays 0, so add a small offset), inputs
/// their defaults. Mixed signs and magnitudes, all lanes different.
fn generic_buffers(c: &Circuit, layout: &Layout, lanes: usize) -> [Vec<f64>; 3] {
    let fill = |ids: &[VarId], salt: usize| {
        let mut out = vec![0.0; ids.len() * lanes];
        for (slot, &id) in ids.iter().enumerate() {
            let v = c.var(id).value;
            for l in 0..lanes {
                let f = (((l + 1) * (slot + 3 + salt)) as f64 * 0.618_033_988_7).fract();
                out[slot * lanes + l] = v * (0.8 + 0.4 * f) + 0.01 * (f - 0.5);
            }
        }
        out
    };
    [
        fill(&layout.states, 0),
        fill(&layout.params, 1),
        fill(&layout.inputs, 2),
    ]
}

fn circuits_for_cross_check() -> Vec<(String, Circuit)> {
    use crate::model::test_models;
    let mut out = vec![
        ("all_ops".to_string(), all_ops_circuit().0),
        ("qif_reference_ir".to_string(), qif_reference_circuit(false)),
        ("exponential_decay".to_string(), test_models::exponential_decay().0),
        ("harmonic_oscillator".to_string(), test_models::harmonic_oscillator().0),
        ("mpr_single".to_string(), test_models::mpr_single().0),
        ("reference_circuit".to_string(), test_models::reference_circuit().0),
    ];
    for path in [
        "model_templates.montbrio.simple_montbrio.Net3",
        "model_templates.neural_mass_models.qif.qif",
        "model_templates.neural_mass_models.qif.qif_sfa",
        "model_templates.neural_mass_models.jansenrit.JRC",
        "model_templates.neural_mass_models.jansenrit.JRC_2delaycoupled",
        "model_templates.neural_mass_models.wilsoncowan.WC",
        "model_templates.oscillators.kuramoto.kmo_2coupled",
        "model_templates.oscillators.vanderpol.vdp",
    ] {
        let loaded = crate::model::load_circuit(path, &crate::template::LoadOptions::default())
            .unwrap_or_else(|e| panic!("built-in template {path} loads: {e}"));
        out.push((path.to_string(), crate::model::passes::lower_edges(&loaded.circuit)));
    }
    out
}

/// Every test model and built-in template through the JIT and the reference evaluator
/// (`Backend::Reference`, the oracle). Both do the same IEEE operations in the same
/// order (Cranelift never contracts to FMA) and call the same Rust libm functions, so
/// they agree bit for bit except where `x**2`-style powers are expanded into products
/// (≤ 2 ulp of that intermediate); 1e-12 relative to the row's scale bounds that even
/// after cancellation in later sums.
#[test]
fn jit_matches_reference_kernel_on_test_models_and_library() {
    use crate::kernel::reference::ReferenceKernel;
    for (name, c) in circuits_for_cross_check() {
        let layout = c.layout();
        let jit64 = jit(&c, Precision::F64);
        let jit32 = jit(&c, Precision::F32);
        let reference = ReferenceKernel::new(&c);
        for lanes in [1, 7, 64] {
            let [y, p, u] = generic_buffers(&c, &layout, lanes);
            let t = 0.3;
            let run = |f: &dyn Fn(RhsArgs<'_>)| {
                let mut dy = vec![0.0; layout.states.len() * lanes];
                let mut a = vec![0.0; layout.algebraics.len() * lanes];
                let mut ctx = hooked_ctx();
                f(RhsArgs {
                    t,
                    lanes,
                    y: &y,
                    p: &p,
                    u: &u,
                    dy: &mut dy,
                    a: &mut a,
                    ctx: &mut ctx,
                });
                (dy, a)
            };
            let (dy_j, a_j) = run(&|args| jit64.rhs(args));
            let (dy_r, a_r) = run(&|args| reference.rhs(args));
            for (what, got, want) in [("dy", &dy_j, &dy_r), ("a", &a_j, &a_r)] {
                for (row, (g, w)) in got.chunks(lanes).zip(want.chunks(lanes)).enumerate() {
                    let scale = w
                        .iter()
                        .fold(0.0f64, |m, x| if x.is_finite() { m.max(x.abs()) } else { m });
                    for l in 0..lanes {
                        let ok = g[l].to_bits() == w[l].to_bits()
                            || (g[l].is_nan() && w[l].is_nan())
                            || (g[l] - w[l]).abs() <= 1e-12 * w[l].abs().max(scale);
                        assert!(
                            ok,
                            "{name} {what} row {row} lane {l}/{lanes}: jit {} vs reference {}",
                            g[l], w[l]
                        );
                    }
                }
            }
            // Single precision: same ops in f32 on both sides; 1e-6 of the row scale
            // covers the f32 pow expansions (≤ 2 ulp = 1.2e-7 relative) after cancellation.
            let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            let (y32, p32, u32_) = (to32(&y), to32(&p), to32(&u));
            let run32 = |f: &dyn Fn(RhsArgsF32<'_>)| {
                let mut dy = vec![0.0f32; layout.states.len() * lanes];
                let mut a = vec![0.0f32; layout.algebraics.len() * lanes];
                let mut ctx = hooked_ctx();
                f(RhsArgsF32 {
                    t,
                    lanes,
                    y: &y32,
                    p: &p32,
                    u: &u32_,
                    dy: &mut dy,
                    a: &mut a,
                    ctx: &mut ctx,
                });
                (dy, a)
            };
            let (dy_j, a_j) = run32(&|args| jit32.rhs_f32(args));
            let (dy_r, a_r) = run32(&|args| reference.rhs_f32(args));
            for (what, got, want) in [("dy32", &dy_j, &dy_r), ("a32", &a_j, &a_r)] {
                for (row, (g, w)) in got.chunks(lanes).zip(want.chunks(lanes)).enumerate() {
                    let scale = w
                        .iter()
                        .fold(0.0f32, |m, x| if x.is_finite() { m.max(x.abs()) } else { m });
                    for l in 0..lanes {
                        let ok = g[l].to_bits() == w[l].to_bits()
                            || (g[l].is_nan() && w[l].is_nan())
                            || (g[l] - w[l]).abs() <= 1e-6 * w[l].abs().max(scale);
                        assert!(
                            ok,
                            "{name} {what} row {row} lane {l}/{lanes}: jit {} vs reference {}",
                            g[l], w[l]
                        );
                    }
                }
            }
        }
    }
}

/// `(name, a, b, c)` of the solver's fixed-step methods.
type NamedTableau = (&'static str, Vec<f64>, Vec<f64>, Vec<f64>);

fn tableaux() -> Vec<NamedTableau> {
    vec![
        ("euler", vec![0.0], vec![1.0], vec![0.0]),
        ("heun", vec![0.0, 0.0, 1.0, 0.0], vec![0.5, 0.5], vec![0.0, 1.0]),
        (
            "rk4",
            vec![
                0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0,
            ],
            vec![1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
            vec![0.0, 0.5, 0.5, 1.0],
        ),
    ]
}

/// `y + dt·Σ c_m·k_m` with the solver's arithmetic (`solve::fixed::combine`).
fn combine_like_solver(y: &[f64], dt: f64, coeffs: &[(usize, f64)], ks: &[Vec<f64>]) -> Vec<f64> {
    match coeffs {
        [] => y.to_vec(),
        [(m, c)] => y.iter().zip(&ks[*m]).map(|(y, k)| y + dt * (c * k)).collect(),
        [(m0, c0), rest @ ..] => {
            let mut acc: Vec<f64> = ks[*m0].iter().map(|k| c0 * k).collect();
            for (m, c) in rest {
                for (a, k) in acc.iter_mut().zip(&ks[*m]) {
                    // Written out as the solver writes it (no compound assignment).
                    #[allow(clippy::assign_op_pattern)]
                    {
                        *a = *a + c * k;
                    }
                }
            }
            y.iter().zip(&acc).map(|(y, a)| y + dt * a).collect()
        }
    }
}

/// The second method: explicit RK stepping through the (separately tested) rhs kernel.
#[allow(clippy::too_many_arguments)]
fn step_with_rhs(
    k: &JitKernel,
    c: &Circuit,
    tab: (&[f64], &[f64], &[f64]),
    lanes: usize,
    nsteps: usize,
    t0: f64,
    dt: f64,
    y: &mut Vec<f64>,
    p: &[f64],
    u: &[f64],
) {
    let (a, b, cc) = tab;
    let stages = b.len();
    let nz = |row: &[f64]| {
        row.iter()
            .copied()
            .enumerate()
            .filter(|&(_, x)| x != 0.0)
            .collect::<Vec<_>>()
    };
    for s in 0..nsteps {
        let t = t0 + s as f64 * dt;
        let mut ks: Vec<Vec<f64>> = Vec::new();
        for st in 0..stages {
            let ytmp = combine_like_solver(y, dt, &nz(&a[st * stages..st * stages + st]), &ks);
            let mut dy = vec![0.0; y.len()];
            let mut al = vec![0.0; c.assigns.len() * lanes];
            let mut ctx = KernelCtx::default();
            k.rhs(RhsArgs {
                t: t + cc[st] * dt,
                lanes,
                y: &ytmp,
                p,
                u,
                dy: &mut dy,
                a: &mut al,
                ctx: &mut ctx,
            });
            ks.push(dy);
        }
        *y = combine_like_solver(y, dt, &nz(b), &ks);
    }
}

#[allow(clippy::too_many_arguments)]
fn fused(
    k: &JitKernel,
    tab: (&[f64], &[f64], &[f64]),
    lanes: usize,
    nsteps: usize,
    t0: f64,
    dt: f64,
    y: &mut [f64],
    p: &[f64],
    u: &[f64],
    algebraics: usize,
) -> bool {
    let mut a = vec![0.0; algebraics * lanes];
    let mut work = Vec::new();
    let mut ctx = KernelCtx::default();
    k.steps(StepsArgs {
        lanes,
        nsteps,
        t0,
        dt,
        tableau: crate::kernel::TableauRef {
            a: tab.0,
            b: tab.1,
            c: tab.2,
        },
        y,
        p,
        u,
        a: &mut a,
        work: &mut work,
        ctx: &mut ctx,
        samples: None,
    })
}

fn stepper_circuits() -> Vec<(String, Circuit)> {
    circuits_for_cross_check()
        .into_iter()
        .filter(|(_, c)| !c.exprs.iter().any(|e| matches!(e, Expr::Past(..) | Expr::Randn)))
        .collect()
}

/// With reciprocals off, the fused stepper does exactly the solver's arithmetic on the
/// rhs's arithmetic: bit-identical states after 40 steps of Euler, Heun and RK4, in the
/// vector and the scalar loop (11 lanes), on every Past/Randn-free cross-check circuit.
#[test]
fn jit_steps_exact_mode_equal_rhs_stepping_bitwise() {
    for (name, c) in stepper_circuits() {
        let layout = c.layout();
        let mut k = jit(&c, Precision::F64);
        k.reciprocal = false;
        let lanes = 11;
        let [y0, p, u] = generic_buffers(&c, &layout, lanes);
        for (tname, a, b, cc) in tableaux() {
            let tab = (&a[..], &b[..], &cc[..]);
            let (t0, dt, nsteps) = (0.25, 1e-3, 40);
            let mut want = y0.clone();
            step_with_rhs(&k, &c, tab, lanes, nsteps, t0, dt, &mut want, &p, &u);
            let mut got = y0.clone();
            assert!(
                fused(
                    &k,
                    tab,
                    lanes,
                    nsteps,
                    t0,
                    dt,
                    &mut got,
                    &p,
                    &u,
                    layout.algebraics.len()
                ),
                "{name} {tname}"
            );
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "{name} {tname} y[{i}]: fused {g} vs rhs stepping {w}"
                );
            }
        }
    }
}

/// Default mode (invariant divisors as reciprocals): each such division differs by
/// ≤ 1 ulp, so after 40 steps of these well-conditioned models the states agree with rhs
/// stepping to 1e-12 relative to each state row's scale (the `Kernel::steps` contract).
#[test]
fn jit_steps_reciprocal_mode_within_1e12_of_rhs_stepping() {
    for (name, c) in stepper_circuits() {
        let layout = c.layout();
        let k = jit(&c, Precision::F64);
        assert!(k.reciprocal);
        let lanes = 9;
        let [y0, p, u] = generic_buffers(&c, &layout, lanes);
        for (tname, a, b, cc) in tableaux() {
            let tab = (&a[..], &b[..], &cc[..]);
            let (t0, dt, nsteps) = (0.0, 1e-3, 40);
            let mut want = y0.clone();
            step_with_rhs(&k, &c, tab, lanes, nsteps, t0, dt, &mut want, &p, &u);
            let mut got = y0.clone();
            assert!(fused(
                &k,
                tab,
                lanes,
                nsteps,
                t0,
                dt,
                &mut got,
                &p,
                &u,
                layout.algebraics.len()
            ));
            for (row, (g, w)) in got.chunks(lanes).zip(want.chunks(lanes)).enumerate() {
                let scale = w.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                for l in 0..lanes {
                    assert!(
                        (g[l] - w[l]).abs() <= 1e-12 * scale.max(w[l].abs()),
                        "{name} {tname} row {row} lane {l}: {} vs {}",
                        g[l],
                        w[l]
                    );
                }
            }
        }
    }
}

#[test]
fn jit_steps_declines_what_it_cannot_fuse() {
    let (all_ops, _) = all_ops_circuit(); // has Past and Randn
    let k = jit(&all_ops, Precision::F64);
    let layout = all_ops.layout();
    let [mut y, p, u] = generic_buffers(&all_ops, &layout, 3);
    let (a, b, c) = (vec![0.0], vec![1.0], vec![0.0]);
    let before = y.clone();
    assert!(!fused(
        &k,
        (&a, &b, &c),
        3,
        5,
        0.0,
        0.1,
        &mut y,
        &p,
        &u,
        layout.algebraics.len()
    ));
    assert_eq!(y, before, "a declined call leaves y alone");
    // An implicit tableau (nonzero diagonal).
    let qif = qif_reference_circuit(false);
    let layout = qif.layout();
    let k = jit(&qif, Precision::F64);
    let [mut y, p, u] = generic_buffers(&qif, &layout, 3);
    assert!(!fused(&k, (&[0.5], &[1.0], &[0.5]), 3, 5, 0.0, 0.1, &mut y, &p, &u, 2));
    // Single precision kernels have no f64 stepper.
    let k32 = jit(&qif, Precision::F32);
    assert!(!fused(&k32, (&a, &b, &c), 3, 5, 0.0, 0.1, &mut y, &p, &u, 2));
}

#[test]
fn jit_kernel_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<JitKernel>();
    check::<crate::kernel::Kernel>();
}

#[test]
fn jit_invalid_circuits_are_errors_not_panics() {
    let opts = KernelOptions::default();
    // Algebraic read before its assignment.
    let mut c = Circuit::default();
    let a1 = add_var(&mut c, "a1", VarKind::Algebraic, 0.0);
    let a2 = add_var(&mut c, "a2", VarKind::Algebraic, 0.0);
    let r1 = c.add_expr(Expr::Var(a2));
    let r2 = c.add_expr(Expr::Const(1.0));
    c.assigns.push(Assign {
        var: a1,
        rhs: r1,
        span: None,
    });
    c.assigns.push(Assign {
        var: a2,
        rhs: r2,
        span: None,
    });
    assert!(matches!(JitKernel::new(&c, &opts), Err(KernelError::Codegen { .. })));
    // Wrong arity.
    let mut c = Circuit::default();
    let a1 = add_var(&mut c, "a1", VarKind::Algebraic, 0.0);
    let one = c.add_expr(Expr::Const(1.0));
    let call = c.add_expr(Expr::Call(Func::Max, vec![one]));
    c.assigns.push(Assign {
        var: a1,
        rhs: call,
        span: None,
    });
    assert!(matches!(JitKernel::new(&c, &opts), Err(KernelError::Codegen { .. })));
    // Expression cycle.
    let mut c = Circuit::default();
    let a1 = add_var(&mut c, "a1", VarKind::Algebraic, 0.0);
    c.exprs.push(Expr::Neg(ExprId(1)));
    c.exprs.push(Expr::Neg(ExprId(0)));
    c.assigns.push(Assign {
        var: a1,
        rhs: ExprId(0),
        span: None,
    });
    assert!(matches!(JitKernel::new(&c, &opts), Err(KernelError::Codegen { .. })));
    // Dangling expression id.
    let mut c = Circuit::default();
    let a1 = add_var(&mut c, "a1", VarKind::Algebraic, 0.0);
    c.assigns.push(Assign {
        var: a1,
        rhs: ExprId(9),
        span: None,
    });
    assert!(matches!(JitKernel::new(&c, &opts), Err(KernelError::Codegen { .. })));
    // Edges not lowered.
    let mut c = Circuit::default();
    let s = add_var(&mut c, "s", VarKind::State, 0.0);
    c.edges.push(Edge {
        source_node: "a".into(),
        target_node: "b".into(),
        idx: 0,
        source: s,
        target: s,
        params: Vec::new(),
        span: None,
    });
    assert!(matches!(
        JitKernel::new(&c, &opts),
        Err(KernelError::NotLowered { count: 1 })
    ));
}
