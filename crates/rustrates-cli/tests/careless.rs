//! Issue 14, "what a careless user broke": one test per item, each through the `rustrates`
//! binary as the user ran it. Where files are at stake, the test lists the directory before
//! and after (printed, and compared), and the results are compared with a clean run's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rustrates"))
}

/// A small sweep of the seed model: 8 points in 4 chunks of 2 (so it goes through part
/// files), 100 steps each.
const SPEC: &str = "\
template: model_templates.montbrio.simple_montbrio.Net3
simulation_time: 0.1
step_size: 1.0e-3
backend: reference
permute_grid: true
param_grid:
  eta_op: [-5.0, -2.0, 1.0, 4.0]
  eta_iin: [-1.0, 1.0]
param_map:
  eta_op: {vars: [Op_e/eta], nodes: [PC]}
  eta_iin: {vars: [Op_i/eta], nodes: [IIN]}
inputs:
  PC/Op_e/inp: 1.0
outputs:
  r: PC/Op_e/r
chunk_size: 2
";

/// `SPEC` run to `simulation_time` in chunks of `chunk_size` points.
fn spec_lasting(simulation_time: &str, chunk_size: usize) -> String {
    SPEC.replace("simulation_time: 0.1", &format!("simulation_time: {simulation_time}"))
        .replace("chunk_size: 2", &format!("chunk_size: {chunk_size}"))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

/// Every file and folder under `dir`, relative, sorted; files with their size.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).expect("under root").display().to_string();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &p, out);
            } else {
                out.push(format!("{rel} ({} B)", std::fs::metadata(&p).map_or(0, |m| m.len())));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn names(listing: &[String]) -> Vec<String> {
    listing
        .iter()
        .map(|l| l.split(" (").next().unwrap_or(l).to_string())
        .collect()
}

fn show(when: &str, l: &[String]) {
    eprintln!("{when}:\n  {}", l.join("\n  "));
}

/// `sweep` in `d`, the folder listed before and after (shown, for a failing test's log);
/// returns the listing before and the sweep's output.
fn sweep_shown(d: &Path, args: &[&str]) -> (Vec<String>, Output) {
    let before = listing(d);
    show("before", &before);
    let o = sweep(d, args);
    show("after", &listing(d));
    (before, o)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sweep(dir: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(dir)
        .arg("sweep")
        .args(args)
        .arg("-q")
        .output()
        .expect("the binary runs")
}

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "failed ({:?}):\n{}", o.status, stderr(o));
}

fn assert_refused(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", stderr(o));
    assert!(stderr(o).contains(needle), "expected `{needle}` in:\n{}", stderr(o));
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
}

/// The traces of a results file, bit patterns.
fn traces(path: &Path) -> Vec<u64> {
    let r = rustrates::io::h5::read_results(path).expect("a complete results file");
    r.traces.expect("traces kept").iter().map(|x| x.to_bits()).collect()
}

/// The same sweep run cleanly in its own folder: the reference results.
fn reference(spec: &str) -> Vec<u64> {
    let dir = tempfile::tempdir().expect("temp dir");
    write(&dir.path().join("s.yaml"), spec);
    assert_ok(&sweep(dir.path(), &["s.yaml", "--out", "ref.h5"]));
    traces(&dir.path().join("ref.h5"))
}

