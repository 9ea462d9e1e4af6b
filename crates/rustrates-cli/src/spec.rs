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
//! summaries: [mean, std, dominant_frequency]
//! keep_traces: true
//! trace_precision: float64  # float32 stores traces in half the bytes (rounded to single)
//! chunk_size: 4096         # points per part file; default 4096, 65536 for summaries only
//! ```
//!
//! Every problem is reported with the file, line and column of the offending value.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use rustrates::io::h5::TraceType;
use rustrates::kernel::{Backend, Precision};
use rustrates::solve::{Method, Signal, SimConfig};
use rustrates::sweep::{EdgeRef, Grid, MapEntry, MapTargets, ParamMap, Statistic, SweepSpec};
use rustrates::syntax::{Diagnostic, Diagnostics, SourceMap};
use rustrates::template::yaml::{self, Node};

use crate::signal;

/// A parsed spec file: the sweep plus what the CLI needs to load the template.
pub(crate) struct SpecFile {
    pub template: String,
    /// The spec file's directory: relative template and input paths resolve against it.
    pub base_dir: PathBuf,
    pub spec: SweepSpec,
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
        Some(s) => format!("`{s}`"),
        None => node.kind_name().to_string(),
    }
}

/// Read and check a spec file. On failure, the sources and every problem found.
pub(crate) fn load(path: &Path) -> Result<SpecFile, (SourceMap, Diagnostics)> {
    let mut sources = SourceMap::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let d = Diagnostic::error("spec/unreadable", format!("cannot read {}: {e}", path.display()));
            return Err((sources, d.into()));
        }
    };
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
    match parsed {
        Some(spec) if !cx.diags.has_errors() => Ok(spec),
        _ => Err((sources, cx.diags)),
    }
}

fn parse(root: &Node, base_dir: &Path, cx: &mut Ctx<'_>) -> Option<SpecFile> {
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
                            "use mean, std, min, max, last, ptp, dominant_frequency, dominant_power",
                        ),
                    }
                }
            }
            out
        }
        None => Vec::new(),
    };
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
    spec.chunk_size = chunk_size.unwrap_or(SweepSpec::default_chunk_size(keep_traces));
    if let Some(b) = block_size.filter(|&b| b > 0) {
        spec.block_size = b;
    }
    Some(SpecFile {
        template,
        base_dir: base_dir.to_path_buf(),
        spec,
        trace_type,
    })
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
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<SpecFile, (SourceMap, Diagnostics)> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("spec.yaml");
        std::fs::write(&path, text).expect("write spec");
        load(&path)
    }

    #[test]
    fn spec_seed_example_gives_25_points_in_pyrates_order() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/montbrio/sweep.yaml");
        let f = load(&path)
            .map_err(|(_, d)| format!("{d:?}"))
            .expect("the example spec is valid");
        assert_eq!(f.spec.param_grid.len(), 25);
        // numpy: np.stack(np.meshgrid(a, b), -1).reshape(-1, 2) varies the first key fastest.
        assert_eq!(&f.spec.param_grid.column(0)[..6], &[-5.0, -2.5, 0.0, 2.5, 5.0, -5.0]);
        assert_eq!(&f.spec.param_grid.column(1)[..6], &[-5.0, -5.0, -5.0, -5.0, -5.0, -2.5]);
        assert_eq!(f.spec.sim.dt, 1e-4);
        assert_eq!(f.spec.outputs, vec![("r".to_string(), "PC/Op_e/r".to_string())]);
    }

    #[test]
    fn spec_linspace_matches_numpy_values() {
        // np.linspace(0, 1, 4) = [0, 1/3, 2/3, 1]
        let f = load_text("template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\nparam_grid: {k: {linspace: [0, 1, 4]}}\n")
            .map_err(|(_, d)| format!("{d:?}"))
            .expect("valid");
        assert_eq!(f.spec.param_grid.column(0), &[0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
    }

    #[test]
    fn spec_problems_are_all_reported_with_positions() {
        let text = "template: x.y\nsimulation_tim: 1\nstep_size: fast\noutputs: {r: a/b/c}\nsolver: leapfrog\n";
        let Err((sources, diags)) = load_text(text) else {
            panic!("the spec is invalid")
        };
        let found: Vec<(&str, (usize, usize))> = diags
            .iter()
            .map(|d| (d.code, sources.line_col(d.span.expect("every problem has a position"))))
            .collect();
        assert!(found.contains(&("spec/unknown-key", (2, 1))), "{found:?}");
        assert!(found.contains(&("spec/not-a-number", (3, 12))), "{found:?}");
        assert!(found.contains(&("spec/unknown-solver", (5, 9))), "{found:?}");
        assert!(found.iter().any(|(c, _)| *c == "spec/missing-key"), "{found:?}");
    }

    #[test]
    fn spec_trace_precision_float32_or_an_error_at_its_value() {
        let base = "template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\n";
        let f = load_text(base).map_err(|(_, d)| format!("{d:?}")).expect("valid");
        assert_eq!(f.trace_type, TraceType::Float64, "the values as computed by default");
        let f = load_text(&format!("{base}trace_precision: float32\n"))
            .map_err(|(_, d)| format!("{d:?}"))
            .expect("valid");
        assert_eq!(f.trace_type, TraceType::Float32);
        let Err((sources, diags)) = load_text(&format!("{base}trace_precision: half\n")) else {
            panic!("`half` is not a trace precision")
        };
        let d = diags.iter().next().expect("one problem");
        assert_eq!(d.code, "spec/unknown-precision");
        assert_eq!(sources.line_col(d.span.expect("positioned")), (5, 18));
    }

    #[test]
    fn spec_default_chunk_size_follows_what_is_kept() {
        // Traces kept: 4096-point part files; summaries only: 65,536 points per chunk, so a
        // 100 × 100 summaries-only sweep is one chunk, written without part files; a chunk_size
        // in the file wins either way.
        let base = "template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\nsummaries: [mean]\n";
        let chunk = |extra: &str| {
            let f = load_text(&format!("{base}{extra}"))
                .map_err(|(_, d)| format!("{d:?}"))
                .expect("valid");
            (f.spec.keep_traces, f.spec.chunk_size)
        };
        assert_eq!(chunk("keep_traces: true\n"), (true, 4096));
        assert_eq!(
            chunk(""),
            (false, 65_536),
            "summaries without keep_traces keep no traces"
        );
        assert_eq!(chunk("keep_traces: false\nchunk_size: 100\n"), (false, 100));
        assert_eq!(chunk("keep_traces: true\nchunk_size: 0\n"), (true, 0));
    }

    #[test]
    fn spec_zip_of_unequal_lengths_is_an_error() {
        let text = "template: x.y\nsimulation_time: 1\nstep_size: 0.1\noutputs: {r: a/b/c}\nparam_grid: {a: [1, 2], b: [1, 2, 3]}\n";
        let Err((_, diags)) = load_text(text) else {
            panic!("unequal lengths without permute must fail")
        };
        assert!(diags.iter().any(|d| d.code == "spec/bad-grid"));
    }
}
