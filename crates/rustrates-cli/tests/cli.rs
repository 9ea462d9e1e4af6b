//! The `rustrates` binary end to end: the README's example, simulate vs sweep, shards + merge,
//! and diagnostics with positions.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rustrates"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("the binary runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn read_csv(text: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut lines = text.lines();
    let header = lines.next().expect("a header").split(',').map(str::to_string).collect();
    let rows = lines
        .map(|l| l.split(',').map(|x| x.parse().expect("a number")).collect())
        .collect();
    (header, rows)
}

/// `text` written as `name` in `dir`: its path.
fn written(dir: &Path, name: impl AsRef<Path>, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// A new temporary directory holding `text` as the file `name`: the directory (removed when
/// dropped, so the caller keeps it) and the file's path.
fn temp_dir_with(name: &str, text: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = written(dir.path(), name, text);
    (dir, path)
}

/// The traces of a result as bit patterns, for comparisons bit for bit.
fn trace_bits(r: &rustrates::sweep::SweepResult) -> Vec<u64> {
    r.traces.as_ref().expect("traces").iter().map(|x| x.to_bits()).collect()
}

/// `rustrates plot results [flags] --out png` writes a PNG image.
fn assert_plots_png(results: &Path, flags: &[&str], png: &Path) {
    run_ok(bin().arg("plot").arg(results).args(flags).arg("--out").arg(png));
    let bytes = std::fs::read(png).expect("the plot exists");
    assert_eq!(&bytes[1..4], b"PNG", "{}", png.display());
}

/// `rustrates sweep spec --out out -q`, which must succeed.
fn sweep_quietly(spec: &Path, out: &Path) -> std::process::Output {
    run_ok(bin().arg("sweep").arg(spec).arg("--out").arg(out).arg("-q"))
}

/// The spec `spec` swept quietly into `out`, read back.
fn sweep_read(spec: &Path, out: &Path) -> rustrates::sweep::SweepResult {
    sweep_quietly(spec, out);
    rustrates::io::h5::read_results(out).expect("a complete results file")
}

/// The example spec `example` (a path in the repository) swept quietly into `out`, read back.
fn sweep_example(example: &str, out: &Path) -> rustrates::sweep::SweepResult {
    sweep_read(&repo().join(example), out)
}

#[test]
fn readme_example_sweep_matches_single_simulations_bit_for_bit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("results.h5");
    let r = sweep_example("examples/montbrio/sweep.yaml", &out);
    assert_eq!(r.labels.len(), 25);
    assert_eq!(r.labels[24], "Net3_24");
    assert_eq!(r.time.len(), 5000, "T = 5 sampled every 1e-3");
    let traces = r.traces.as_ref().expect("the example keeps traces");
    // Point 7 of the permuted grid: eta_op = linspace(-5,5,5)[2] = 0, eta_iin = [1] = -2.5.
    let point = 7;
    assert_eq!((r.grid_values[0][point], r.grid_values[1][point]), (0.0, -2.5));
    let sim = run_ok(bin().args([
        "simulate",
        "model_templates.montbrio.simple_montbrio.Net3",
        "--T",
        "5",
        "--dt",
        "1e-4",
        "--dts",
        "1e-3",
        "--set",
        "PC/Op_e/eta=0",
        "--set",
        "IIN/Op_i/eta=-2.5",
        "--input",
        "PC/Op_e/inp=1",
        "--output",
        "r=PC/Op_e/r",
    ]));
    let (header, rows) = read_csv(&String::from_utf8_lossy(&sim.stdout));
    assert_eq!(header, vec!["time", "r"]);
    assert_eq!(rows.len(), 5000);
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(
            row[1].to_bits(),
            traces[point * 5000 + k].to_bits(),
            "sample {k} differs"
        );
    }
    // The heatmap of the README's second step.
    assert_plots_png(&out, &[], &dir.path().join("heatmap.png"));
}

