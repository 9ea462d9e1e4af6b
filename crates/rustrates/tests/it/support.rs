//! What the integration tests share: loading a template from text, the back ends to compare,
//! one sweep in memory, and reading its traces.

use std::path::Path;

use rustrates::kernel::Backend;
use rustrates::model::{self, Circuit};
use rustrates::solve::{Method, SimConfig};
use rustrates::sweep::{Grid, MemorySink, ParamMap, SweepResult, SweepSpec};
use rustrates::template::LoadOptions;

/// Reference, JIT and C. Without a C compiler C is left out with a note on stderr, and that
/// is a failure under CI (which installs gcc), so no run skips it silently.
pub fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Reference, Backend::Jit];
    if c_available() {
        b.push(Backend::C);
    }
    b
}

/// Whether the C back end can run here; when it cannot, says so on stderr and fails under CI
/// (which installs gcc), so a C-only check is never skipped silently.
pub fn c_available() -> bool {
    if rustrates::kernel::c::compiler_available() {
        return true;
    }
    let msg = "no C compiler runs (`$CC`, else `cc`): the C back end is SKIPPED in this test";
    assert!(std::env::var_os("CI").is_none(), "{msg}; CI installs gcc");
    eprintln!("{msg}");
    false
}

/// Template `name` of the YAML `text`, written as `c.yaml` in a folder of its own and loaded
/// by its dotted path; the errors as concise `file:line:col: code: message` lines.
pub fn load_text(text: &str, name: &str) -> Result<Circuit, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("c.yaml"), text).expect("write template");
    let opts = LoadOptions {
        search_path: Vec::new(),
        cwd: Some(dir.path().to_path_buf()),
    };
    match model::load_circuit(&format!("c.{name}"), &opts) {
        Ok(l) => Ok(l.circuit),
        Err(e) => Err(e
            .diagnostics
            .iter()
            .map(|d| model::load::concise(&e.sources, d))
            .collect::<Vec<_>>()
            .join("\n")),
    }
}

/// Template `name` of the YAML `text` fails to load with `code` at `line:col` of `c.yaml`.
pub fn assert_load_error(text: &str, name: &str, code: &str, line_col: &str) {
    let err = load_text(text, name).expect_err(code);
    assert!(
        err.contains(code) && err.contains(&format!("c.yaml:{line_col}:")),
        "{err}"
    );
}

/// Operator `op` of the YAML `text` fails to load with `code` and `message` at line 5 (where
/// the tests write the line under test), column `8 +` the byte offset of the last `at` in
/// `line_text` (the line's text after its 8-byte prefix: `    - "` or `    x: `).
pub fn assert_op_error_on_line_5(text: &str, line_text: &str, at: &str, code: &str, message: &str) {
    let err = load_text(text, "op").expect_err(line_text);
    assert!(err.contains(code) && err.contains(message), "{line_text}: {err}");
    let col = 8 + line_text.rfind(at).expect("`at` is part of the line");
    assert!(
        err.contains(&format!("c.yaml:5:{col}:")),
        "{line_text}: expected column {col}: {err}"
    );
}

/// Circuit `Net` of the YAML `yaml`, written to `dir/file` and loaded by its path.
pub fn load_net(dir: &Path, file: &str, yaml: &str) -> Circuit {
    let path = dir.join(file);
    std::fs::write(&path, yaml).expect("write yaml");
    model::load_circuit(&format!("{}/Net", path.display()), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .circuit
}

/// A sweep on one thread: the grid's keys zipped, `timing` = (simulation time, step, sampling
/// step), `outputs` as (key, path).
pub fn sweep_spec(
    grid: &[(&str, Vec<f64>)],
    map: ParamMap,
    method: Method,
    (simulation_time, dt, sampling_step): (f64, f64, f64),
    outputs: &[(&str, &str)],
    backend: Backend,
) -> SweepSpec {
    let values = grid.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let sim = SimConfig::new(method, simulation_time, dt, Some(sampling_step));
    let mut spec = SweepSpec::new(Grid::from_values(&values, false).expect("zipped keys"), map, sim);
    spec.outputs = outputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    spec.backend = backend;
    spec.threads = Some(1);
    spec
}

/// The sweep run in memory; a failure panics naming the back end.
pub fn run(spec: &SweepSpec, c: &Circuit) -> SweepResult {
    try_run(spec, c).unwrap_or_else(|e| panic!("{:?}: {e}", spec.backend))
}

/// The sweep run in memory, or its error as text.
pub fn try_run(spec: &SweepSpec, c: &Circuit) -> Result<SweepResult, String> {
    let mut sink = MemorySink::new();
    rustrates::sweep::run(spec, c, &mut sink).map_err(|e| e.to_string())?;
    Ok(sink.into_result().expect("a finished sweep has a result"))
}

/// The trace of output `key` at grid point `point` (the first column of that key).
pub fn column(res: &SweepResult, point: usize, key: &str) -> Vec<f64> {
    let c = res
        .columns
        .iter()
        .position(|(_, k)| k == key)
        .unwrap_or_else(|| panic!("no column {key} in {:?}", res.columns));
    res.trace(point, c).expect("traces are kept")
}

/// The largest absolute difference of `a` and `b`, element by element.
pub fn max_abs_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Every run (one per back end) equals the first within `tol` (absolute), value by value.
pub fn assert_runs_agree(runs: &[Vec<f64>], tol: f64) {
    for r in &runs[1..] {
        let d = max_abs_difference(r, &runs[0]);
        assert!(d <= tol, "back ends differ by {d}");
    }
}

/// Every trace value's bits, for comparisons that must hold bit for bit.
pub fn bits(r: &SweepResult) -> Vec<u64> {
    r.traces.as_ref().expect("traces").iter().map(|x| x.to_bits()).collect()
}
