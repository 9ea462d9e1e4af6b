//! The JIT's population loops (`kernel/jit/loops.rs`): a network whose couplings the engine
//! runs compiles each population's equations once, as a loop over its nodes. Two populations
//! of different templates, coupled both ways by `connectivity:` blocks, with per-lane
//! parameters, per-node constants, per-node inputs, an algebraic and transcendental calls:
//! the loops must equal the reference evaluator and the same JIT kernel with every node's
//! equations written out bit for bit (each node evaluates the same IEEE operations in the
//! same order, the helpers are the shared `mathfns`), in both precisions; a sweep equals the
//! reference's and the C loops' bit for bit. The same blocks written out as edge sums (an
//! edge list) run as the same loops, the engine summing the edges, and so do blocks with
//! delays (written out, the engine reading the delayed terms through the `past` hook).

use indexmap::IndexMap;
use rustrates::kernel::precision::Real;
use rustrates::kernel::{Backend, Kernel, KernelCtx, KernelOptions, Precision};
use rustrates::model::passes::{expand_couplings, lower_edges_keeping_couplings, specialize_params};
use rustrates::model::test_models::{var_ids_named, yaml_rect};
use rustrates::model::{Circuit, VarId};
use rustrates::solve::{Method, Signal, SimConfig};
use rustrates::sweep::{Grid, ParamMap, SweepSpec};

use crate::support::{backends, bits, c_available, load_net, run};

const EXC: usize = 6;
const INH: usize = 4;

/// An excitatory QIF population driven per node (`I_ext`) and by the inhibitory one (`r_in`),
/// and an inhibitory rate population with an algebraic, `tanh` and `exp`, driven by the
/// excitatory one (`u_in`); weights all different, the I → E block sparse.
fn two_populations_yaml(delay: bool) -> String {
    let mut nodes = String::new();
    for i in 0..EXC {
        nodes.push_str(&format!("    e{i}: exc\n"));
    }
    for i in 0..INH {
        nodes.push_str(&format!("    i{i}: inh\n"));
    }
    let exc: Vec<String> = (0..EXC).map(|i| format!("e{i}")).collect();
    let inh: Vec<String> = (0..INH).map(|i| format!("i{i}")).collect();
    network_yaml("  nodes:\n", &nodes, &exc, &inh, delay)
}

/// The same templates in `COLUMNS` sub-circuits of one excitatory and one inhibitory node
/// each, so each population's variables interleave with the other's in the kernel's arrays.
fn nested_yaml() -> String {
    let mut columns = String::new();
    for k in 0..COLUMNS {
        columns.push_str(&format!("    c{k}: Col\n"));
    }
    let exc: Vec<String> = (0..COLUMNS).map(|k| format!("c{k}/e")).collect();
    let inh: Vec<String> = (0..COLUMNS).map(|k| format!("c{k}/i")).collect();
    let col = "Col:\n  base: CircuitTemplate\n  nodes:\n    e: exc\n    i: inh\n";
    network_yaml("  circuits:\n", &columns, &exc, &inh, false).replace("Net:\n", &format!("{col}Net:\n"))
}

const COLUMNS: usize = 5;

