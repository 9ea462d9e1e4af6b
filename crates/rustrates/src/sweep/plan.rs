//! Before anything runs: outputs and timing checked, points grouped by kernel structure,
//! one compiled kernel per group.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::checks::{self};
use super::param_map::{self, ParamMapError};
use super::summary::{Spectrum, SpectrumPlan};
use super::{SweepError, SweepSpec};
use crate::kernel::{Backend, Kernel, KernelOptions};
use crate::model::jacobian::JacobianFn;
use crate::model::{Circuit, VarId, VarKind};
use crate::solve::{self, InputBinding, OutputBinding, Signal};

/// Where a grid key's value goes in a block.
#[derive(Clone, Copy, Debug)]
pub(super) enum Target {
    Param(usize),
    Init(usize),
}

/// What depends on the compiled kernel: one per distinct gamma-chain structure.
pub(super) struct GroupPlan {
    pub(super) kernel: std::sync::Arc<Kernel>,
    pub(super) inputs: Vec<InputBinding>,
    pub(super) outputs: Vec<OutputBinding>,
    /// Defaults per slot.
    pub(super) params: Vec<f64>,
    pub(super) init: Vec<f64>,
    /// Per grid key, its targets.
    pub(super) targets: Vec<Vec<Target>>,
    /// The compiled Jacobian, when the sweep classifies regimes (the collector then asks the
    /// solver for the state at the last sample: [`crate::solve::SampleSink::last_state`]).
    pub(super) jacobian: Option<JacobianFn>,
    /// Per start of `initial_conditions`: `(state slot, value)` overrides of the initial
    /// values; empty for one start.
    pub(super) starts: Vec<Vec<(usize, f64)>>,
    /// The state slot of each of `random_starts`' bounds.
    pub(super) random_slots: Vec<usize>,
}

/// Everything a block needs, built once per sweep.
pub(super) struct SweepPlan<'a> {
    pub(super) spec: &'a SweepSpec,
    /// One kernel per distinct gamma-chain structure among the grid points; almost always one.
    pub(super) groups: Vec<Arc<GroupPlan>>,
    /// Group per grid point; `None` when there is a single group.
    pub(super) group_of: Option<Vec<u32>>,
    /// Whether a block may hold any points of one group rather than consecutive ones: only
    /// when nothing the solver does depends on a lane's grid index (no per-point input
    /// columns, no `randn`, whose streams are seeded by `first_point + lane`).
    pub(super) gather: bool,
    /// `(node, key)` per output binding.
    pub(super) columns: Vec<(String, String)>,
    pub(super) n_time: usize,
    /// Sample times after the cutoff.
    pub(super) time: Vec<f64>,
    pub(super) n_cols: usize,
    pub(super) dts: f64,
    pub(super) fft: Option<SpectrumPlan>,
    pub(super) buffer_traces: bool,
    /// Whether the sweep classifies regimes.
    pub(super) regime: bool,
}

/// The compiled kernel and its bindings kept across runs of one spec that differ only in
/// their grid's points — the passes of a refine run ([`super::RunControl::plans`]): the first
/// run compiles, the others reuse it. Only a sweep with one kernel structure (no swept
/// gamma-chain lengths, the usual case) is kept; one with several groups compiles per run.
/// The spec must stay the same but for the grid's points and the concrete back end `Auto`
/// chose at the first run (what refine gives its passes).
#[derive(Default)]
pub struct PlanMemo {
    group: Mutex<Option<(Arc<GroupPlan>, Vec<Column>)>>,
    builds: AtomicUsize,
}

impl PlanMemo {
    /// How many times a kernel was compiled through this memo.
    pub fn builds(&self) -> usize {
        self.builds.load(Ordering::Relaxed)
    }
}

/// Stack of the thread that lowers and compiles a sweep's kernels. The back ends walk
/// expression trees recursively, one frame per level, and a tree may be as deep as the
/// parser's [`crate::syntax::parser::MAX_TREE_HEIGHT`]: with the C emitter's frames (several
/// KiB in a debug build) that is more than a caller's 2 or 8 MiB. Only the pages touched are
/// committed, so the reservation costs nothing when trees are shallow.
const COMPILE_STACK: usize = 256 << 20;

