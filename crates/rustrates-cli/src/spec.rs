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

use rustrates::io::h5::TraceType;
use rustrates::kernel::{Backend, Precision};
use rustrates::solve::{Method, SimConfig};
use rustrates::sweep::checks;
use rustrates::sweep::{Statistic, SweepError, SweepSpec};
use rustrates::syntax::{Diagnostic, Diagnostics, SourceMap};
use rustrates::template::yaml::{self, Node};

use locate::locate_in;
use sections::{
    parse_grid, parse_initial_conditions, parse_inputs, parse_outputs, parse_param_map, parse_random_starts,
    parse_refine, parse_regime,
};

mod locate;
mod sections;

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
    /// `node`'s entries, or `spec/not-a-mapping` with `msg` when it is not a mapping.
    fn mapping<'n>(&mut self, node: &'n Node, msg: impl Into<String>) -> Option<&'n [(Node, Node)]> {
        let entries = node.as_map();
        if entries.is_none() {
            self.err(node, "spec/not-a-mapping", msg);
        }
        entries
    }
    /// Calls `visit(cx, key, key_node, value)` for each entry of the mapping at `node` in order;
    /// `spec/not-a-mapping` with `msg` when it is not a mapping, `spec/not-a-string` (naming
    /// `key_what`) for a key that is not a string, whose entry is skipped.
    fn each_entry(
        &mut self,
        node: &Node,
        msg: &str,
        key_what: &str,
        mut visit: impl FnMut(&mut Self, String, &Node, &Node),
    ) {
        for (k, v) in self.mapping(node, msg).unwrap_or_default() {
            if let Some(key) = self.string(k, key_what) {
                visit(self, key, k, v);
            }
        }
    }
    /// The value named by the string at `node` (setting `what`), or `code` with `help` when
    /// `parse` does not know the name.
    fn named<T>(
        &mut self,
        node: &Node,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
        code: &'static str,
        help: &str,
    ) -> Option<T> {
        let name = self.string(node, what)?;
        let value = parse(&name);
        if value.is_none() {
            self.err_help(node, code, format!("unknown {what} `{name}`"), help);
        }
        value
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

fn parse(root: &Node, base_dir: &Path, cx: &mut Ctx<'_>) -> Option<(String, SweepSpec, TraceType)> {
    let map = cx.mapping(
        root,
        format!("a sweep spec is a mapping of settings, found {}", root.kind_name()),
    )?;
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
    let mut method = get("solver")
        .and_then(|n| {
            cx.named(
                n,
                "solver",
                Method::parse,
                "spec/unknown-solver",
                "use euler, heun, rk4 or rk45 (scipy)",
            )
        })
        .unwrap_or(Method::Euler);
    if let Method::Rk45 { rtol, atol } = &mut method {
        if let Some(n) = get("rtol") {
            *rtol = cx.number(n, "rtol").unwrap_or(*rtol);
        }
        if let Some(n) = get("atol") {
            *atol = cx.number(n, "atol").unwrap_or(*atol);
        }
    }
    let backend = get("backend")
        .and_then(|n| {
            cx.named(
                n,
                "backend",
                Backend::parse,
                "spec/unknown-backend",
                "use auto, jit, c or reference",
            )
        })
        .unwrap_or(Backend::Auto);
    let float_precision = |name: &str| match name {
        "float64" | "double" | "f64" => Some(Precision::F64),
        "float32" | "single" | "f32" => Some(Precision::F32),
        _ => None,
    };
    let precision = get("float_precision")
        .and_then(|n| {
            cx.named(
                n,
                "float_precision",
                float_precision,
                "spec/unknown-precision",
                "use float64 or float32",
            )
        })
        .unwrap_or(Precision::F64);
    let trace_type = get("trace_precision")
        .and_then(|n| {
            cx.named(
                n,
                "trace_precision",
                TraceType::parse,
                "spec/unknown-precision",
                "use float64 or float32",
            )
        })
        .unwrap_or(TraceType::Float64);
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