#[test]
fn shards_then_merge_equal_a_single_run() {
    let (dir, spec) = temp_dir_with(
        "spec.yaml",
        "template: model_templates.montbrio.simple_montbrio.Net3\nsimulation_time: 0.5\nstep_size: 1.0e-4\n\
         sampling_step_size: 1.0e-3\npermute_grid: true\nchunk_size: 4\n\
         param_grid: {eta_op: {linspace: [-5, 5, 3]}, eta_iin: [-1, 1, 3]}\n\
         param_map:\n  eta_op: {vars: [Op_e/eta], nodes: [PC]}\n  eta_iin: {vars: [Op_i/eta], nodes: [IIN]}\n\
         inputs: {PC/Op_e/inp: 1.0}\noutputs: {r: PC/Op_e/r}\nsummaries: [mean, max]\n",
    );
    let single = dir.path().join("single.h5");
    sweep_quietly(&spec, &single);
    let merged = dir.path().join("merged.h5");
    let parts = dir.path().join("parts");
    // One part directory per shard, as examples/slurm/sweep_array.sbatch does.
    let task_dir = |i: usize| parts.join(format!("task_{i}"));
    for i in 0..2 {
        run_ok(
            bin()
                .arg("sweep")
                .arg(&spec)
                .arg("--out")
                .arg(&merged)
                .arg("--parts-dir")
                .arg(task_dir(i))
                .arg("--shard")
                .arg(format!("{i}/2"))
                .arg("-q"),
        );
    }
    assert!(!merged.exists(), "shards write parts only");
    run_ok(
        bin()
            .arg("merge")
            .arg(task_dir(0))
            .arg(task_dir(1))
            .arg("--out")
            .arg(&merged),
    );
    let (a, b) = (
        rustrates::io::h5::read_results(&single).expect("single"),
        rustrates::io::h5::read_results(&merged).expect("merged"),
    );
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.grid_values, b.grid_values);
    assert_eq!(a.traces, b.traces);
    assert_eq!(a.summaries, b.summaries);
    assert_eq!(a.status, b.status);
}