/// Runs `f` on a thread with [`COMPILE_STACK`] (in place when such a thread cannot be made).
pub(super) fn on_compile_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let slot = Mutex::new(Some(f));
    let take = || slot.lock().ok().and_then(|mut g| g.take());
    let spawned = std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("rustrates-compile".into())
            .stack_size(COMPILE_STACK)
            .spawn_scoped(s, || take().map(|f| f()))
            .ok()?;
        Some(h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    match spawned.flatten() {
        Some(v) => v,
        None => (take().expect("not run when the thread could not be made"))(),
    }
}

/// Lowers edges into assignments (the kernel only takes edge-free circuits); connectivity
/// blocks stay couplings where they can (`Kernel::compile` writes them out for the back
/// ends that do not run them).
fn lower(circuit: &Circuit) -> Circuit {
    if circuit.edges.is_empty() && circuit.couplings.is_empty() {
        circuit.clone()
    } else {
        crate::model::passes::lower_edges_keeping_couplings(circuit)
    }
}

/// `(node, output key)`.
type Column = (String, String);

/// The output columns a sweep of `circuit` will have (`all` expanded), in order, without
/// running it: PyRates' DataFrame columns are `(label, node, key)` for each label.
pub fn output_columns(spec: &SweepSpec, circuit: &Circuit) -> Result<Vec<Column>, SweepError> {
    Ok(resolve_outputs(spec, &lower(circuit))?.0)
}

/// Everything about a sweep of the unlowered `circuit` that can be checked without compiling
/// or running it: time settings, grid values, `param_map`, delays, outputs and input names.
/// [`run`] makes the same checks; fronts call this first to point at the offending setting.
pub fn check(spec: &SweepSpec, circuit: &Circuit) -> Result<(), SweepError> {
    let mut problems = checks::check_time(spec);
    problems.extend(checks::check_grid(spec));
    problems.extend(checks::check_regime(spec));
    if !problems.is_empty() {
        return Err(SweepError::Settings(problems));
    }
    if let Some(refine) = &spec.refine {
        super::refine::check(spec, refine)?;
    }
    let written = param_map::write_out_named_blocks(&spec.param_map, circuit)?;
    let circuit = written.as_ref().unwrap_or(circuit);
    let resolved = param_map::resolve(&spec.param_map, spec.param_grid.keys(), circuit)?;
    check_timing_keys(spec, circuit, &resolved)?;
    let lowered = lower(circuit);
    resolve_outputs(spec, &lowered)?;
    for (name, _) in &spec.inputs {
        input_var(&lowered, name)?;
    }
    Ok(())
}

/// Grid keys that set an edge's delay or spread must hold times ≥ 0.
fn check_timing_keys(spec: &SweepSpec, circuit: &Circuit, resolved: &param_map::ResolvedMap) -> Result<(), SweepError> {
    let timing: Vec<VarId> = circuit
        .edges
        .iter()
        .flat_map(|e| {
            e.params
                .iter()
                .filter(|(n, _)| n == "delay" || n == "spread")
                .map(|(_, id)| *id)
        })
        .collect();
    let sets_timing = resolved.keys_setting(&timing);
    let velocities: Vec<VarId> = circuit
        .couplings
        .iter()
        .filter_map(|cp| match cp.velocity {
            Some(crate::model::Scale::Param(v)) => Some(v),
            _ => None,
        })
        .collect();
    let sets_velocity = resolved.keys_setting(&velocities);
    let mut problems = checks::check_delays(spec, &sets_timing);
    problems.extend(checks::check_velocities(spec, &sets_velocity));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SweepError::Settings(problems))
    }
}

