//! Sweep spec files: the fields of `grid_search` as YAML, for `rustrates sweep`.
//!
//! ```yaml
//! template: model_templates.montbrio.simple_montbrio.Net3
//! simulation_time: 5.0
//! step_size: 1.0e-4
//! sampling_step_size: 1.0e-3
//! solver: euler            # heun, rk4, rk45 (scipy)
//! backend: auto            # jit, c, reference; PyRates' names map to auto
//! float_precision: float64
//! permute_grid: true
//! param_grid:
//!   eta_op: {linspace: [-5, 5, 5]}   # or a list of values, or {arange: [start, stop, step]}
//!   eta_iin: [-5, 0, 5]
//! param_map:
//!   eta_op: {vars: [Op_e/eta], nodes: [PC]}
//!   w: {vars: [weight], edges: [[PC, IIN, 0]]}
//! inputs:
//!   PC/Op_e/inp: 1.0                  # a constant, or a file: {file: inp.csv}
//! outputs:
//!   r: PC/Op_e/r
//! cutoff: 0.0
//! summaries: [mean, std, dominant_frequency]   # or regime (+ period, amplitude, eig_re, eig_im)
//! regime: {stationary_tol: 1.0e-6, period_rtol: 0.01, min_cycles: 3, flat_tol: 1.0e-9}
//! initial_conditions: [{PC/Op_e/r: 0.01}, {PC/Op_e/r: 2.0}]   # several starts per point
//! refine: {levels: 5, criterion: regime}   # or criterion: <summary>, tolerance: 0.1
//! random_starts: {n: 8, seed: 0, bounds: {PC/Op_e/r: [0, 3]}}  # and/or uniform random ones
//! keep_traces: true
//! trace_precision: float64  # float32 stores traces in half the bytes (rounded to single)
//! chunk_size: 65536        # points per part file (the unit of resume); default 65536
//! ```
//!
//! Every problem is reported with the file, line and column of the offending value.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use rustrates::io::h5::TraceType;
use rustrates::kernel::{Backend, Precision};
use rustrates::solve::{Method, Signal, SimConfig};
use rustrates::sweep::checks;
use rustrates::sweep::refine::{Criterion, Refine};
use rustrates::sweep::regime::{RandomStarts, RegimeSettings};
use rustrates::sweep::{EdgeRef, Grid, MapEntry, MapTargets, ParamMap, Setting, Statistic, SweepError, SweepSpec};
use rustrates::syntax::{Diagnostic, Diagnostics, SourceMap};
use rustrates::template::yaml::{self, Node};

use crate::signal;

/// A parsed spec file: the sweep plus what the CLI needs to load the template.
pub(crate) struct SpecFile {
    pub template: String,
    /// The spec file's directory: relative template and input paths resolve against it.
    pub base_dir: PathBuf,
    pub spec: SweepSpec,
    /// The file's text and its YAML tree, to point at a setting the engine refuses later.
    pub sources: SourceMap,
    pub root: Node,
    pub path: PathBuf,
    /// How the results file stores traces (`trace_precision`).
    pub trace_type: TraceType,
}

const KEYS: &[&str] = &[
    "template",
    "circuit_template",
    "simulation_time",
    "step_size",
    "dt",
    "sampling_step_size",
    "solver",
    "backend",
    "float_precision",
    "permute_grid",
    "param_grid",
    "param_map",
    "inputs",
    "outputs",
    "cutoff",
    "summaries",
    "regime",
    "initial_conditions",
    "refine",
    "random_starts",
    "keep_traces",
    "trace_precision",
    "chunk_size",
    "block_size",
    "rtol",
    "atol",
];