/// The templates, circuit `Net` with `members` under `section`, and the two blocks between
/// the `exc` and `inh` nodes.
fn network_yaml(section: &str, members: &str, exc: &[String], inh: &[String], delay: bool) -> String {
    let (ne, ni) = (exc.len(), inh.len());
    let mut y = String::from(
        r#"
exc_op:
  base: OperatorTemplate
  equations:
    - "r' = (Delta/(pi*tau) + 2.0*r*v)/tau"
    - "v' = (v^2 + eta + I_ext + tau*r_in - (pi*tau*r)^2)/tau"
  variables:
    r: output(0.01)
    v: variable(-2.0)
    Delta: 1.0
    tau: 1.0
    eta: -5.0
    I_ext: input(0.0)
    r_in: input(0.0)
exc: {base: NodeTemplate, operators: [exc_op]}
inh_op:
  base: OperatorTemplate
  equations:
    - "s = k*a^2"
    - "a' = (tanh(u_in) - a)/tau_a + 0.1*exp(-s)"
  variables:
    a: output(0.1)
    s: variable(0.0)
    k: 2.0
    tau_a: 0.02
    u_in: input(0.0)
inh: {base: NodeTemplate, operators: [inh_op]}
Net:
  base: CircuitTemplate
"#,
    );
    y.push_str(section);
    y.push_str(members);
    // E → I: dense; I → E: every third entry left out.
    let e_to_i = yaml_rect(ni, ne, |i, j| 0.5 + 0.1 * (i * ne + j) as f64);
    let i_to_e = yaml_rect(ne, ni, |i, j| {
        if (i + j) % 3 == 0 {
            0.0
        } else {
            -0.3 - 0.05 * (i * ni + j) as f64
        }
    });
    // The E → I block scaled (global coupling, swept per lane by `compiled`).
    y.push_str(&format!(
        "  connectivity:\n    - source: exc_op/r\n      target: inh_op/u_in\n      source_nodes: [{}]\n      target_nodes: [{}]\n      weight: {e_to_i}\n      name: EI\n      scale: 0.8\n",
        exc.join(", "),
        inh.join(", ")
    ));
    y.push_str(&format!(
        "    - source: inh_op/a\n      target: exc_op/r_in\n      source_nodes: [{}]\n      target_nodes: [{}]\n      weight: {i_to_e}\n",
        inh.join(", "),
        exc.join(", ")
    ));
    if delay {
        let d = yaml_rect(ne, ni, |i, j| 1e-4 * (1 + (i + 2 * j) % 5) as f64);
        y.push_str(&format!("      delay: {d}\n"));
    }
    y
}

/// The loaded network with a value per node of `eta` (excitatory) and `tau_a` (inhibitory),
/// so both populations have per-node constants once folded.
fn per_node_values(mut c: Circuit) -> Circuit {
    let (mut e, mut i) = (0, 0);
    for v in &mut c.vars {
        if v.name.ends_with("/exc_op/eta") {
            v.value = -6.0 + 0.4 * e as f64;
            e += 1;
        } else if v.name.ends_with("/inh_op/tau_a") {
            v.value = 0.01 + 0.005 * i as f64;
            i += 1;
        }
    }
    assert!(e >= 4 && i >= 4, "{e} eta, {i} tau_a");
    c
}

/// Lowered (blocks kept) with every excitatory node's `Delta` and the E → I block's scale
/// per lane, the rest folded.
fn compiled(c: &Circuit) -> Circuit {
    let kept = lower_edges_keeping_couplings(c);
    let delta = var_ids_named(&kept, |name| name.ends_with("/Delta") || name == "EI/scale");
    assert!(delta.len() > 4, "every excitatory node's Delta and the scale");
    specialize_params(&kept, &delta)
}

fn compile(c: &Circuit, backend: Backend, precision: Precision) -> Kernel {
    let options = KernelOptions {
        backend,
        precision,
        ..KernelOptions::default()
    };
    Kernel::compile(c, &options).expect("compiles")
}

/// The JIT kernel of `c` with every node's equations and edge sums written out (no
/// population loops, no couplings run by the engine).
fn compile_unrolled(c: &Circuit, precision: Precision) -> Kernel {
    let options = KernelOptions {
        backend: Backend::Jit,
        precision,
        jit_unrolled: true,
        ..KernelOptions::default()
    };
    let k = Kernel::compile(c, &options).expect("compiles");
    assert!(!k.is_network() && !k.runs_couplings(), "unrolled");
    k
}