/// Expands outputs (`all` nodes) into columns and bindings.
fn resolve_outputs(spec: &SweepSpec, c: &Circuit) -> Result<(Vec<Column>, Vec<OutputBinding>), SweepError> {
    if spec.outputs.is_empty() {
        return Err(SweepError::NoOutputs);
    }
    let mut columns = Vec::new();
    let mut bindings = Vec::new();
    // A complex variable is two columns, `key.real` and `key.imag` (its IR parts); a vector
    // variable one per element, `key[0]`, `key[1]`, ...
    let find = |path: &str| -> Vec<(String, VarId)> {
        match (c.find_var(path), c.find_complex(path)) {
            (Some(id), _) => vec![(String::new(), id)],
            (None, Some(z)) => vec![(".real".into(), z.re), (".imag".into(), z.im)],
            (None, None) => c
                .find_vars(path)
                .into_iter()
                .enumerate()
                .map(|(i, id)| (format!("[{i}]"), id))
                .collect(),
        }
    };
    for (key, path) in &spec.outputs {
        let found: Vec<(String, String, VarId)> = match path.strip_prefix("all/") {
            Some(rest) => c
                .nodes
                .iter()
                .flat_map(|n| {
                    find(&format!("{n}/{rest}"))
                        .into_iter()
                        .map(move |(p, id)| (n.clone(), p, id))
                })
                .collect(),
            None => find(path)
                .into_iter()
                .map(|(part, id)| {
                    let node = c.var(id).node.clone().unwrap_or_else(|| node_of(path).to_string());
                    (node, part, id)
                })
                .collect(),
        };
        if found.is_empty() {
            return Err(SweepError::UnknownOutput {
                key: key.clone(),
                path: path.clone(),
                suggestion: param_map::closest(path, c.vars.iter().map(|v| v.name.as_str())),
            });
        }
        for (node, part, var) in found {
            let key = format!("{key}{part}");
            columns.push((node, key.clone()));
            bindings.push(OutputBinding { key, var });
        }
    }
    Ok((columns, bindings))
}

/// `node` of `node/op/var` (the node path may itself contain slashes).
fn node_of(path: &str) -> &str {
    let mut parts = path.rsplitn(3, '/');
    let _var = parts.next();
    let _op = parts.next();
    parts.next().unwrap_or(path)
}

/// The variable an input name drives in the lowered circuit.
fn input_var(c: &Circuit, name: &str) -> Result<VarId, SweepError> {
    let Some(id) = c.find_var(name) else {
        // A complex input is driven part by part (`name.real`, `name.imag`).
        let complex_part = c.find_complex(name).map(|z| c.var(z.re).name.clone());
        return Err(SweepError::UnknownInput {
            name: name.to_string(),
            suggestion: complex_part.or_else(|| {
                param_map::closest(
                    name,
                    c.vars
                        .iter()
                        .filter(|v| v.kind == VarKind::Input)
                        .map(|v| v.name.as_str()),
                )
            }),
        });
    };
    let v = c.var(id);
    match (v.kind, v.external_input) {
        (VarKind::Input, _) => Ok(id),
        (VarKind::Algebraic, Some(ext)) => Ok(ext),
        (kind, _) => Err(SweepError::NotAnInput {
            name: name.to_string(),
            kind,
        }),
    }
}

/// The structure lowering gives one gamma-chain edge: `Some(n)` stages, or `None` for a
/// discrete delay (a delay that is not positive), exactly as `lower_edges` decides.
type ChainShape = Option<usize>;

fn chain_shape(delay: f64, spread: f64) -> ChainShape {
    (delay > 0.0).then(|| crate::model::passes::lower_edges::chain_len(delay, spread))
}

/// Edges with a spread whose delay or spread some grid key sets: `(delay var, spread var)`.
fn swept_chain_edges(circuit: &Circuit, resolved: &param_map::ResolvedMap) -> Vec<(VarId, VarId)> {
    let swept = |v: VarId| resolved.keys.iter().any(|(_, ids)| ids.contains(&v));
    circuit
        .edges
        .iter()
        .filter_map(|e| match (e.param("delay"), e.param("spread")) {
            (Some(d), Some(s)) if swept(d) || swept(s) => Some((d, s)),
            _ => None,
        })
        .collect()
}