#[test]
fn item01_parts_dir_naming_an_existing_folder_keeps_what_rustrates_did_not_write() {
    let expected = reference(SPEC);
    // --parts-dir naming the user's folder.
    let dir = spec_dir();
    let d = dir.path();
    std::fs::create_dir(d.join("sb")).expect("mkdir");
    write(&d.join("sb/notes.txt"), "x\n");
    let before = listing(d);
    show("before", &before);
    assert_ok(&sweep(d, &["s.yaml", "--out", "r.h5", "--parts-dir", "sb"]));
    let after = listing(d);
    show("after", &after);
    assert_eq!(names(&after), ["r.h5", "s.yaml", "sb/", "sb/notes.txt"]);
    assert_eq!(std::fs::read_to_string(d.join("sb/notes.txt")).expect("kept"), "x\n");
    assert_eq!(traces(&d.join("r.h5")), expected);

    // The default <out>.parts holding a file of the user's: that file and its folder stay.
    let dir = spec_dir();
    let d = dir.path();
    std::fs::create_dir(d.join("r.h5.parts")).expect("mkdir");
    write(&d.join("r.h5.parts/mine.txt"), "mine\n");
    show("before", &listing(d));
    let o = sweep(d, &["s.yaml", "--out", "r.h5"]);
    assert_ok(&o);
    let after = listing(d);
    show("after", &after);
    assert_eq!(names(&after), ["r.h5", "r.h5.parts/", "r.h5.parts/mine.txt", "s.yaml"]);
    assert_eq!(traces(&d.join("r.h5")), expected);

    // --parts-dir . with the spec, the output and a file of the user's in it: all stay.
    let dir = spec_dir();
    let d = dir.path();
    write(&d.join("notes.txt"), "n\n");
    show("before", &listing(d));
    assert_ok(&sweep(d, &["s.yaml", "--out", "r.h5", "--parts-dir", "."]));
    let after = listing(d);
    show("after", &after);
    assert_eq!(names(&after), ["notes.txt", "r.h5", "s.yaml"]);
    assert_eq!(traces(&d.join("r.h5")), expected);

    // A parts dir rustrates created itself and nobody else wrote into is removed.
    let dir = spec_dir();
    let d = dir.path();
    assert_ok(&sweep(d, &["s.yaml", "--out", "r.h5"]));
    assert_eq!(names(&listing(d)), ["r.h5", "s.yaml"]);
}

#[test]
fn item02_out_naming_the_spec_or_an_existing_file_is_refused_unless_overwrite() {
    let dir = spec_dir();
    let d = dir.path();
    let before = listing(d);
    show("before", &before);
    let o = sweep(d, &["s.yaml", "--out", "s.yaml"]);
    assert_refused(&o, 2, "is an input (s.yaml) of this sweep");
    // Not even --overwrite replaces the spec.
    assert_refused(&sweep(d, &["s.yaml", "--out", "s.yaml", "--overwrite"]), 2, "an input");
    show("after", &listing(d));
    assert_eq!(listing(d), before);
    assert_eq!(std::fs::read_to_string(d.join("s.yaml")).expect("spec"), SPEC);

    // An existing results file (here: another sweep's) stays unless --overwrite.
    let other = SPEC.replace("eta_iin: [-1.0, 1.0]", "eta_iin: [-3.0, 3.0]");
    write(&d.join("other.yaml"), &other);
    assert_ok(&sweep(d, &["other.yaml", "--out", "r.h5"]));
    let other_traces = traces(&d.join("r.h5"));
    let before = listing(d);
    let o = sweep(d, &["s.yaml", "--out", "r.h5"]);
    assert_refused(&o, 2, "already exists");
    assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));
    assert_eq!(listing(d), before);
    assert_eq!(traces(&d.join("r.h5")), other_traces);
    // The same sweep again is no exception.
    assert_refused(&sweep(d, &["other.yaml", "--out", "r.h5"]), 2, "already exists");
    assert_ok(&sweep(d, &["s.yaml", "--out", "r.h5", "--overwrite"]));
    assert_eq!(traces(&d.join("r.h5")), reference(SPEC));
    assert_eq!(names(&listing(d)), ["other.yaml", "r.h5", "s.yaml"]);
}

/// Runs shard 0 of 2 (chunks 0 and 2 of 4) into `r.h5.parts`, as an interrupted sweep leaves
/// it: some chunks finished, the others not.
fn half_done(d: &Path) {
    assert_ok(&sweep(d, &["s.yaml", "--out", "r.h5", "--shard", "0/2"]));
    assert!(d.join("r.h5.parts/manifest.jsonl").is_file());
}