/// Buffers of one evaluation over `lanes` lanes: states, parameters and inputs (the per-node
/// `I_ext` and the external inputs) different in every row and lane.
fn buffers(k: &Kernel, lanes: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let l = k.layout();
    let c = k.circuit();
    let fill = |vars: &[VarId], salt: usize| -> Vec<f64> {
        vars.iter()
            .enumerate()
            .flat_map(|(row, v)| {
                let base = c.var(*v).value;
                (0..lanes).map(move |lane| {
                    let wiggle = 0.01 * ((row * 7 + lane * 3 + salt) % 13) as f64;
                    base * (1.0 + wiggle) + wiggle
                })
            })
            .collect()
    };
    (fill(&l.states, 0), fill(&l.params, 5), fill(&l.inputs, 11))
}

/// A history for one evaluation (the delayed network's `past` reads): a value for every
/// (variable, lane, time, delay), different for each.
fn made_up_past(_: &mut KernelCtx, var: u32, lane: usize, t: f64, delay: f64) -> f64 {
    0.1 * (0.37 * f64::from(var) + 0.11 * lane as f64 + t - 3e3 * delay).sin()
}

/// One evaluation in precision `R`: derivatives and algebraics, as the bits of each value
/// widened to `f64` (exact, so equal bits are equal values of `R`). The inputs are the f64
/// buffers rounded to `R`.
fn evaluate_in<R: Real>(k: &Kernel, lanes: usize) -> Vec<u64> {
    let (y, p, u) = buffers(k, lanes);
    let narrow = |v: Vec<f64>| -> Vec<R> { v.into_iter().map(R::of).collect() };
    let (y, p, u) = (narrow(y), narrow(p), narrow(u));
    let l = k.layout();
    let mut dy = vec![R::ZERO; l.states.len() * lanes];
    let mut a = vec![R::ZERO; l.algebraics.len() * lanes];
    let mut ctx = KernelCtx {
        past: Some(made_up_past),
        ..KernelCtx::default()
    };
    R::rhs(k, 0.25, lanes, &y, &p, &u, &mut dy, &mut a, &mut ctx);
    assert!(dy.iter().all(|x| x.finite()), "finite derivatives");
    dy.iter().chain(&a).map(|x| x.wide().to_bits()).collect()
}

/// [`evaluate_in`] in double precision.
fn evaluate(k: &Kernel, lanes: usize) -> Vec<u64> {
    evaluate_in::<f64>(k, lanes)
}

/// The population loops and the unrolled JIT evaluate as the reference, bit for bit.
fn assert_loops_and_unrolled_equal_the_reference(loops: &Kernel, unrolled: &Kernel, reference: &Kernel, lanes: usize) {
    let want = evaluate(reference, lanes);
    assert!(
        evaluate(loops, lanes) == want,
        "{lanes} lanes: loops differ from the reference"
    );
    assert!(evaluate(unrolled, lanes) == want, "{lanes} lanes: unrolled JIT differs");
}

#[test]
fn population_loops_evaluate_as_the_reference_and_the_unrolled_jit_bit_for_bit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = compiled(&per_node_values(load_net(
        dir.path(),
        "two.yaml",
        &two_populations_yaml(false),
    )));
    let loops = compile(&c, Backend::Jit, Precision::F64);
    assert!(
        loops.is_network() && loops.runs_couplings(),
        "the JIT runs population loops"
    );
    // The same kernel with every node's equations and couplings written out, and the
    // tree-walking evaluator.
    let unrolled = compile_unrolled(&c, Precision::F64);
    let reference = compile(&c, Backend::Reference, Precision::F64);
    // 1 lane: the scalar loop only; 4: one vector iteration (2 × f64x2); 11: vectors, then
    // the scalar tail; 21: the engine's coupling over two chunks of 8 lanes, then lane by
    // lane.
    for lanes in [1, 4, 11, 21] {
        assert_loops_and_unrolled_equal_the_reference(&loops, &unrolled, &reference, lanes);
    }
    // Single precision: the per-node constants are rounded to f32 on load, as folding rounds
    // them in the unrolled code; 13 lanes: f32x4 vectors, then the tail.
    let loops = compile(&c, Backend::Jit, Precision::F32);
    assert!(loops.is_network());
    let reference = compile(&c, Backend::Reference, Precision::F32);
    for lanes in [1, 13] {
        assert!(
            evaluate_in::<f32>(&loops, lanes) == evaluate_in::<f32>(&reference, lanes),
            "{lanes} lanes, f32: loops differ from the reference"
        );
    }
}