/// Groups the grid points by their chain structure. Returns, per group, a representative
/// point (`None` for the template's own values) and the group of every point (`None` when
/// there is one group). Groups are numbered by first appearance, the template's own
/// structure first when a point has it.
fn group_points(
    spec: &SweepSpec,
    circuit: &Circuit,
    resolved: &param_map::ResolvedMap,
    edges: &[(VarId, VarId)],
) -> (Vec<Option<usize>>, Option<Vec<u32>>) {
    if edges.is_empty() {
        return (vec![None], None);
    }
    let grid = &spec.param_grid;
    // Per chain variable, the grid key that sets it last (later keys win, as in a block).
    let key_of = |v: VarId| resolved.keys.iter().rposition(|(_, ids)| ids.contains(&v));
    let sources: Vec<(Option<usize>, Option<usize>)> = edges.iter().map(|&(d, s)| (key_of(d), key_of(s))).collect();
    let value = |v: VarId, key: Option<usize>, p: usize| key.map_or(circuit.var(v).value, |k| grid.column(k)[p]);
    let default: Vec<ChainShape> = edges
        .iter()
        .map(|&(d, s)| chain_shape(circuit.var(d).value, circuit.var(s).value))
        .collect();
    let mut shapes: std::collections::HashMap<Vec<ChainShape>, usize> = [(default, 0)].into_iter().collect();
    let mut reps: Vec<Option<usize>> = vec![None];
    let mut used_default = false;
    let mut group_of = Vec::with_capacity(grid.len());
    let mut shape = Vec::with_capacity(edges.len());
    for p in 0..grid.len() {
        shape.clear();
        shape.extend(
            edges
                .iter()
                .zip(&sources)
                .map(|(&(d, s), &(kd, ks))| chain_shape(value(d, kd, p), value(s, ks, p))),
        );
        let g = match shapes.get(&shape) {
            Some(&g) => g,
            None => {
                shapes.insert(shape.clone(), reps.len());
                reps.push(Some(p));
                reps.len() - 1
            }
        };
        used_default |= g == 0;
        group_of.push(g as u32);
    }
    if !used_default {
        // No point has the template's structure: do not compile a kernel for it.
        reps.remove(0);
        for g in &mut group_of {
            *g -= 1;
        }
    }
    if reps.len() == 1 {
        return (reps, None);
    }
    (reps, Some(group_of))
}

pub(super) fn build_plan<'a>(
    spec: &'a SweepSpec,
    circuit: &Circuit,
    memo: Option<&PlanMemo>,
) -> Result<SweepPlan<'a>, SweepError> {
    if spec.block_size == 0 {
        return Err(SweepError::BadBlockSize);
    }
    let written = param_map::write_out_named_blocks(&spec.param_map, circuit)?;
    let circuit = written.as_ref().unwrap_or(circuit);
    let resolved = param_map::resolve(&spec.param_map, spec.param_grid.keys(), circuit)?;
    check_timing_keys(spec, circuit, &resolved)?;
    let names = resolved.names(circuit);
    let chain_edges = swept_chain_edges(circuit, &resolved);
    let (reps, group_of) = group_points(spec, circuit, &resolved, &chain_edges);
    let mut groups = Vec::with_capacity(reps.len());
    let mut columns = Vec::new();
    let memo = memo.filter(|_| reps == [None]);
    let kept = memo.and_then(|m| m.group.lock().ok().and_then(|g| g.clone()));
    let reused = kept.is_some();
    if let Some((group, cols)) = kept {
        // Built for another grid of the same spec: only the inputs' length check depends on
        // the grid.
        solve::validate_inputs(&group.kernel, &spec.sim, &group.inputs, spec.param_grid.len())?;
        columns = cols;
        groups.push(group);
    }
    for rep in reps.into_iter().filter(|_| !reused) {
        // The circuit with the representative point's delays and spreads written in, so that
        // lowering builds that point's chains; the per-lane values still set each k.
        let template = match rep {
            None => std::borrow::Cow::Borrowed(circuit),
            Some(p) => {
                let mut c = circuit.clone();
                for (k, (_, ids)) in resolved.keys.iter().enumerate() {
                    for &id in ids {
                        if chain_edges.iter().any(|&(d, s)| d == id || s == id) {
                            c.vars[id.0 as usize].value = spec.param_grid.column(k)[p];
                        }
                    }
                }
                std::borrow::Cow::Owned(c)
            }
        };
        let (group, cols) = build_group(spec, &template, &names)?;
        let group = Arc::new(group);
        if let Some(m) = memo {
            m.builds.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut kept) = m.group.lock() {
                *kept = Some((Arc::clone(&group), cols.clone()));
            }
        }
        columns = cols;
        groups.push(group);
    }
    let time_plan = solve::TimeGrid::new(&spec.sim)?;
    let time: Vec<f64> = (time_plan.first_emitted()..time_plan.samples)
        .map(|k| time_plan.sample_time(k))
        .collect();
    let n_time = time.len();
    let needs_fft = spec.summaries.iter().any(|s| s.needs_fft());
    let needs_regime = spec.summaries.iter().any(|s| s.needs_regime());
    let per_point_inputs = spec.inputs.iter().any(|(_, s)| matches!(s, Signal::PerPoint { .. }));
    let noise = groups.iter().any(|g| {
        g.kernel
            .circuit()
            .exprs
            .iter()
            .any(|e| matches!(e, crate::model::Expr::Randn))
    });
    Ok(SweepPlan {
        spec,
        groups,
        gather: group_of.is_some() && !per_point_inputs && !noise,
        group_of,
        n_cols: columns.len(),
        columns,
        n_time,
        time,
        dts: spec.sim.sampling_step.unwrap_or(spec.sim.dt),
        // Fewer than two samples have no spectrum: those statistics stay NaN.
        fft: (needs_fft && n_time >= 2).then(|| Spectrum::plan(n_time)),
        buffer_traces: spec.keep_traces || needs_fft,
        regime: needs_regime,
    })
}