struct Ctx<'a> {
    diags: Diagnostics,
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(&mut self, node: &Node, code: &'static str, msg: impl Into<String>) {
        self.diags.push(
            Diagnostic::error(code, msg)
                .with_span(node.span)
                .with_path(self.file.display().to_string()),
        );
    }
    fn err_help(&mut self, node: &Node, code: &'static str, msg: impl Into<String>, help: impl Into<String>) {
        self.diags.push(
            Diagnostic::error(code, msg)
                .with_span(node.span)
                .with_help(help)
                .with_path(self.file.display().to_string()),
        );
    }
    fn number(&mut self, node: &Node, what: &str) -> Option<f64> {
        let v = node.as_f64();
        if v.is_none() {
            self.err(
                node,
                "spec/not-a-number",
                format!("`{what}` must be a number, found {}", describe(node)),
            );
        }
        v
    }
    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.as_str() {
            Some(s) if !matches!(node.value, yaml::Value::Seq(_) | yaml::Value::Map(_)) => Some(s.to_string()),
            _ => {
                self.err(
                    node,
                    "spec/not-a-string",
                    format!("`{what}` must be a string, found {}", describe(node)),
                );
                None
            }
        }
    }
    fn strings(&mut self, node: &Node, what: &str) -> Vec<String> {
        match node.as_seq() {
            Some(items) => items.iter().filter_map(|n| self.string(n, what)).collect(),
            None => self.string(node, what).into_iter().collect(),
        }
    }
    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.as_str() {
            Some("true" | "True" | "yes") => Some(true),
            Some("false" | "False" | "no") => Some(false),
            _ => {
                self.err(
                    node,
                    "spec/not-a-bool",
                    format!("`{what}` must be true or false, found {}", describe(node)),
                );
                None
            }
        }
    }
}

fn describe(node: &Node) -> String {
    match node.as_str() {
        // A message quotes at most a line's worth of the value (a 10 MB scalar stays in
        // the file).
        Some(s) if s.chars().count() > 60 => format!(
            "`{}…` ({} characters)",
            s.chars().take(60).collect::<String>(),
            s.chars().count()
        ),
        Some(s) => format!("`{s}`"),
        None => node.kind_name().to_string(),
    }
}

/// Read and check a spec file. On failure, the sources and every problem found.
pub(crate) fn load(path: &Path) -> Result<SpecFile, (SourceMap, Diagnostics)> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_text(path, text),
        Err(e) => {
            let d = Diagnostic::error("spec/unreadable", format!("cannot read {}: {e}", path.display()));
            Err((SourceMap::new(), d.into()))
        }
    }
}

/// [`load`] of the text of the file `path` (input files are read relative to its folder).
pub(crate) fn load_text(path: &Path, text: String) -> Result<SpecFile, (SourceMap, Diagnostics)> {
    let mut sources = SourceMap::new();
    let file = sources.add(path.display().to_string(), text);
    let root = match yaml::parse(&sources.file(file).text, file) {
        Ok(Some(root)) => root,
        Ok(None) => {
            let d = Diagnostic::error("spec/empty", format!("{} is empty", path.display()))
                .with_help("a spec needs at least `template`, `simulation_time`, `step_size` and `outputs`");
            return Err((sources, d.into()));
        }
        Err(d) => return Err((sources, (*d).into())),
    };
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cx = Ctx {
        diags: Diagnostics::new(),
        file: path,
    };
    let parsed = parse(&root, &base_dir, &mut cx);
    let Some((template, spec, trace_type)) = parsed.filter(|_| !cx.diags.has_errors()) else {
        return Err((sources, cx.diags));
    };
    // The engine's rules for the settings, pointed at where the file sets them.
    let mut problems = checks::check_time(&spec);
    problems.extend(checks::check_grid(&spec));
    if !problems.is_empty() {
        let err = SweepError::Settings(problems);
        let diags = locate_in(&root, path, &err);
        return Err((sources, diags));
    }
    Ok(SpecFile {
        template,
        base_dir,
        spec,
        sources,
        root,
        path: path.to_path_buf(),
        trace_type,
    })
}

impl SpecFile {
    /// The engine's error about this spec as diagnostics at the settings it concerns.
    pub(crate) fn locate(&self, err: &SweepError) -> Diagnostics {
        locate_in(&self.root, &self.path, err)
    }
}