#[test]
fn nested_columns_run_as_population_loops_bit_for_bit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = compiled(&per_node_values(load_net(dir.path(), "nested.yaml", &nested_yaml())));
    let plan = rustrates::model::network::plan(&c).expect("the columns form a network");
    assert_eq!(plan.populations.len(), 2, "one loop per template");
    let loops = compile(&c, Backend::Jit, Precision::F64);
    assert!(loops.is_network());
    let unrolled = compile_unrolled(&c, Precision::F64);
    let reference = compile(&c, Backend::Reference, Precision::F64);
    for lanes in [1, 11] {
        assert_loops_and_unrolled_equal_the_reference(&loops, &unrolled, &reference, lanes);
    }
}

/// The two blocks written out as edge sums (what lowering makes of a YAML edge list: one
/// `ext + w·x + …` assignment per target, the scaled block's as `ext + s·(w·x + …)`): the JIT
/// reads the sums back as couplings (`network::plan`), the engine runs them and the node
/// equations compile as the same population loops, bit for bit equal to the unrolled JIT and
/// the reference evaluator (same terms in the same order), in both precisions.
#[test]
fn edge_lists_run_as_population_loops_bit_for_bit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let blocks = compiled(&per_node_values(load_net(
        dir.path(),
        "two.yaml",
        &two_populations_yaml(false),
    )));
    let c = expand_couplings(&blocks);
    assert!(c.couplings.is_empty(), "every sum written out");
    let loops = compile(&c, Backend::Jit, Precision::F64);
    assert!(
        loops.is_network() && loops.runs_couplings(),
        "the JIT runs the edge list as population loops"
    );
    let unrolled = compile_unrolled(&c, Precision::F64);
    let reference = compile(&c, Backend::Reference, Precision::F64);
    assert!(
        !reference.runs_couplings(),
        "the reference evaluator sums the edges itself"
    );
    // 21 lanes: the engine's two chunks of 8 lanes, then 5 lane by lane.
    for lanes in [1, 4, 11, 21] {
        assert_loops_and_unrolled_equal_the_reference(&loops, &unrolled, &reference, lanes);
    }
    let loops = compile(&c, Backend::Jit, Precision::F32);
    assert!(loops.is_network() && loops.runs_couplings());
    let reference = compile(&c, Backend::Reference, Precision::F32);
    for lanes in [1, 13, 19] {
        assert!(
            evaluate_in::<f32>(&loops, lanes) == evaluate_in::<f32>(&reference, lanes),
            "{lanes} lanes, f32: the edge list's loops differ from the reference"
        );
    }
}

#[test]
fn population_loops_sweep_as_the_reference_and_the_c_loops() {
    for delay in [false, true] {
        sweep_as_the_reference_and_the_c_loops(delay);
    }
}