#[test]
fn check_reports_file_line_col_and_exits_nonzero() {
    let (_dir, file) = temp_dir_with("bad.yaml", "op:\n  base: OperatorTemplate\n  equations: \"d/dt * r = -r/tau + r_inn\"\n  variables:\n    r: output(0.0)\n    tau: 1.0\n    r_in: input(0.0)\n");
    let out = bin()
        .arg("check")
        .arg("--format")
        .arg("concise")
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Line 3: two spaces, `equations: ` (11 characters) and the quote put the string at column
    // 15; `r_inn` is 20 characters into it: column 35.
    assert!(stderr.contains("bad.yaml:3:35: eq/undefined-symbol"), "{stderr}");
    let ok = bin()
        .arg("check")
        .arg(repo().join("examples/models/reference_qif.yaml"))
        .output()
        .expect("runs");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn sweep_spec_errors_name_the_line_and_exit_one() {
    let (dir, spec) = temp_dir_with("spec.yaml", "template: model_templates.montbrio.simple_montbrio.Net3\nsimulation_time: 1\nstep_size: 1e-4\noutputs: {r: PC/Op_e/r}\nsolver: rk5\n");
    let out = bin()
        .arg("sweep")
        .arg(&spec)
        .arg("--out")
        .arg(dir.path().join("x.h5"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spec/unknown-solver"), "{stderr}");
    assert!(stderr.contains(":5:9"), "{stderr}");
    assert!(!dir.path().join("x.h5").exists(), "no results file for a broken spec");
}

#[test]
fn regime_example_sweep_matches_the_hopf_normal_form_and_plots() {
    // examples/regimes/hopf.yaml: Stuart–Landau over μ ∈ linspace(−0.5, 0.5, 21) ×
    // ω ∈ linspace(0.5, 3, 11). Analytic: a stable focus with eigenvalues μ ± iω for μ < 0, a
    // cycle of amplitude √μ and period 2π/ω for μ > 0. Points with |μ| ≤ 0.05 decay or grow
    // at rate |μ| and may still be in their transient at T = 200, so they are left out; the
    // others must match to 1e-3 relative (period, amplitude) and 1e-9 (eigenvalues: the
    // state is within ~e^{−0.1·200} of the origin).
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("hopf.h5");
    let r = sweep_example("examples/regimes/hopf.yaml", &out);
    let s = r.summaries.as_ref().expect("summaries");
    let stat = |name: &str, p: usize| {
        let i = s
            .stats
            .iter()
            .position(|x| x.name() == name)
            .expect("statistic present");
        s.values[i][p]
    };
    let mut checked = 0;
    for p in 0..r.labels.len() {
        let (mu, omega) = (r.grid_values[0][p], r.grid_values[1][p]);
        if mu.abs() <= 0.05 + 1e-12 {
            continue;
        }
        checked += 1;
        if mu < 0.0 {
            assert_eq!(stat("regime", p), 2.0, "mu {mu} omega {omega}: stable focus");
            assert!((stat("eig_re", p) - mu).abs() < 1e-9 && (stat("eig_im", p) - omega).abs() < 1e-9);
        } else {
            assert_eq!(stat("regime", p), 4.0, "mu {mu} omega {omega}: periodic");
            let want = std::f64::consts::TAU / omega;
            assert!((stat("period", p) - want).abs() < 1e-3 * want, "mu {mu} omega {omega}");
            assert!(
                (stat("amplitude", p) - mu.sqrt()).abs() < 1e-3 * mu.sqrt(),
                "mu {mu} omega {omega}"
            );
        }
    }
    assert_eq!(checked, 18 * 11, "21 values of μ less −0.05, 0, 0.05, times 11 of ω");
    assert_plots_png(&out, &["--regimes"], &dir.path().join("regimes.png"));
}

#[test]
fn refined_hopf_sweep_records_levels_and_plots_its_regular_view() {
    // Stuart–Landau over μ from −1.03 every 0.5 (5 coarse points), 3 levels: the finest
    // cell is 1/16 and the Hopf bifurcation is at μ = 0 exactly (analytic), so the stable
    // focus / periodic switch must lie between the lattice nodes −0.03 and 0.0325. At
    // |μ| ≥ 0.03 the transient has decayed like e^{−|μ|t} below 1e-6 by the cutoff t = 500.
    let (dir, spec) = temp_dir_with(
        "hopf_refined.yaml",
        format!(
            "template: {}/hopf\nsimulation_time: 600.0\nstep_size: 0.02\nsolver: rk4\ncutoff: 500.0\n\
             param_grid:\n  mu: {{linspace: [-1.03, 0.97, 5]}}\nparam_map:\n  mu: {{vars: [hopf_op/mu], nodes: [p]}}\n\
             outputs:\n  x: p/hopf_op/x\nsummaries: [regime]\nrefine: {{levels: 3, criterion: regime}}\n",
            repo().join("examples/models/stuart_landau_hopf.yaml").display()
        ),
    );
    let out = dir.path().join("hopf_refined.h5");
    let run = sweep_quietly(&spec, &out);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("8 point(s) run"), "{stderr}");
    let r = rustrates::io::h5::read_results(&out).expect("a complete results file");
    assert_eq!(r.grid_keys, ["mu", "refine_level"]);
    assert_eq!(r.labels.len(), 8, "5 coarse points and one per level");
    let s = r.summaries.as_ref().expect("summaries");
    let regime = s.stats.iter().position(|x| x.name() == "regime").expect("regime");
    let mut points: Vec<(f64, f64, f64)> = (0..8)
        .map(|p| (r.grid_values[0][p], r.grid_values[1][p], s.values[regime][p]))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    for &(mu, _, code) in &points {
        assert_eq!(code, if mu < 0.0 { 2.0 } else { 4.0 }, "mu {mu}");
    }
    let switch = points.windows(2).find(|w| w[0].2 != w[1].2).expect("a switch");
    assert!((switch[1].0 - switch[0].0 - 1.0 / 16.0).abs() < 1e-12, "{switch:?}");
    // −0.03 is a coarse point; 0.0325 was made at the finest level.
    assert_eq!((switch[0].1, switch[1].1), (0.0, 3.0));
    assert_plots_png(&out, &["--regimes"], &dir.path().join("regimes.png"));
}

#[test]
fn param_map_nodes_all_in_a_spec_sweeps_the_population_like_its_node_list() {
    // The CLI passes `nodes: all` (a bare word or a list) to the engine, which owns the rule.
    let dir = tempfile::tempdir().expect("temp dir");
    let template = repo().join("examples/models/reference_qif.yaml/pc_iin");
    let results: Vec<rustrates::sweep::SweepResult> = ["all", "[all]", "[PC, IIN]", "[PC]"]
        .iter()
        .enumerate()
        .map(|(i, nodes)| {
            let spec = written(
                dir.path(),
                format!("spec{i}.yaml"),
                format!(
                    "template: {}\nsimulation_time: 0.05\nstep_size: 1.0e-4\nparam_grid:\n  eta: [-5.0, -2.0, 1.0]\n\
                     param_map:\n  eta: {{vars: [qif_op/eta], nodes: {nodes}}}\ninputs:\n  PC/qif_op/I_ext: 1.0\n\
                     outputs:\n  r: all/qif_op/r\n",
                    template.display()
                ),
            );
            let out = dir.path().join(format!("r{i}.h5"));
            sweep_read(&spec, &out)
        })
        .collect();
    assert_eq!(trace_bits(&results[0]), trace_bits(&results[2]));
    assert_eq!(trace_bits(&results[1]), trace_bits(&results[2]));
    // `all` reaches IIN too: eta in PC alone is another sweep.
    assert_ne!(trace_bits(&results[0]), trace_bits(&results[3]));
}

#[test]
fn per_node_input_files_in_a_spec_equal_the_engine_with_per_point_columns() {
    // One CSV per node, one column per grid point: the CLI reads them into the engine's
    // per-point signals, so the sweep equals the engine run on the same columns bit for bit.
    use rustrates::solve::{Method, Signal, SimConfig};
    use rustrates::sweep::{Grid, MemorySink, ParamMap, SweepSpec};
    let dir = tempfile::tempdir().expect("temp dir");
    let template = repo().join("examples/models/reference_qif.yaml/pc_iin");
    let (steps, points) = (500, 3);
    let drive = |node: usize, p: usize, k: usize| ((k * (p + 1) + 7 * node) as f64 * 0.01).sin() * (1.0 + node as f64);
    let mut inputs = Vec::new();
    for (node, name) in ["PC", "IIN"].iter().enumerate() {
        let rows: Vec<String> = (0..steps)
            .map(|k| {
                (0..points)
                    .map(|p| format!("{:?}", drive(node, p, k)))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        std::fs::write(dir.path().join(format!("{name}.csv")), rows.join("\n")).expect("write csv");
        let data: Vec<f64> = (0..steps * points)
            .map(|i| drive(node, i % points, i / points))
            .collect();
        inputs.push((
            format!("{name}/qif_op/I_ext"),
            Signal::PerPoint {
                points,
                data: data.into(),
            },
        ));
    }
    let spec = written(
        dir.path(),
        "spec.yaml",
        format!(
            "template: {}\nsimulation_time: 0.05\nstep_size: 1.0e-4\nparam_grid:\n  eta: [-5.0, -2.0, 1.0]\n\
             param_map:\n  eta: {{vars: [qif_op/eta], nodes: all}}\ninputs:\n  PC/qif_op/I_ext: {{file: PC.csv}}\n\
             \x20 IIN/qif_op/I_ext: {{file: IIN.csv}}\noutputs:\n  r: all/qif_op/r\n",
            template.display()
        ),
    );
    let out = dir.path().join("r.h5");
    let cli = sweep_read(&spec, &out);

    let loaded = rustrates::model::load_circuit(
        &template.display().to_string(),
        &rustrates::template::LoadOptions::default(),
    )
    .expect("loads");
    let mut values = indexmap::IndexMap::new();
    values.insert("eta".to_string(), vec![-5.0, -2.0, 1.0]);
    let sim = SimConfig {
        simulation_time: 0.05,
        dt: 1e-4,
        sampling_step: None,
        method: Method::Euler,
        cutoff: 0.0,
    };
    let map = ParamMap::new().nodes("eta", &["qif_op/eta"], &["PC", "IIN"]);
    let mut engine_spec = SweepSpec::new(Grid::from_values(&values, true).expect("grid"), map, sim);
    engine_spec.inputs = inputs;
    engine_spec.outputs = vec![("r".into(), "all/qif_op/r".into())];
    let mut sink = MemorySink::new();
    rustrates::sweep::run(&engine_spec, &loaded.circuit, &mut sink).expect("runs");
    let engine = sink.into_result().expect("result");
    assert_eq!(cli.columns, engine.columns);
    assert!(
        trace_bits(&cli) == trace_bits(&engine),
        "the CLI's sweep differs from the engine's"
    );
}

/// A spec sweeping a block's conduction velocity (`C/velocity`, with its scale `C/scale`)
/// gives, point by point and bit for bit, the single runs of the same block with its delays
/// written directly (`delay:` = lengths / velocity as `conduction_delay` computes it).
#[test]
fn a_spec_sweeping_the_conduction_velocity_equals_runs_with_the_delays_given() {
    use rustrates::model::test_models::network_grid::{delay_steps, weight, OPERATOR};
    use rustrates::model::test_models::yaml_matrix;
    let dir = tempfile::tempdir().expect("temp dir");
    let (n, dt, dmax) = (5, 1e-4, 0.002);
    let length = |i: usize, j: usize| delay_steps(dmax, dt, i, j) as f64 * dt * 10.0;
    let net = |delays: &str| {
        let nodes: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        format!(
            "{OPERATOR}Net:\n  base: CircuitTemplate\n  nodes: {{{}}}\n  connectivity:\n    - source: qif_net_op/r\n      \
             target: qif_net_op/r_in\n      source_nodes: [{}]\n      weight: {}\n{delays}      name: C\n      scale: 1.0\n",
            nodes.iter().map(|k| format!("{k}: qif_net_pop")).collect::<Vec<_>>().join(", "),
            nodes.join(", "),
            yaml_matrix(n, |i, j| weight(n, i, j)),
        )
    };
    let sweep = |name: &str, yaml: &str, grid: &str, map: &str| {
        let template = written(dir.path(), format!("{name}.yaml"), yaml);
        let spec = written(
            dir.path(),
            format!("{name}_spec.yaml"),
            format!(
                "template: {}/Net\nsimulation_time: 0.015\nstep_size: 1.0e-4\nsampling_step_size: 1.0e-4\n\
                 param_grid:\n{grid}param_map:\n{map}outputs:\n  r: all/qif_net_op/r\n",
                template.display()
            ),
        );
        let out = dir.path().join(format!("{name}.h5"));
        sweep_read(&spec, &out)
    };
    let velocities = [10.0, 5.0, 3.0];
    let swept = sweep(
        "velocity",
        &net(&format!(
            "      lengths: {}\n      velocity: 10.0\n",
            yaml_matrix(n, length)
        )),
        "  G: [1.5, 1.5, 1.5]\n  v: [10.0, 5.0, 3.0]\n",
        "  G: {vars: [C/scale]}\n  v: {vars: [C/velocity]}\n",
    );
    let point_bits = |r: &rustrates::sweep::SweepResult, p: usize| -> Vec<u64> {
        (0..r.columns.len())
            .flat_map(|c| r.trace(p, c).expect("trace"))
            .map(f64::to_bits)
            .collect()
    };
    for (p, v) in velocities.iter().enumerate() {
        let delays = yaml_matrix(n, |i, j| rustrates::model::conduction_delay(length(i, j), *v));
        let alone = sweep(
            &format!("given{p}"),
            &net(&format!("      delay: {delays}\n")),
            "  G: [1.5]\n",
            "  G: {vars: [C/scale]}\n",
        );
        assert_eq!(swept.columns, alone.columns);
        assert!(
            point_bits(&swept, p) == point_bits(&alone, 0),
            "velocity {v}: the swept point differs from the run with its delays given"
        );
        assert!(point_bits(&alone, 0).iter().all(|b| f64::from_bits(*b).is_finite()));
    }
}