/// Diagnostics for `err` at the node of the setting it names (the whole file when it names
/// none the file sets).
fn locate_in(root: &Node, path: &Path, err: &SweepError) -> Diagnostics {
    let file = path.display().to_string();
    let at = |node: &Node, code: &'static str, msg: String, help: Option<String>| {
        let d = Diagnostic::error(code, msg)
            .with_span(node.span)
            .with_path(file.clone());
        match help {
            Some(h) => d.with_help(h),
            None => d,
        }
    };
    let key_node = |map_key: &str, key: &str| -> Option<&Node> {
        root.get(map_key)?
            .as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k)
    };
    let value_node = |map_key: &str, key: &str| -> Option<&Node> {
        root.get(map_key)?
            .as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    };
    let mut diags = Diagnostics::new();
    match err {
        SweepError::Settings(settings) => {
            // The engine's code and message (what Python reports too), at the setting's line.
            for (p, problem) in settings.iter().zip(err.problems()) {
                let node = match &p.setting {
                    Setting::SimulationTime => root.get("simulation_time"),
                    Setting::StepSize => root.get("step_size").or_else(|| root.get("dt")),
                    Setting::SamplingStepSize => root.get("sampling_step_size"),
                    Setting::Cutoff => root.get("cutoff"),
                    Setting::ParamGrid => root.get("param_grid"),
                    Setting::GridKey(k) => value_node("param_grid", k),
                    Setting::Size => root.get("keep_traces"),
                    Setting::Regime(k) => value_node("regime", k),
                    Setting::InitialConditions => root.get("initial_conditions"),
                    Setting::RandomStarts => root.get("random_starts"),
                }
                .unwrap_or(root);
                diags.push(at(node, problem.code, problem.message, problem.help));
            }
        }
        SweepError::UnknownOutput { key, .. } => {
            let node = value_node("outputs", key).unwrap_or(root);
            diags.push(at(node, "spec/unknown-output", err.to_string(), None));
        }
        SweepError::NoOutputs => {
            diags.push(at(
                root.get("outputs").unwrap_or(root),
                "spec/no-outputs",
                err.to_string(),
                None,
            ));
        }
        SweepError::UnknownInput { name, .. } | SweepError::NotAnInput { name, .. } => {
            let node = key_node("inputs", name).unwrap_or(root);
            diags.push(at(node, "spec/bad-input", err.to_string(), None));
        }
        SweepError::ParamMap(pm) => {
            use rustrates::sweep::ParamMapError as E;
            let (key, field) = match pm {
                E::UnknownKey { key, .. } => {
                    let node = key_node("param_grid", key).unwrap_or(root);
                    diags.push(at(
                        node,
                        "spec/param-map",
                        err.to_string(),
                        Some(format!(
                            "add `{key}: {{vars: [op/var], nodes: [node]}}` under `param_map`"
                        )),
                    ));
                    return diags;
                }
                E::UnknownNode { key, .. } | E::EdgeNotFound { key, .. } | E::BlockEntry { key, .. } => {
                    (key, Some("nodes"))
                }
                E::VarNotFound { key, .. }
                | E::PathNotFound { key, .. }
                | E::EdgeVarNotFound { key, .. }
                | E::NotSettable { key, .. }
                | E::NoVars { key } => (key, Some("vars")),
                E::NoTargets { key, what } => (key, Some(*what)),
            };
            let entry = value_node("param_map", key);
            let node = entry
                .and_then(|e| field.and_then(|f| e.get(f).or_else(|| if f == "nodes" { e.get("edges") } else { None })))
                .or(entry)
                .or_else(|| root.get("param_map"))
                .unwrap_or(root);
            diags.push(at(node, "spec/param-map", err.to_string(), None));
        }
        SweepError::Grid(_) => {
            diags.push(at(
                root.get("param_grid").unwrap_or(root),
                "spec/bad-grid",
                err.to_string(),
                None,
            ));
        }
        SweepError::Memory(m) => {
            diags.push(at(root, "spec/too-large", m.to_string(), None));
        }
        SweepError::Refine(r) => {
            use rustrates::sweep::refine::RefineError as E;
            let node = match r {
                E::Levels { .. } => value_node("refine", "levels"),
                E::Tolerance { .. } => value_node("refine", "tolerance"),
                E::MissingSummary { .. } => value_node("refine", "criterion").or_else(|| root.get("summaries")),
                E::Keys { .. } | E::TooFewValues { .. } | E::NotCartesian { .. } | E::ReservedKey => {
                    root.get("param_grid")
                }
                E::PerPointInput { name } => key_node("inputs", name),
                E::Shard => None,
            }
            .or_else(|| root.get("refine"))
            .unwrap_or(root);
            diags.push(at(node, "spec/refine", err.to_string(), None));
        }
        SweepError::RandomStart { name, .. } => {
            let node = root
                .get("random_starts")
                .and_then(|r| r.get("bounds"))
                .and_then(|b| b.as_map())
                .and_then(|b| b.iter().find(|(k, _)| k.as_str() == Some(name)).map(|(k, _)| k))
                .unwrap_or(root);
            for problem in err.problems() {
                diags.push(at(node, problem.code, problem.message, problem.help));
            }
        }
        other => {
            for problem in other.problems() {
                diags.push(at(root, problem.code, problem.message, problem.help));
            }
        }
    }
    diags
}