/// `d/r.h5` holds `SPEC`'s reference traces and nothing but it and the spec is left in `d`.
fn assert_swept_and_tidy(d: &Path) {
    assert_eq!(traces(&d.join("r.h5")), reference(SPEC));
    assert_eq!(names(&listing(d)), ["r.h5", "s.yaml"]);
}

/// A fresh folder holding `SPEC` as `s.yaml`.
fn spec_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write(&dir.path().join("s.yaml"), SPEC);
    dir
}

/// A [`spec_dir`], [`half_done`].
fn half_done_dir() -> tempfile::TempDir {
    let dir = spec_dir();
    half_done(dir.path());
    dir
}

/// `spec` written as `s.yaml` in `d` and swept there to `r.h5` in the background, quietly,
/// its standard error kept.
fn spawn_sweep(d: &Path, spec: &str) -> std::process::Child {
    write(&d.join("s.yaml"), spec);
    bin()
        .current_dir(d)
        .args(["sweep", "s.yaml", "--out", "r.h5", "-q"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn item03_parts_without_their_sweep_record_cannot_be_resumed() {
    let dir = half_done_dir();
    let d = dir.path();
    std::fs::remove_file(d.join("r.h5.parts/sweep.json")).expect("rm sweep.json");
    // A different sweep into the same place.
    write(
        &d.join("s.yaml"),
        &SPEC.replace("eta_iin: [-1.0, 1.0]", "eta_iin: [-3.0, 3.0]"),
    );
    let (before, o) = sweep_shown(d, &["s.yaml", "--out", "r.h5"]);
    assert_refused(&o, 2, "no sweep.json");
    assert!(stderr(&o).contains("cannot resume"), "{}", stderr(&o));
    assert_eq!(listing(d), before, "nothing written, nothing removed");

    // An unreadable record is the same: cannot resume, never "another sweep" or "the same".
    write(&d.join("r.h5.parts/sweep.json"), "{\"fingerprint\": ");
    let o = sweep(d, &["s.yaml", "--out", "r.h5"]);
    assert_refused(&o, 2, "cannot resume");
}

/// Runs `spec` (written as `s.yaml`) and returns the output; the spec is expected invalid.
fn invalid(spec: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    write(&dir.path().join("s.yaml"), spec);
    let o = sweep(dir.path(), &["s.yaml", "--out", "r.h5"]);
    assert_eq!(
        listing(dir.path()),
        ["s.yaml (".to_string() + &spec.len().to_string() + " B)"]
    );
    o
}

/// Asserts exit 1 and a diagnostic `code` at `s.yaml:line:col`.
fn assert_at(o: &Output, code: &str, line: usize, col: usize) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("[{code}]")), "expected {code} in:\n{err}");
    assert!(
        err.contains(&format!("s.yaml:{line}:{col}")),
        "expected s.yaml:{line}:{col} in:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn line_col_of(spec: &str, needle: &str) -> (usize, usize) {
    let at = spec.find(needle).expect("needle in spec");
    let line = spec[..at].matches('\n').count() + 1;
    let col = at - spec[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// `SPEC` with its first `from` replaced by `to` must be refused with `code` at the text
/// `at`, `offset` columns into it; returns the refusal.
fn assert_edit_refused_at(from: &str, to: &str, at: &str, offset: usize, code: &str) -> Output {
    let spec = SPEC.replacen(from, to, 1);
    assert_ne!(spec, SPEC, "{from}");
    let (line, col) = line_col_of(&spec, at);
    eprintln!("case {to}");
    let o = invalid(&spec);
    assert_at(&o, code, line, col + offset);
    o
}

#[test]
fn item04_param_map_naming_no_node_or_no_var_is_an_error_at_its_line() {
    let o = assert_edit_refused_at("nodes: [IIN]", "nodes: []", "[]}", 0, "spec/param-map");
    assert!(stderr(&o).contains("would change nothing"));
    assert_edit_refused_at(
        "{vars: [Op_i/eta], nodes: [IIN]}",
        "{vars: [], nodes: [IIN]}",
        "[], nodes",
        0,
        "spec/param-map",
    );
}

#[test]
fn item05_settings_that_give_no_or_wrong_samples_are_errors() {
    let cases: &[(&str, &str, &str)] = &[
        // simulation_time shorter than a step: no sample at all.
        ("simulation_time: 0.1", "simulation_time: 0.0005", "0.0005"),
        // cutoff beyond T.
        ("chunk_size: 2", "chunk_size: 2\ncutoff: 0.5", "0.5"),
        // sampling step longer than T: a single sample.
        ("chunk_size: 2", "chunk_size: 2\nsampling_step_size: 0.2", "0.2"),
        // An empty grid.
        (
            "param_grid:\n  eta_op: [-5.0, -2.0, 1.0, 4.0]\n  eta_iin: [-1.0, 1.0]",
            "param_grid: {}",
            "{}",
        ),
        // Values that are not finite numbers.
        ("[-5.0, -2.0, 1.0, 4.0]", "[-5.0, .nan, 1.0, 4.0]", "[-5.0, .nan"),
        ("[-5.0, -2.0, 1.0, 4.0]", "[-5.0, 1e400, 1.0, 4.0]", "[-5.0, 1e400"),
        ("[-1.0, 1.0]", "[-1.0, .inf]", "[-1.0, .inf]"),
    ];
    for (from, to, at) in cases {
        assert_edit_refused_at(from, to, at, 0, "sweep/bad-setting");
    }
}

#[test]
fn item06_sizes_beyond_memory_are_errors_before_anything_is_allocated() {
    let cases: &[(&str, &str)] = &[
        // 1e12 values of a linspace: 8 TB.
        ("[-5.0, -2.0, 1.0, 4.0]", "{linspace: [0, 1, 1.0e12]}"),
        ("[-5.0, -2.0, 1.0, 4.0]", "{linspace: [0, 1, 1.0e19]}"),
        ("[-5.0, -2.0, 1.0, 4.0]", "{linspace: [0, 1, 1.0e300]}"),
        // T = 1e9 with dt 1e-3: 1e12 samples per point.
        ("simulation_time: 0.1", "simulation_time: 1.0e9"),
        // 1e-300 steps: more than 2^53 per point.
        ("step_size: 1.0e-3", "step_size: 1.0e-300"),
    ];
    for (from, to) in cases {
        let spec = SPEC.replace(from, to);
        let o = invalid(&spec);
        eprintln!("case {to}: {}", stderr(&o));
        // 1: refused with the spec (a position); 2: refused by the run's memory check, which
        // comes before anything is allocated.
        assert!(matches!(o.status.code(), Some(1 | 2)), "{to}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("spec/") || stderr(&o).contains("sweep/") || stderr(&o).contains("needs"),
            "{}",
            stderr(&o)
        );
        assert!(
            !stderr(&o).contains("panicked") && !stderr(&o).contains("overflow"),
            "{}",
            stderr(&o)
        );
    }
    // A permuted grid whose size overflows a usize: 6 keys × 10,000 values = 1e24 points.
    let mut spec = SPEC.replace(
        "param_grid:\n  eta_op: [-5.0, -2.0, 1.0, 4.0]\n  eta_iin: [-1.0, 1.0]",
        "param_grid:",
    );
    let mut map = String::new();
    for k in 0..6 {
        spec = spec.replace(
            "param_grid:",
            &format!("param_grid:\n  k{k}: {{linspace: [0, 1, 10000]}}"),
        );
        map.push_str(&format!("\n  k{k}: {{vars: [Op_e/eta], nodes: [PC]}}"));
    }
    let spec = spec.replace("param_map:", &format!("param_map:{map}"));
    let o = invalid(&spec);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("spec/too-large") && err.contains("permuted grid"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn item07_a_flat_sum_of_15000_terms_is_a_positioned_error_not_a_stack_overflow() {
    for terms in [15_000usize, 100_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let sum: Vec<String> = (0..terms).map(|i| format!("a{}", i % 3)).collect();
        let yaml = format!(
            "Op:\n  base: OperatorTemplate\n  equations: \"d/dt * x = {}\"\n  variables:\n    x: output(0.0)\n    a0: 1.0\n    a1: 2.0\n    a2: 3.0\n",
            sum.join(" + ")
        );
        write(&dir.path().join("t.yaml"), &yaml);
        let o = bin()
            .current_dir(dir.path())
            .args(["check", "t.yaml"])
            .output()
            .expect("runs");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{terms}: {}", &err[..err.len().min(2000)]);
        assert!(err.contains("[eq/too-deep]"), "{}", &err[..err.len().min(2000)]);
        // The 2,000th `+` (after 2,000 terms): column of the `+` in the equation line.
        let eq_line = yaml.lines().position(|l| l.contains("equations")).expect("line") + 1;
        let plus_col = yaml.lines().nth(eq_line - 1).expect("line").find(" + ").expect("+") + 2;
        let _ = plus_col;
        assert!(
            err.contains(&format!("t.yaml:{eq_line}:")),
            "{}",
            &err[..err.len().min(2000)]
        );
        assert!(
            err.len() < 4000,
            "the code frame is cut to a window: {} bytes",
            err.len()
        );
    }
}

/// A half-done sweep (`half_done_dir`) damaged by `damage` resumes to the whole result with
/// nothing left over; its standard error says `says` where given.
fn assert_resumes_after_damage(damage: impl FnOnce(&Path), says: Option<&str>) {
    let dir = half_done_dir();
    let d = dir.path();
    damage(d);
    let (_, o) = sweep_shown(d, &["s.yaml", "--out", "r.h5"]);
    assert_ok(&o);
    if let Some(says) = says {
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
    }
    assert_swept_and_tidy(d);
}

#[test]
fn item08_a_corrupt_finished_part_is_set_aside_and_recomputed() {
    let flip_a_middle_byte = |d: &Path| {
        let part = d.join("r.h5.parts/parts/chunk_00000000_00000002.h5");
        let mut bytes = std::fs::read(&part).expect("part");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&part, bytes).expect("corrupt it");
    };
    assert_resumes_after_damage(flip_a_middle_byte, Some("did not match its checksum"));
}

#[test]
fn item09_a_torn_last_manifest_line_is_dropped_and_that_chunk_recomputed() {
    let tear_the_manifest = |d: &Path| {
        let manifest = d.join("r.h5.parts/manifest.jsonl");
        let mut text = std::fs::read_to_string(&manifest).expect("manifest");
        text.push_str("{\"chunk\": 1, \"sta");
        write(&manifest, &text);
    };
    assert_resumes_after_damage(tear_the_manifest, None);
}

#[test]
fn item10_an_output_that_cannot_be_written_is_refused_before_computing() {
    let dir = spec_dir();
    let d = dir.path();
    std::fs::create_dir(d.join("out")).expect("mkdir");
    let (before, o) = sweep_shown(d, &["s.yaml", "--out", "out"]);
    assert_refused(&o, 2, "is a directory");
    assert_eq!(listing(d), before, "no .tmp, no .parts");
    assert_refused(&sweep(d, &["s.yaml", "--out", "nowhere/r.h5"]), 2, "does not exist");
    assert_refused(
        &sweep(d, &["s.yaml", "--out", "/proc/r.h5"]),
        2,
        "cannot write in /proc",
    );
    write(&d.join("file"), "f");
    assert_refused(
        &sweep(d, &["s.yaml", "--out", "r.h5", "--parts-dir", "file"]),
        2,
        "not a directory",
    );
    assert_eq!(names(&listing(d)), ["file", "out/", "s.yaml"]);
}

#[test]
fn item11_a_failed_write_removes_what_it_left() {
    // A file-size limit stands in for a full disk: writes beyond it fail with EFBIG (SIGXFSZ
    // ignored, as a full disk gives ENOSPC without a signal).
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let spec = spec_lasting("2.0", 4);
    write(&d.join("s.yaml"), &spec);
    let before = listing(d);
    show("before", &before);
    let o = Command::new("sh")
        .current_dir(d)
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 100; exec '{}' sweep s.yaml --out r.h5 -q",
            env!("CARGO_BIN_EXE_rustrates")
        ))
        .output()
        .expect("sh runs");
    let after = listing(d);
    show("after", &after);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("File too large"), "{err}");
    // Once, not twice (the cause used to be printed again after the message that quotes it).
    assert_eq!(err.matches("File too large").count(), 1, "{err}");
    assert!(
        !after.iter().any(|f| f.contains(".tmp")),
        "a temporary file stayed: {after:?}"
    );
    assert!(!d.join("r.h5").exists());
}

#[test]
fn item12_a_second_sweep_to_the_same_output_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let slow = spec_lasting("100.0", 2);
    let mut first = spawn_sweep(d, &slow);
    let lock = d.join("r.h5.lock");
    let t0 = std::time::Instant::now();
    while !lock.exists() {
        assert!(t0.elapsed().as_secs() < 60, "the first sweep never took its lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let started = std::time::Instant::now();
    let o = sweep(d, &["s.yaml", "--out", "r.h5"]);
    let took = started.elapsed();
    assert_refused(&o, 2, &format!("pid {}", first.id()));
    assert!(stderr(&o).contains("on host"), "{}", stderr(&o));
    let status = first.wait().expect("first ends");
    assert!(status.success());
    eprintln!("refused after {took:?}");
    assert_eq!(traces(&d.join("r.h5")), reference(&slow));
    assert_eq!(names(&listing(d)), ["r.h5", "s.yaml"]);

    // A lock left by a process that is gone is taken over.
    std::fs::remove_file(d.join("r.h5")).expect("rm");
    let dead = Command::new("true").spawn().expect("spawn");
    let dead_pid = dead.id();
    let _ = { dead }.wait();
    write(
        &lock,
        &format!(
            "{{\"rustrates_lock\":1,\"pid\":{dead_pid},\"host\":\"{}\",\"started\":0,\"what\":\"r.h5\"}}",
            rustrates::io::guard::host_name()
        ),
    );
    assert_ok(&sweep(d, &["s.yaml", "--out", "r.h5"]));
    assert!(!lock.exists());
}

#[test]
fn item13_merge_names_what_is_missing_and_the_shard_hint_works() {
    let dir = spec_dir();
    let d = dir.path();
    let merge = |args: &[&str]| bin().current_dir(d).arg("merge").args(args).output().expect("runs");
    assert_refused(&merge(&["nope", "--out", "m.h5"]), 2, "nope does not exist");
    std::fs::create_dir(d.join("empty")).expect("mkdir");
    assert_refused(&merge(&["empty", "--out", "m.h5"]), 2, "empty holds no sweep.json");
    let o = sweep(d, &["s.yaml", "--out", "r.h5", "--shard", "0/2"]);
    assert_ok(&o);
    assert!(stderr(&o).contains("when all 2 shards have finished"), "{}", stderr(&o));
    assert_refused(
        &merge(&["r.h5.parts", "--out", "m.h5"]),
        2,
        "2 of the sweep's 4 chunk(s) missing from r.h5.parts",
    );
    assert!(!d.join("m.h5.tmp").exists());
    assert_ok(&sweep(d, &["s.yaml", "--out", "r.h5", "--shard", "1/2"]));
    let o = merge(&["r.h5.parts", "--out", "m.h5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(traces(&d.join("m.h5")), reference(SPEC));
}

#[test]
fn item14_spec_errors_carry_file_line_and_column() {
    // (replace, with, the text the error points at, how far into it, code)
    let cases: &[(&str, &str, &str, usize, &str)] = &[
        (
            "step_size: 1.0e-3",
            "step_size: 0",
            "step_size: 0",
            11,
            "sweep/bad-setting",
        ),
        (
            "step_size: 1.0e-3",
            "step_size: -1.0e-3",
            "-1.0e-3",
            0,
            "sweep/bad-setting",
        ),
        (
            "simulation_time: 0.1",
            "simulation_time: 0",
            "simulation_time: 0",
            17,
            "sweep/bad-setting",
        ),
        (
            "simulation_time: 0.1",
            "simulation_time: .inf",
            ".inf",
            0,
            "sweep/bad-setting",
        ),
        (
            "chunk_size: 2",
            "chunk_size: 2\nsampling_step_size: -1",
            "sampling_step_size: -1",
            20,
            "sweep/bad-setting",
        ),
        ("r: PC/Op_e/r", "r: PC/Op_e/rr", "PC/Op_e/rr", 0, "spec/unknown-output"),
        (
            "{vars: [Op_i/eta], nodes: [IIN]}",
            "{vars: [Op_i/etaa], nodes: [IIN]}",
            "[Op_i/etaa]",
            0,
            "spec/param-map",
        ),
        (
            "{vars: [Op_i/eta], nodes: [IIN]}",
            "{vars: [Op_i/eta], nodes: [IINN]}",
            "[IINN]",
            0,
            "spec/param-map",
        ),
        (
            "  eta_iin: {vars: [Op_i/eta], nodes: [IIN]}\n",
            "",
            "eta_iin: [-1.0",
            0,
            "spec/param-map",
        ),
        (
            "{vars: [Op_i/eta], nodes: [IIN]}",
            "{vars: [], nodes: [IIN]}",
            "[], nodes",
            0,
            "spec/param-map",
        ),
    ];
    for (from, to, at, offset, code) in cases {
        assert_edit_refused_at(from, to, at, *offset, code);
    }
}

#[test]
fn item15_a_spec_error_on_a_10_mb_line_prints_a_window_of_it() {
    let long: Vec<String> = (0..1_000_000).map(|i| format!("{}.0", i % 7)).collect();
    let spec = SPEC.replace("[-1.0, 1.0]", &format!("[{}, x]", long.join(", ")));
    assert!(spec.len() > 5_000_000);
    let o = invalid(&spec);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.len() < 2_000, "{} bytes of error", err.len());
    assert!(err.contains("[spec/not-a-number]") && err.contains("…"), "{err}");
    // The caret sits under the `x`.
    let lines: Vec<&str> = err.lines().collect();
    let frame = lines
        .iter()
        .position(|l| l.contains(", x]"))
        .expect("the window shows the x");
    // In columns (characters): the frame line starts with a 3-byte `…`.
    let x_col = lines[frame][..lines[frame].find(", x]").expect("x")].chars().count() + 2;
    assert_eq!(lines[frame + 1].find('^'), Some(x_col), "{err}");
}

#[test]
fn item16_threads_beyond_the_cores_are_capped_with_a_note() {
    let dir = spec_dir();
    let d = dir.path();
    let o = sweep(d, &["s.yaml", "--out", "r.h5", "--threads", "10000"]);
    assert_ok(&o);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        stderr(&o).contains(&format!("10000 threads asked for, {cores} used")),
        "{}",
        stderr(&o)
    );
    assert_eq!(traces(&d.join("r.h5")), reference(SPEC));
}

#[test]
fn item17_sigint_says_what_was_kept_and_that_the_same_command_resumes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    // 8 chunks of 1 point, each long enough to interrupt between them.
    let slow = spec_lasting("100.0", 1);
    let child = spawn_sweep(d, &slow);
    let manifest = d.join("r.h5.parts/manifest.jsonl");
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&manifest).map_or(0, |t| t.lines().count()) < 1 {
        assert!(t0.elapsed().as_secs() < 120, "no chunk finished");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill")
        .success());
    let o = child.wait_with_output().expect("ends");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted:") && err.contains("of 8 chunk(s) finished and kept in r.h5.parts"),
        "{err}"
    );
    assert!(err.contains("run the same command again to resume"), "{err}");
    show("after the interrupt", &listing(d));
    assert!(!listing(d).iter().any(|f| f.contains(".tmp")));
    let o = sweep(d, &["s.yaml", "--out", "r.h5"]);
    assert_ok(&o);
    assert_eq!(traces(&d.join("r.h5")), reference(&slow));
}

#[allow(dead_code)]
fn unused(_: PathBuf) {}