/// The sweep of [`population_loops_sweep_as_the_reference_and_the_c_loops`], with delays on
/// the I → E block or without.
fn sweep_as_the_reference_and_the_c_loops(delay: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = per_node_values(load_net(dir.path(), "two.yaml", &two_populations_yaml(delay)));
    let jit = compile(&compiled(&c), Backend::Jit, Precision::F64);
    assert!(
        jit.is_network() && jit.runs_couplings(),
        "delay {delay}: the JIT's loops"
    );
    let (dt, steps) = (1e-4, 400);
    let exc: Vec<String> = (0..EXC).map(|i| format!("e{i}")).collect();
    let exc_refs: Vec<&str> = exc.iter().map(String::as_str).collect();
    let deltas = [0.5, 1.0, 2.0, 3.0, 4.0];
    let spec = |backend: Backend, method: Method| {
        let mut values = IndexMap::new();
        values.insert("Delta".to_string(), deltas.to_vec());
        let sim = SimConfig::new(method, steps as f64 * dt, dt, Some(10.0 * dt));
        let map = ParamMap::new().nodes("Delta", &["exc_op/Delta"], &exc_refs);
        let mut spec = SweepSpec::new(Grid::from_values(&values, true).expect("grid"), map, sim);
        spec.outputs = vec![("r".into(), "all/exc_op/r".into()), ("a".into(), "all/inh_op/a".into())];
        spec.backend = backend;
        spec.threads = Some(1);
        spec.block_size = 5;
        // A drive per excitatory node and point.
        spec.inputs = (0..EXC)
            .map(|i| {
                let data: Vec<f64> = (0..steps * deltas.len())
                    .map(|x| {
                        (1.0 + i as f64) * (0.02 * (x / deltas.len()) as f64 * (1.0 + (x % deltas.len()) as f64)).sin()
                    })
                    .collect();
                (
                    format!("e{i}/exc_op/I_ext"),
                    Signal::PerPoint {
                        points: deltas.len(),
                        data: data.into(),
                    },
                )
            })
            .collect();
        spec
    };
    for method in [Method::Euler, Method::Rk4] {
        let want = run(&spec(Backend::Reference, method), &c);
        let traces = want.traces.as_ref().expect("traces");
        assert!(traces.iter().all(|x| x.is_finite()), "{method:?}: finite");
        // Not trivial: the points' excitatory rates differ.
        assert_ne!(want.trace(0, 0).unwrap(), want.trace(4, 0).unwrap());
        for backend in backends().into_iter().filter(|b| *b != Backend::Reference) {
            let got = run(&spec(backend, method), &c);
            assert!(
                bits(&got) == bits(&want),
                "{method:?}, {backend:?}, delay {delay}: differs from the reference"
            );
        }
    }
    if c_available() {
        // The C back end runs the same network as its own loops.
        let cache = tempfile::tempdir().expect("temp dir");
        let options = KernelOptions {
            backend: Backend::C,
            cache_dir: Some(cache.path().to_path_buf()),
            ..KernelOptions::default()
        };
        assert!(Kernel::compile(&compiled(&c), &options).expect("compiles").is_network());
    }
}

/// Delays on the I → E block: the engine cannot run a kept block with delays, so it is
/// written out, and the JIT reads the written-out sums back as couplings whose delayed terms
/// the engine reads through the solver's `past` hook: the node equations still compile as
/// population loops, and one evaluation (through a made-up history) equals the unrolled JIT
/// and the reference evaluator bit for bit, in both precisions.
#[test]
fn delayed_blocks_run_as_population_loops_bit_for_bit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = compiled(&per_node_values(load_net(
        dir.path(),
        "delayed.yaml",
        &two_populations_yaml(true),
    )));
    let loops = compile(&c, Backend::Jit, Precision::F64);
    assert!(loops.is_network() && loops.runs_couplings());
    let unrolled = compile_unrolled(&c, Precision::F64);
    let reference = compile(&c, Backend::Reference, Precision::F64);
    for lanes in [1, 4, 11, 21] {
        assert_loops_and_unrolled_equal_the_reference(&loops, &unrolled, &reference, lanes);
    }
    let loops = compile(&c, Backend::Jit, Precision::F32);
    let reference = compile(&c, Backend::Reference, Precision::F32);
    for lanes in [1, 13] {
        assert!(
            evaluate_in::<f32>(&loops, lanes) == evaluate_in::<f32>(&reference, lanes),
            "{lanes} lanes, f32: the delayed loops differ from the reference"
        );
    }
}