fn parse(root: &Node, base_dir: &Path, cx: &mut Ctx<'_>) -> Option<(String, SweepSpec, TraceType)> {
    let Some(map) = root.as_map() else {
        cx.err(
            root,
            "spec/not-a-mapping",
            format!("a sweep spec is a mapping of settings, found {}", root.kind_name()),
        );
        return None;
    };
    for (k, _) in map {
        let key = k.as_str().unwrap_or_default();
        if !KEYS.contains(&key) {
            let close = KEYS
                .iter()
                .min_by_key(|c| edit_distance(key, c))
                .copied()
                .unwrap_or_default();
            cx.err_help(
                k,
                "spec/unknown-key",
                format!("unknown setting `{key}`"),
                format!("did you mean `{close}`?"),
            );
        }
    }
    let get = |key: &str| root.get(key);
    let required = |cx: &mut Ctx<'_>, key: &str| {
        let v = get(key);
        if v.is_none() {
            cx.err(root, "spec/missing-key", format!("the spec has no `{key}`"));
        }
        v
    };
    let template = match get("template").or_else(|| get("circuit_template")) {
        Some(n) => cx.string(n, "template"),
        None => {
            cx.err(root, "spec/missing-key", "the spec has no `template`");
            None
        }
    };
    let simulation_time = required(cx, "simulation_time").and_then(|n| cx.number(n, "simulation_time"));
    let dt = match get("step_size").or_else(|| get("dt")) {
        Some(n) => cx.number(n, "step_size"),
        None => {
            cx.err(root, "spec/missing-key", "the spec has no `step_size`");
            None
        }
    };
    let sampling_step = get("sampling_step_size")
        .filter(|n| !n.is_null())
        .and_then(|n| cx.number(n, "sampling_step_size"));
    let cutoff = get("cutoff").and_then(|n| cx.number(n, "cutoff")).unwrap_or(0.0);
    let mut method = Method::Euler;
    if let Some(n) = get("solver") {
        if let Some(name) = cx.string(n, "solver") {
            match Method::parse(&name) {
                Some(m) => method = m,
                None => cx.err_help(
                    n,
                    "spec/unknown-solver",
                    format!("unknown solver `{name}`"),
                    "use euler, heun, rk4 or rk45 (scipy)",
                ),
            }
        }
    }
    if let Method::Rk45 { rtol, atol } = &mut method {
        if let Some(n) = get("rtol") {
            *rtol = cx.number(n, "rtol").unwrap_or(*rtol);
        }
        if let Some(n) = get("atol") {
            *atol = cx.number(n, "atol").unwrap_or(*atol);
        }
    }
    let mut backend = Backend::Auto;
    if let Some(n) = get("backend") {
        if let Some(name) = cx.string(n, "backend") {
            match Backend::parse(&name) {
                Some(b) => backend = b,
                None => cx.err_help(
                    n,
                    "spec/unknown-backend",
                    format!("unknown backend `{name}`"),
                    "use auto, jit, c or reference",
                ),
            }
        }
    }
    let mut precision = Precision::F64;
    if let Some(n) = get("float_precision") {
        match cx.string(n, "float_precision").as_deref() {
            Some("float64" | "double" | "f64") => {}
            Some("float32" | "single" | "f32") => precision = Precision::F32,
            Some(other) => cx.err_help(
                n,
                "spec/unknown-precision",
                format!("unknown float_precision `{other}`"),
                "use float64 or float32",
            ),
            None => {}
        }
    }
    let mut trace_type = TraceType::Float64;
    if let Some(n) = get("trace_precision") {
        if let Some(name) = cx.string(n, "trace_precision") {
            match TraceType::parse(&name) {
                Some(t) => trace_type = t,
                None => cx.err_help(
                    n,
                    "spec/unknown-precision",
                    format!("unknown trace_precision `{name}`"),
                    "use float64 or float32",
                ),
            }
        }
    }
    let permute = get("permute_grid")
        .and_then(|n| cx.bool(n, "permute_grid"))
        .unwrap_or(false);
    let grid = parse_grid(get("param_grid"), permute, cx);
    let param_map = get("param_map").map(|n| parse_param_map(n, cx)).unwrap_or_default();
    let inputs = get("inputs").map(|n| parse_inputs(n, base_dir, cx)).unwrap_or_default();
    let outputs = match required(cx, "outputs") {
        Some(n) => parse_outputs(n, cx),
        None => Vec::new(),
    };
    let summaries = match get("summaries") {
        Some(n) => {
            let mut out = Vec::new();
            for name_node in n.as_seq().unwrap_or(std::slice::from_ref(n)) {
                if let Some(name) = cx.string(name_node, "summaries") {
                    match Statistic::parse(&name) {
                        Some(s) => out.push(s),
                        None => cx.err_help(
                            name_node,
                            "spec/unknown-statistic",
                            format!("unknown summary `{name}`"),
                            "use mean, std, min, max, last, ptp, dominant_frequency, dominant_power, regime (brings period, amplitude, eig_re, eig_im)",
                        ),
                    }
                }
            }
            Statistic::expand(&out)
        }
        None => Vec::new(),
    };
    let regime = get("regime").map(|n| parse_regime(n, cx)).unwrap_or_default();
    let initial_conditions = get("initial_conditions")
        .map(|n| parse_initial_conditions(n, cx))
        .unwrap_or_default();
    let refine = get("refine").and_then(|n| parse_refine(n, cx));
    let random_starts = get("random_starts").and_then(|n| parse_random_starts(n, cx));
    let keep_traces = get("keep_traces")
        .and_then(|n| cx.bool(n, "keep_traces"))
        .unwrap_or(summaries.is_empty());
    let count = |cx: &mut Ctx<'_>, key: &str| {
        get(key).and_then(|n| {
            let v = cx.number(n, key)?;
            if v < 0.0 || v.fract() != 0.0 {
                cx.err(n, "spec/not-a-count", format!("`{key}` must be a whole number ≥ 0"));
                return None;
            }
            Some(v as usize)
        })
    };
    let chunk_size = count(cx, "chunk_size");
    let block_size = count(cx, "block_size");

    let (template, simulation_time, dt, grid) = (template?, simulation_time?, dt?, grid?);
    let sim = SimConfig {
        simulation_time,
        dt,
        sampling_step,
        method,
        cutoff,
    };
    let mut spec = SweepSpec::new(grid, param_map, sim);
    spec.inputs = inputs;
    spec.outputs = outputs;
    spec.backend = backend;
    spec.precision = precision;
    spec.keep_traces = keep_traces;
    spec.summaries = summaries;
    spec.regime = regime;
    spec.initial_conditions = initial_conditions;
    spec.refine = refine;
    if let Some(c) = chunk_size {
        spec.chunk_size = c;
    }
    spec.random_starts = random_starts;
    if let Some(b) = block_size.filter(|&b| b > 0) {
        spec.block_size = b;
    }
    Some((template, spec, trace_type))
}

