//! Traces to disk: the whole `rustrates sweep` process keeping traces, against the same sweep
//! keeping summaries only and against the machine's own write speed (`dd ... conv=fsync`),
//! all in this one run; and the deflate level measured on the reference sweep's own traces.
//!
//! ```text
//! cargo build --release -p rustrates-cli -p rustrates-bench
//! target/release/traces [--points 10000] [--threads 2] [--repeats 3] [--simulation-time 5]
//! ```
//!
//! Process cases (the reference sweep of `shared/bench`: r of PC every 10 steps, 5,000 samples
//! per point at T 5): summaries only; traces uncompressed and compressed by the default route
//! (part files of 4,096 points, merged: resumable) and by the direct route (`chunk_size: 0`,
//! one file); traces as float32. Each is the median of `--repeats` runs, the cases interleaved.
//! Reports seconds, × the summaries-only sweep, file size and write bandwidth (file bytes /
//! the time beyond the summaries-only sweep's).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rustrates::model::load_circuit;
use rustrates::solve::{Method, Signal, SimConfig};
use rustrates::sweep::{Grid, MemorySink, ParamMap, SweepSpec};
use rustrates::template::LoadOptions;

const DT: f64 = 1e-4;
const EVERY: usize = 10;

struct Args {
    points: usize,
    threads: usize,
    repeats: usize,
    time: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        points: 10_000,
        threads: 2,
        repeats: 3,
        time: 5.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--points" => a.points = value()?.parse().map_err(|e| format!("--points: {e}"))?,
            "--threads" => a.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--repeats" => a.repeats = value()?.parse().map_err(|e| format!("--repeats: {e}"))?,
            "--simulation-time" => a.time = value()?.parse().map_err(|e| format!("--simulation-time: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spec_yaml(side: usize, time: f64, keep_traces: bool, extra: &str) -> String {
    let template = repo_root().join("examples/models/reference_qif.yaml");
    format!(
        "template: {}/pc_iin\nsimulation_time: {time}\nstep_size: {DT}\nsampling_step_size: {}\nsolver: euler\n\
         permute_grid: true\nparam_grid: {{eta_pc: {{linspace: [-5, 5, {side}]}}, eta_iin: {{linspace: [-5, 5, {side}]}}}}\n\
         param_map:\n  eta_pc: {{vars: [qif_op/eta], nodes: [PC]}}\n  eta_iin: {{vars: [qif_op/eta], nodes: [IIN]}}\n\
         inputs: {{PC/qif_op/I_ext: 1.0}}\noutputs: {{r: PC/qif_op/r}}\nsummaries: [mean, std, max]\nkeep_traces: {keep_traces}\n{extra}",
        template.display(),
        DT * EVERY as f64
    )
}

fn timed(cmd: &mut Command) -> Result<f64, String> {
    let start = Instant::now();
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(start.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// HDF5's shuffle filter (byte planes), as the engine applies it before deflate.
fn shuffle(raw: &[u8], size: usize) -> Vec<u8> {
    let n = raw.len() / size;
    let mut out = vec![0u8; raw.len()];
    for (j, plane) in out.chunks_exact_mut(n).enumerate() {
        for (i, b) in plane.iter_mut().enumerate() {
            *b = raw[i * size + j];
        }
    }
    out
}

/// Deflate levels on the reference sweep's traces (20 × 20 points, chunks of 64 points as
/// the files hold them, shuffled): compression ratio and single-thread speed per level.
fn deflate_levels(time: f64) -> Result<(), String> {
    let side = 20;
    let path = repo_root().join("examples/models/reference_qif.yaml");
    let loaded =
        load_circuit(&format!("{}/pc_iin", path.display()), &LoadOptions::default()).map_err(|e| format!("{e:?}"))?;
    let mut values = indexmap::IndexMap::new();
    let lin: Vec<f64> = (0..side).map(|i| -5.0 + 10.0 * i as f64 / (side - 1) as f64).collect();
    values.insert("eta_pc".to_string(), lin.clone());
    values.insert("eta_iin".to_string(), lin);
    let grid = Grid::from_values(&values, true).map_err(|e| e.to_string())?;
    let map = ParamMap::new()
        .nodes("eta_pc", &["qif_op/eta"], &["PC"])
        .nodes("eta_iin", &["qif_op/eta"], &["IIN"]);
    let sim = SimConfig {
        simulation_time: time,
        dt: DT,
        sampling_step: Some(DT * EVERY as f64),
        method: Method::Euler,
        cutoff: 0.0,
    };
    let mut spec = SweepSpec::new(grid, map, sim);
    spec.inputs = vec![("PC/qif_op/I_ext".into(), Signal::Constant(1.0))];
    spec.outputs = vec![("r".into(), "PC/qif_op/r".into())];
    spec.keep_traces = true;
    let mut sink = MemorySink::new();
    rustrates::sweep::run_with(&spec, &loaded.circuit, &mut sink, Default::default()).map_err(|e| e.to_string())?;
    let traces = sink.into_result().and_then(|r| r.traces).ok_or("no traces")?;
    let per_chunk = traces.len() / (side * side) * 64;
    println!("\ndeflate on the reference traces ({side}×{side}, shuffled chunks of 64 points, one thread)");
    println!("{:<10} {:>8} {:>8} {:>10}", "", "level", "ratio", "MB/s");
    for (label, size) in [("float64", 8usize), ("float32", 4)] {
        let raw: Vec<u8> = traces
            .iter()
            .flat_map(|&v| {
                if size == 8 {
                    v.to_le_bytes().to_vec()
                } else {
                    (v as f32).to_le_bytes().to_vec()
                }
            })
            .collect();
        for level in [1, 2, 3, 4, 6, 9] {
            let mut c =
                libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).map_err(|e| format!("{e:?}"))?);
            let start = Instant::now();
            let mut stored = 0;
            for chunk in raw.chunks(per_chunk * size) {
                let s = shuffle(chunk, size);
                let mut out = vec![0u8; c.zlib_compress_bound(s.len())];
                stored += c.zlib_compress(&s, &mut out).map_err(|e| format!("{e:?}"))?;
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{label:<10} {level:>8} {:>8.2} {:>10.0}",
                raw.len() as f64 / stored as f64,
                raw.len() as f64 / secs / 1e6
            );
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    let side = (args.points as f64).sqrt().round() as usize;
    let exe_dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .ok_or("no exe dir")?
        .to_path_buf();
    let cli = exe_dir.join("rustrates");
    if !cli.exists() {
        return Err(format!(
            "build {} first: cargo build --release -p rustrates-cli",
            cli.display()
        ));
    }
    // Next to the repository, on the disk the results would go to (not a tmpfs /tmp).
    let work = tempfile::tempdir_in(repo_root().join("target")).map_err(|e| e.to_string())?;
    let cases: [(&str, bool, &str, &[&str]); 6] = [
        ("summaries only", false, "", &[]),
        ("traces, uncompressed (parts, merged)", true, "", &["--no-compression"]),
        ("traces, deflate (parts, merged)", true, "", &[]),
        (
            "traces, uncompressed (direct)",
            true,
            "chunk_size: 0\n",
            &["--no-compression"],
        ),
        ("traces, deflate (direct)", true, "chunk_size: 0\n", &[]),
        (
            "traces, float32 deflate (direct)",
            true,
            "chunk_size: 0\ntrace_precision: float32\n",
            &[],
        ),
    ];
    let mut times = vec![Vec::new(); cases.len()];
    let mut sizes = vec![0u64; cases.len()];
    let mut dd = Vec::new();
    let x = work.path().join("x");
    for _ in 0..args.repeats.max(1) {
        for (i, (_, keep, extra, flags)) in cases.iter().enumerate() {
            let spec = work.path().join(format!("spec{i}.yaml"));
            std::fs::write(&spec, spec_yaml(side, args.time, *keep, extra)).map_err(|e| e.to_string())?;
            let out = work.path().join(format!("out{i}.h5"));
            let _ = std::fs::remove_file(&out);
            let mut cmd = Command::new(&cli);
            cmd.arg("sweep")
                .arg(&spec)
                .arg("--out")
                .arg(&out)
                .arg("-q")
                .arg("--threads")
                .arg(args.threads.to_string())
                .args(*flags);
            times[i].push(timed(&mut cmd)?);
            sizes[i] = std::fs::metadata(&out).map_err(|e| e.to_string())?.len();
            std::fs::remove_file(&out).map_err(|e| e.to_string())?;
        }
        let mut cmd = Command::new("dd");
        cmd.arg("if=/dev/zero")
            .arg(format!("of={}", x.display()))
            .args(["bs=1M", "count=400", "conv=fsync"]);
        dd.push(timed(&mut cmd)?);
        std::fs::remove_file(&x).map_err(|e| e.to_string())?;
    }
    let dd = median(dd);
    println!(
        "{side}×{side} points, T {}, {} samples per point, {} threads, median of {}",
        args.time,
        (args.time / (DT * EVERY as f64)).round(),
        args.threads,
        args.repeats
    );
    println!(
        "\n{:<40} {:>9} {:>11} {:>10} {:>12}",
        "whole `rustrates sweep` process", "seconds", "× summaries", "file MB", "write MB/s"
    );
    let base = median(times[0].clone());
    for (i, (label, keep, _, _)) in cases.iter().enumerate() {
        let t = median(times[i].clone());
        let mb = sizes[i] as f64 / 1e6;
        let bandwidth = if *keep {
            format!("{:.0}", mb / (t - base).max(1e-9))
        } else {
            "-".to_string()
        };
        println!("{label:<40} {t:>9.3} {:>11.2} {mb:>10.1} {bandwidth:>12}", t / base);
    }
    println!(
        "{:<40} {dd:>9.3} {:>11} {:>10.1} {:>12.0}",
        "dd bs=1M count=400 conv=fsync",
        "",
        419.4,
        419.4 / dd
    );
    deflate_levels(args.time)
}