/// Lowers and compiles `circuit` (unlowered, with one group's chain values) and binds the
/// swept variables `names`, inputs and outputs to its layout.
fn build_group(
    spec: &SweepSpec,
    circuit: &Circuit,
    names: &[(String, Vec<String>)],
) -> Result<(GroupPlan, Vec<Column>), SweepError> {
    let mut lowered = lower(circuit);

    // Swept variables by name in the lowered circuit; inputs that a key sets per lane become
    // parameters (an undriven input is a constant per lane, which is what a parameter is).
    let mut swept: Vec<Vec<VarId>> = Vec::with_capacity(names.len());
    for (key, vars) in names {
        let mut ids = Vec::with_capacity(vars.len());
        for name in vars {
            let Some(mut id) = lowered.find_var(name) else {
                return Err(ParamMapError::PathNotFound {
                    key: key.clone(),
                    path: name.clone(),
                    suggestion: None,
                }
                .into());
            };
            if let (VarKind::Algebraic, Some(ext)) = (lowered.var(id).kind, lowered.var(id).external_input) {
                id = ext;
            }
            ids.push(id);
        }
        swept.push(ids);
    }
    let mut inputs = Vec::with_capacity(spec.inputs.len());
    for (name, signal) in &spec.inputs {
        let var = input_var(&lowered, name)?;
        if let Some(k) = swept.iter().position(|ids| ids.contains(&var)) {
            return Err(SweepError::InputSweptAndDriven {
                name: name.clone(),
                key: names[k].0.clone(),
            });
        }
        inputs.push(InputBinding {
            var,
            signal: signal.clone(),
        });
    }
    for ids in &swept {
        for &id in ids {
            let v = &mut lowered.vars[id.0 as usize];
            if v.kind == VarKind::Input {
                v.kind = VarKind::Param;
            }
        }
    }
    let (columns, outputs) = resolve_outputs(spec, &lowered)?;
    let layout = lowered.layout();
    // A gamma chain starts at its source's initial value, so a key that sets that initial
    // value sets the chain's too (as lowering the edited template would).
    let chains: Vec<(VarId, Vec<VarId>)> = circuit
        .edges
        .iter()
        .filter_map(|e| {
            let d = e.param("delay")?;
            // Only an edge with a spread lowers to a chain (`lower_edges`): skip the name
            // look-ups (linear in the variables) for the others, e.g. a network's N² delays.
            e.param("spread")?;
            let base = circuit.var(d).name.trim_end_matches("/delay").to_string();
            let stages: Vec<VarId> = (1..).map_while(|i| lowered.find_var(&format!("{base}/z{i}"))).collect();
            let source = lowered.find_var(&circuit.var(e.source).name)?;
            (!stages.is_empty()).then_some((source, stages))
        })
        .collect();
    let targets = swept
        .iter()
        .map(|ids| {
            let mut t = Vec::with_capacity(ids.len());
            for &id in ids {
                let slot = layout.slot[id.0 as usize] as usize;
                if lowered.var(id).kind != VarKind::State {
                    t.push(Target::Param(slot));
                    continue;
                }
                t.push(Target::Init(slot));
                for (_, stages) in chains.iter().filter(|(src, _)| *src == id) {
                    t.extend(stages.iter().map(|z| Target::Init(layout.slot[z.0 as usize] as usize)));
                }
            }
            t
        })
        .collect();
    let params = layout.params.iter().map(|&id| lowered.var(id).value).collect();
    let init = layout.states.iter().map(|&id| lowered.var(id).value).collect();
    let work = spec.param_grid.len() as f64 * spec.steps() as f64;
    // Parameters no grid key sets are the same in every lane: compiling them in as constants
    // lets the back ends fold them (≈ 1.9× faster on the reference sweep). Swept parameters
    // stay per-lane data; the layout and buffers do not change.
    let per_lane: Vec<crate::model::VarId> = swept.iter().flatten().copied().collect();
    let compiled = crate::model::passes::specialize_params(&lowered, &per_lane);
    let kernel = Kernel::compile_shared(
        &compiled,
        &KernelOptions {
            backend: spec.backend,
            precision: spec.precision,
            work_hint: work,
            cache_dir: None,
            ..KernelOptions::default()
        },
    )?;
    let mut starts = Vec::with_capacity(spec.initial_conditions.len());
    for (k, start) in spec.initial_conditions.iter().enumerate() {
        let mut overrides = Vec::with_capacity(start.len());
        for (name, value) in start {
            let id = lowered
                .find_var(name)
                .filter(|&id| lowered.var(id).kind == VarKind::State);
            let Some(id) = id else {
                return Err(SweepError::InitialCondition {
                    start: k,
                    name: name.clone(),
                    suggestion: param_map::closest(name, layout.states.iter().map(|&s| lowered.var(s).name.as_str())),
                });
            };
            overrides.push((layout.slot[id.0 as usize] as usize, *value));
        }
        starts.push(overrides);
    }
    let mut random_slots = Vec::new();
    for (name, _, _) in spec.random_starts.iter().flat_map(|r| &r.bounds) {
        let id = lowered
            .find_var(name)
            .filter(|&id| lowered.var(id).kind == VarKind::State);
        let Some(id) = id else {
            return Err(SweepError::RandomStart {
                name: name.clone(),
                suggestion: param_map::closest(name, layout.states.iter().map(|&s| lowered.var(s).name.as_str())),
            });
        };
        random_slots.push(layout.slot[id.0 as usize] as usize);
    }
    let jacobian = if spec.summaries.iter().any(|s| s.needs_regime()) {
        let jac = crate::model::jacobian::jacobian(&compiled)?;
        Some(JacobianFn::new(
            &jac,
            &KernelOptions {
                backend: Backend::Reference,
                ..KernelOptions::default()
            },
        )?)
    } else {
        None
    };
    // The solver's own time grid and the inputs, checked here so that bad settings or inputs
    // fail before any sink is touched.
    solve::TimeGrid::new(&spec.sim)?;
    solve::validate_inputs(&kernel, &spec.sim, &inputs, spec.param_grid.len())?;
    Ok((
        GroupPlan {
            kernel,
            inputs,
            outputs,
            params,
            init,
            targets,
            jacobian,
            starts,
            random_slots,
        },
        columns,
    ))
}