/// `{key: [values] | {linspace: [a, b, n]} | {arange: [a, b, step]} | number}`; absent = one
/// point with the template's own values.
fn parse_grid(node: Option<&Node>, permute: bool, cx: &mut Ctx<'_>) -> Option<Grid> {
    let Some(node) = node else {
        return Grid::from_rows(Vec::new(), &[Vec::new()]).ok();
    };
    let Some(map) = node.as_map() else {
        cx.err(
            node,
            "spec/not-a-mapping",
            format!("`param_grid` maps keys to value lists, found {}", node.kind_name()),
        );
        return None;
    };
    let mut values: IndexMap<String, Vec<f64>> = IndexMap::new();
    for (k, v) in map {
        let key = cx.string(k, "param_grid key")?;
        let vals = grid_values(v, &key, cx)?;
        if vals.is_empty() {
            cx.err(v, "spec/empty-values", format!("`param_grid.{key}` has no values"));
            return None;
        }
        values.insert(key, vals);
    }
    match Grid::from_values(&values, permute) {
        Ok(g) => Some(g),
        Err(e @ rustrates::sweep::GridError::Memory(_)) => {
            cx.err(node, "spec/too-large", e.to_string());
            None
        }
        Err(e) => {
            cx.err_help(
                node,
                "spec/bad-grid",
                e.to_string(),
                "give every key the same number of values, or set `permute_grid: true`",
            );
            None
        }
    }
}

fn grid_values(v: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Vec<f64>> {
    if let Some(x) = v.as_f64() {
        return Some(vec![x]);
    }
    if let Some(items) = v.as_seq() {
        return items
            .iter()
            .map(|n| cx.number(n, &format!("param_grid.{key}")))
            .collect();
    }
    let range = |cx: &mut Ctx<'_>, n: &Node, name: &str| -> Option<[f64; 3]> {
        let items = n.as_seq().filter(|s| s.len() == 3);
        let Some(items) = items else {
            cx.err(
                n,
                "spec/bad-range",
                format!("`{name}` takes three numbers: [start, stop, count_or_step]"),
            );
            return None;
        };
        Some([
            cx.number(&items[0], name)?,
            cx.number(&items[1], name)?,
            cx.number(&items[2], name)?,
        ])
    };
    if let Some(n) = v.get("linspace") {
        let [a, b, count] = range(cx, n, "linspace")?;
        if count < 1.0 || count.fract() != 0.0 {
            cx.err(
                n,
                "spec/bad-range",
                "the count of `linspace` must be a whole number ≥ 1",
            );
            return None;
        }
        if let Err(e) = checks::check_alloc(
            format!("`linspace` of {count:.4e} values"),
            count * 8.0,
            "sweep fewer values, or split the sweep into several",
        ) {
            cx.err(n, "spec/too-large", e.to_string());
            return None;
        }
        let count = count as usize;
        // numpy's linspace: start + i·step, with the last value exactly `stop`.
        let step = if count > 1 { (b - a) / (count - 1) as f64 } else { 0.0 };
        return Some(
            (0..count)
                .map(|i| {
                    if i + 1 == count && count > 1 {
                        b
                    } else {
                        a + i as f64 * step
                    }
                })
                .collect(),
        );
    }
    if let Some(n) = v.get("arange") {
        let [a, b, step] = range(cx, n, "arange")?;
        if step == 0.0 || !step.is_finite() || (b - a) / step > 1e8 {
            cx.err(
                n,
                "spec/bad-range",
                "the step of `arange` must be non-zero and give at most 1e8 values",
            );
            return None;
        }
        let count = ((b - a) / step).ceil().max(0.0) as usize;
        return Some((0..count).map(|i| a + i as f64 * step).collect());
    }
    cx.err_help(
        v,
        "spec/bad-values",
        format!("`param_grid.{key}` must be a number, a list of numbers, or a range"),
        "write e.g. `[1, 2, 3]` or `{linspace: [-5, 5, 11]}`",
    );
    None
}

fn parse_param_map(node: &Node, cx: &mut Ctx<'_>) -> ParamMap {
    let mut map = ParamMap::new();
    let Some(entries) = node.as_map() else {
        cx.err(
            node,
            "spec/not-a-mapping",
            "`param_map` maps grid keys to {vars, nodes} or {vars, edges}",
        );
        return map;
    };
    for (k, v) in entries {
        let Some(key) = cx.string(k, "param_map key") else {
            continue;
        };
        let vars = match v.get("vars") {
            Some(n) => cx.strings(n, "vars"),
            None => {
                cx.err(v, "spec/missing-key", format!("`param_map.{key}` has no `vars`"));
                continue;
            }
        };
        let targets = if let Some(n) = v.get("nodes") {
            MapTargets::Nodes(cx.strings(n, "nodes"))
        } else if let Some(n) = v.get("edges") {
            let mut edges = Vec::new();
            for e in n.as_seq().unwrap_or_default() {
                let parts = e.as_seq().unwrap_or_default();
                if !(2..=3).contains(&parts.len()) {
                    cx.err(
                        e,
                        "spec/bad-edge",
                        "an edge is [source, target] or [source, target, index]",
                    );
                    continue;
                }
                let (Some(source), Some(target)) =
                    (cx.string(&parts[0], "edge source"), cx.string(&parts[1], "edge target"))
                else {
                    continue;
                };
                let idx = parts
                    .get(2)
                    .and_then(|n| cx.number(n, "edge index"))
                    .map(|x| x as usize);
                edges.push(EdgeRef { source, target, idx });
            }
            MapTargets::Edges(edges)
        } else {
            MapTargets::Paths
        };
        map.entries.insert(key, MapEntry { vars, targets });
    }
    map
}

fn parse_inputs(node: &Node, base_dir: &Path, cx: &mut Ctx<'_>) -> Vec<(String, Signal)> {
    let mut out = Vec::new();
    let Some(entries) = node.as_map() else {
        cx.err(
            node,
            "spec/not-a-mapping",
            "`inputs` maps node/op/var to a constant or {file: PATH}",
        );
        return out;
    };
    for (k, v) in entries {
        let Some(var) = cx.string(k, "input variable") else {
            continue;
        };
        if let Some(x) = v.as_f64() {
            out.push((var, Signal::Constant(x)));
        } else if let Some(f) = v.get("file") {
            let Some(name) = cx.string(f, "file") else { continue };
            match signal::read_signal_file(&base_dir.join(&name)) {
                Ok(s) => out.push((var, s)),
                Err(e) => cx.err(f, "spec/bad-input-file", format!("{name}: {e}")),
            }
        } else {
            cx.err_help(
                v,
                "spec/bad-input",
                format!("input `{var}` must be a number or {{file: PATH}}"),
                "CSV/text (one row per step, one column per grid point) or .npy",
            );
        }
    }
    out
}

/// `regime: {stationary_tol: 1e-6, period_rtol: 0.01, min_cycles: 3, flat_tol: 1e-9}`; the
/// engine checks the values (`sweep::checks::check_regime`).
fn parse_regime(node: &Node, cx: &mut Ctx<'_>) -> RegimeSettings {
    let mut out = RegimeSettings::default();
    let Some(entries) = node.as_map() else {
        cx.err(
            node,
            "spec/not-a-mapping",
            "`regime` maps thresholds to numbers, e.g. `regime: {stationary_tol: 1.0e-6}`",
        );
        return out;
    };
    for (k, v) in entries {
        let Some(key) = cx.string(k, "regime threshold") else {
            continue;
        };
        let Some(x) = cx.number(v, &format!("regime.{key}")) else {
            continue;
        };
        match key.as_str() {
            "stationary_tol" => out.stationary_tol = x,
            "period_rtol" => out.period_rtol = x,
            "flat_tol" => out.flat_tol = x,
            "attractor_rtol" => out.attractor_rtol = x,
            "min_cycles" if x >= 0.0 && x.fract() == 0.0 => out.min_cycles = x as usize,
            "min_cycles" => cx.err(v, "spec/not-a-count", "`regime.min_cycles` must be a whole number"),
            _ => cx.err(
                k,
                "spec/unknown-key",
                format!("unknown regime threshold `{key}`: use stationary_tol, period_rtol, min_cycles, flat_tol, attractor_rtol"),
            ),
        }
    }
    out
}

/// `refine: {levels: 5, criterion: regime | <summary>, tolerance: 0.1}` (criterion default
/// `regime`, tolerance 0); the engine checks the values (`sweep::refine::check`).
fn parse_refine(node: &Node, cx: &mut Ctx<'_>) -> Option<Refine> {
    let Some(entries) = node.as_map() else {
        cx.err(
            node,
            "spec/not-a-mapping",
            "`refine` is a mapping, e.g. `refine: {levels: 5, criterion: regime}`",
        );
        return None;
    };
    let (mut levels, mut criterion, mut tolerance) = (None, Some(Criterion::Regime), 0.0);
    for (k, v) in entries {
        let Some(key) = cx.string(k, "refine setting") else {
            continue;
        };
        match key.as_str() {
            "levels" => {
                let Some(x) = cx.number(v, "refine.levels") else {
                    levels = Some(None);
                    continue;
                };
                if x < 0.0 || x.fract() != 0.0 || x > f64::from(u32::MAX) {
                    cx.err(v, "spec/not-a-count", "`refine.levels` must be a whole number, e.g. 5");
                    levels = Some(None);
                } else {
                    levels = Some(Some(x as u32));
                }
            }
            "criterion" => {
                criterion = cx.string(v, "refine.criterion").and_then(|name| {
                    let stat = Criterion::parse(&name);
                    if stat.is_none() {
                        cx.err_help(
                            v,
                            "spec/unknown-statistic",
                            format!("unknown refine criterion `{name}`"),
                            "use regime, or the name of a summary the sweep computes (mean, max, period, …)",
                        );
                    }
                    stat
                });
            }
            "tolerance" => tolerance = cx.number(v, "refine.tolerance").unwrap_or(f64::NAN),
            _ => cx.err(
                k,
                "spec/unknown-key",
                format!("unknown refine setting `{key}`: use levels, criterion, tolerance"),
            ),
        }
    }
    let Some(levels) = levels else {
        cx.err(
            node,
            "spec/missing-key",
            "`refine` needs `levels`, e.g. `refine: {levels: 5}`",
        );
        return None;
    };
    Some(Refine {
        levels: levels?,
        criterion: criterion?,
        tolerance,
    })
}

/// `initial_conditions: [{PC/Op_e/r: 0.01}, {PC/Op_e/r: 2.0, PC/Op_e/v: -1}]`; the engine
/// checks that the names are states.
fn parse_initial_conditions(node: &Node, cx: &mut Ctx<'_>) -> Vec<Vec<(String, f64)>> {
    let Some(starts) = node.as_seq() else {
        cx.err(
            node,
            "spec/not-a-list",
            "`initial_conditions` is a list of starts, e.g. `[{PC/Op_e/r: 0.01}, {PC/Op_e/r: 2.0}]`",
        );
        return Vec::new();
    };
    let mut out = Vec::with_capacity(starts.len());
    for start in starts {
        let Some(entries) = start.as_map() else {
            cx.err(
                start,
                "spec/not-a-mapping",
                "each start maps state variables to initial values, e.g. `{PC/Op_e/r: 0.01}`",
            );
            continue;
        };
        let mut values = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            if let (Some(name), Some(x)) = (cx.string(k, "state variable"), cx.number(v, "initial value")) {
                values.push((name, x));
            }
        }
        out.push(values);
    }
    out
}

/// `random_starts: {n: 8, seed: 0, bounds: {PC/Op_e/r: [0, 3], PC/Op_e/v: [-3, 0]}}` (seed
/// defaults to 0); the engine checks the values and the names.
fn parse_random_starts(node: &Node, cx: &mut Ctx<'_>) -> Option<RandomStarts> {
    const HELP: &str = "`random_starts` is {n: starts per point, seed: integer, bounds: {state: [low, high]}}";
    let Some(entries) = node.as_map() else {
        cx.err(node, "spec/not-a-mapping", HELP);
        return None;
    };
    let mut out = RandomStarts {
        n: 0,
        seed: 0,
        bounds: Vec::new(),
    };
    let mut ok = true;
    let count = |cx: &mut Ctx<'_>, v: &Node, what: &str| -> Option<u64> {
        let x = cx.number(v, what)?;
        if x < 0.0 || x.fract() != 0.0 || x > 2f64.powi(53) {
            cx.err(v, "spec/not-a-count", format!("`{what}` must be a whole number ≥ 0"));
            return None;
        }
        Some(x as u64)
    };
    let mut has_n = false;
    for (k, v) in entries {
        let Some(key) = cx.string(k, "random_starts key") else {
            ok = false;
            continue;
        };
        match key.as_str() {
            "n" => {
                has_n = true;
                match count(cx, v, "random_starts.n") {
                    Some(n) => out.n = n as usize,
                    None => ok = false,
                }
            }
            "seed" => match count(cx, v, "random_starts.seed") {
                Some(seed) => out.seed = seed,
                None => ok = false,
            },
            "bounds" => {
                let Some(bounds) = v.as_map() else {
                    cx.err(
                        v,
                        "spec/not-a-mapping",
                        "`random_starts.bounds` maps states to [low, high], e.g. {PC/Op_e/r: [0, 3]}",
                    );
                    ok = false;
                    continue;
                };
                for (name, range) in bounds {
                    let pair = range.as_seq().filter(|s| s.len() == 2);
                    let Some(pair) = pair else {
                        cx.err(
                            range,
                            "spec/bad-bounds",
                            "each bound is a list [low, high], e.g. [0, 3]",
                        );
                        ok = false;
                        continue;
                    };
                    match (
                        cx.string(name, "state variable"),
                        cx.number(&pair[0], "low bound"),
                        cx.number(&pair[1], "high bound"),
                    ) {
                        (Some(name), Some(low), Some(high)) => out.bounds.push((name, low, high)),
                        _ => ok = false,
                    }
                }
            }
            _ => {
                cx.err(
                    k,
                    "spec/unknown-key",
                    format!("unknown random_starts key `{key}`: use n, seed, bounds"),
                );
                ok = false;
            }
        }
    }
    if !has_n {
        cx.err(node, "spec/missing-key", format!("`random_starts` needs `n`; {HELP}"));
        ok = false;
    }
    ok.then_some(out)
}

fn parse_outputs(node: &Node, cx: &mut Ctx<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(entries) = node.as_map() else {
        cx.err(
            node,
            "spec/not-a-mapping",
            "`outputs` maps keys to node/op/var, e.g. `r: PC/Op_e/r`",
        );
        return out;
    };
    for (k, v) in entries {
        if let (Some(key), Some(path)) = (cx.string(k, "output key"), cx.string(v, "output variable")) {
            out.push((key, path));
        }
    }
    out
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
