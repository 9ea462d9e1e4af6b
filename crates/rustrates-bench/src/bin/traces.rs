//! Traces to disk: the whole `rustrates sweep` process keeping traces, against the same sweep
//! keeping summaries only and against the machine's own write speed (`dd ... conv=fsync`),
//! all in this one run; and the deflate level measured on the reference sweep's own traces.
//!
//! ```text
//! cargo build --release -p rustrates-cli -p rustrates-bench
//! target/release/traces [--points 10000] [--threads 2] [--repeats 3] [--simulation-time 5]
//!                        [--pyrates-python /path/to/venv/bin/python]
//!                        [--uncompressed-only] [--env-case VAR=VALUE[,VAR=VALUE...]]...
//! ```
//!
//! Process cases (the reference sweep of `shared/bench`: r of PC every 10 steps, 5,000 samples
//! per point at T 5): summaries only; traces by the default route (one file, uncompressed:
//! its chunks written `O_DIRECT` where the filesystem takes it), and the same with
//! `RUSTRATES_DIRECT_IO=0` (through the page cache, as before); deflated (`--compress`); as
//! float32, plain and deflated; and through part files of 4,096 points (`chunk_size: 4096`:
//! resumable, merged). Each is the median of `--repeats` runs, the cases interleaved, each
//! (and `dd`) started from the same state ([`settle`]: the disk idle, the memory the case
//! before freed returned to the host). Reports seconds, × the summaries-only sweep, file size,
//! write bandwidth (file bytes / the time beyond the summaries-only sweep's) and the process'
//! peak resident memory (the largest of the runs), checked against the bound the design gives
//! ([`rss_bound_mb`]); `dd` buffered and with `oflag=direct`; and per case what the disk did
//! while it ran (anyone's I/O: dirty MB at its start, MB written and discarded, seconds of
//! write requests). Then the codec alone on the reference traces: shuffle, and shuffle +
//! deflate per level, one thread. Then reading a file back with the engine's reader (whole,
//! a tenth of the points, without traces; uncompressed from the disk, the chunks having been
//! written `O_DIRECT`, deflated from the page cache).
//!
//! With `--pyrates-python`: the 50×50 sweep keeping traces, end to end, against its
//! summaries-only sweep and against PyRates 1.x's `grid_search` of the same sweep, estimated
//! from PyRates' 20×20 and 30×30 timed in this run (its 50×50 takes ≈ 10 minutes) by the
//! power law through them (its cost per point grows with the grid), and for comparison by the
//! 20×20's cost per point.
//!
//! For A/B comparisons of the uncompressed write path: `--uncompressed-only` keeps the first
//! three cases (summaries, traces default, page cache) and the `dd` runs, and skips reading
//! back and the deflate levels; each `--env-case VAR=VALUE[,VAR=VALUE...]` adds the default
//! traces case run with these variables in its environment, interleaved with the others (a switch the engine
//! reads, e.g. `RUSTRATES_DIRECT_IO=0`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rustrates::sweep::MemorySink;
use rustrates_bench::{
    median, reference_spec, reference_spec_yaml, repo_root, run_process_with_peak, sweep_command, Flags, DT, EVERY,
};

struct Args {
    points: usize,
    threads: usize,
    repeats: usize,
    time: f64,
    pyrates_python: Option<PathBuf>,
    uncompressed_only: bool,
    env_cases: Vec<Vec<(String, String)>>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        points: 10_000,
        threads: 2,
        repeats: 3,
        time: 5.0,
        pyrates_python: None,
        uncompressed_only: false,
        env_cases: Vec::new(),
    };
    let mut flags = Flags::from_env();
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--points" => a.points = flags.parsed(&flag)?,
            "--threads" => a.threads = flags.parsed(&flag)?,
            "--repeats" => a.repeats = flags.parsed(&flag)?,
            "--simulation-time" => a.time = flags.parsed(&flag)?,
            "--pyrates-python" => a.pyrates_python = Some(flags.value(&flag)?.into()),
            "--uncompressed-only" => a.uncompressed_only = true,
            "--env-case" => {
                let v = flags.value(&flag)?;
                let pairs = v
                    .split(',')
                    .map(|pair| {
                        pair.split_once('=')
                            .filter(|(var, _)| !var.is_empty())
                            .map(|(var, value)| (var.to_string(), value.to_string()))
                            .ok_or_else(|| format!("--env-case takes VAR=VALUE[,VAR=VALUE...], not {v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                a.env_cases.push(pairs);
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// The peak memory the design allows a sweep process keeping traces, in MB: the writer's
/// queue ([`rustrates::io::h5::QUEUE_BYTES`]); per worker thread the block it computes into
/// and the three buffers of encoding one (raw bytes, shuffled, deflated: each at most a
/// block); the block the writer is writing, the chunks its I/O threads write
/// ([`rustrates::io::h5::DIRECT_IO_THREADS`]) and one chunk it assembles; the written chunks'
/// buffers it keeps for the next encodes ([`rustrates::io::h5::SPARE_BUFFERS`]); and what the process
/// holds without traces (the summaries-only run's peak, measured: code, HDF5, the kernel).
///
/// RSS counts freed memory that glibc's per-thread arenas keep for reuse rather than return at
/// once (blocks of a few MB are freed and reallocated on every thread), so the bound allows
/// [`ALLOCATOR_SLACK`] above the live bytes: a quiet run measured 184 MB against 182 MB live.
fn rss_bound_mb(block_bytes: f64, threads: usize, summaries_peak_mb: f64) -> f64 {
    let blocks = (4 * threads + 2 + rustrates::io::h5::DIRECT_IO_THREADS + rustrates::io::h5::SPARE_BUFFERS) as f64;
    ((rustrates::io::h5::QUEUE_BYTES as f64 + block_bytes * blocks) / 1e6 + summaries_peak_mb) * (1.0 + ALLOCATOR_SLACK)
}

/// The share of the bound allowed for memory the allocator holds freed but not yet returned.
const ALLOCATOR_SLACK: f64 = 0.05;

/// Puts every timed case in the same state: the filesystem holding `dir` has written back
/// every dirty page and committed its journal (`syncfs`), so the disk is idle; then a pause of
/// [`SETTLE_PAUSE`], so the memory the case before freed (its file's page cache, dropped with
/// the file) has been handed back to the host. This VM reports free pages to its host
/// (virtio-balloon free page reporting, `page_reporting.min_free_ms` 0), and a page the host
/// took back costs a host fault and zeroing when touched again. The same traces sweep spent
/// 0.07–0.17 or 0.45–0.83 s of system time from one run to the next, much of it in the
/// page-cache copy: what warm or cold pages would do (likely, not proven under load). Cold
/// pages are what a sweep meets when nothing large was freed just before it, so every case
/// gets them.
fn settle(dir: &Path) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let d = std::fs::File::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: a valid open descriptor for the call's duration.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(format!("syncfs {}: {}", dir.display(), std::io::Error::last_os_error()));
    }
    std::thread::sleep(SETTLE_PAUSE);
    Ok(())
}

/// Longer than the kernel's page reporting delay (2 s: `PAGE_REPORTING_DELAY`).
const SETTLE_PAUSE: std::time::Duration = std::time::Duration::from_secs(3);

/// Dirty and under-writeback page cache of the whole machine (`/proc/meminfo`), MB: other
/// processes' writes the disk is busy with when a case starts.
fn dirty_mb() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| -> Option<f64> {
        let line = meminfo.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((kib("Dirty:")? + kib("Writeback:")?) * 1024.0 / 1e6)
}

/// The block device a directory is on, read through its I/O counters
/// (`/sys/dev/block/MAJOR:MINOR/stat`, the kernel's iostats: all processes' I/O to it).
struct Disk {
    stat: PathBuf,
}

/// Counters of [`Disk`] at one moment, or their growth over a case.
#[derive(Clone, Copy)]
struct DiskCounters {
    written_sectors: u64,
    /// Milliseconds write requests spent queued and in service, summed over requests.
    write_ms: u64,
    discarded_sectors: u64,
}

impl Disk {
    fn of(dir: &Path) -> Option<Disk> {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(dir).ok()?.dev();
        let stat = PathBuf::from(format!("/sys/dev/block/{}:{}/stat", libc::major(dev), libc::minor(dev)));
        stat.exists().then_some(Disk { stat })
    }

    fn counters(&self) -> Option<DiskCounters> {
        let text = std::fs::read_to_string(&self.stat).ok()?;
        let fields: Vec<u64> = text.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        // Fields 7 and 8 (1-based): sectors written, write ticks; 14: sectors discarded.
        Some(DiskCounters {
            written_sectors: *fields.get(6)?,
            write_ms: *fields.get(7)?,
            discarded_sectors: fields.get(13).copied().unwrap_or(0),
        })
    }
}

impl DiskCounters {
    fn since(self, before: DiskCounters) -> DiskCounters {
        DiskCounters {
            written_sectors: self.written_sectors.saturating_sub(before.written_sectors),
            write_ms: self.write_ms.saturating_sub(before.write_ms),
            discarded_sectors: self.discarded_sectors.saturating_sub(before.discarded_sectors),
        }
    }
}

/// Per case, the medians over its runs of what the machine had dirty when it started and
/// what the disk wrote and discarded while it ran (anyone's I/O: a case that wrote far more
/// than its file shared the disk).
fn print_disk_use(labels: &[&str], runs: &[Vec<(Option<f64>, Option<DiskCounters>)>]) {
    println!(
        "\n{:<42} {:>9} {:>11} {:>10} {:>12}",
        "the disk during each case (medians)", "dirty MB", "written MB", "write s", "discarded MB"
    );
    for (label, runs) in labels.iter().zip(runs) {
        let dirty = runs.iter().map(|r| r.0).collect::<Option<Vec<_>>>().map(median);
        let disk = runs.iter().map(|r| r.1).collect::<Option<Vec<_>>>();
        let column = |f: &dyn Fn(&DiskCounters) -> f64| {
            disk.as_ref()
                .map_or("-".to_string(), |d| format!("{:.1}", median(d.iter().map(f).collect())))
        };
        println!(
            "{label:<42} {:>9} {:>11} {:>10} {:>12}",
            dirty.map_or("-".to_string(), |d| format!("{d:.1}")),
            column(&|d| d.written_sectors as f64 * 512.0 / 1e6),
            column(&|d| d.write_ms as f64 / 1e3),
            column(&|d| d.discarded_sectors as f64 * 512.0 / 1e6),
        );
    }
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
    let circuit = rustrates_bench::reference_circuit()?;
    let spec = reference_spec(side, time, true, &[]);
    let mut sink = MemorySink::new();
    rustrates::sweep::run_with(&spec, &circuit, &mut sink, Default::default()).map_err(|e| e.to_string())?;
    let traces = sink.into_result().and_then(|r| r.traces).ok_or("no traces")?;
    let per_chunk = traces.len() / (side * side) * 64;
    println!("\ndeflate on the reference traces ({side}×{side}, shuffled chunks of 64 points, one thread)");
    println!("{:<10} {:>18} {:>8} {:>10}", "", "codec", "ratio", "MB/s");
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
        let start = Instant::now();
        let shuffled: Vec<Vec<u8>> = raw.chunks(per_chunk * size).map(|c| shuffle(c, size)).collect();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{label:<10} {:>18} {:>8.2} {:>10.0}",
            "shuffle only",
            1.0,
            raw.len() as f64 / secs / 1e6
        );
        // Level 0 is deflate's stored blocks (a standard stream, no compression); "no
        // shuffle" is the deflate filter alone.
        for (name, level, shuffled_first) in [
            ("deflate 0", 0, true),
            ("deflate 1", 1, true),
            ("deflate 1 no shuf.", 1, false),
            ("deflate 2", 2, true),
            ("deflate 4", 4, true),
            ("deflate 6", 6, true),
            ("deflate 9", 9, true),
        ] {
            let mut c =
                libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).map_err(|e| format!("{e:?}"))?);
            let start = Instant::now();
            let mut stored = 0;
            for (chunk, shuffled) in raw.chunks(per_chunk * size).zip(&shuffled) {
                let input: &[u8] = if shuffled_first { shuffled } else { chunk };
                let mut out = vec![0u8; c.zlib_compress_bound(input.len())];
                stored += c.zlib_compress(input, &mut out).map_err(|e| format!("{e:?}"))?;
            }
            // The shuffle's own time counts where it is part of the filter pipeline.
            let secs = start.elapsed().as_secs_f64() + if shuffled_first { secs } else { 0.0 };
            println!(
                "{label:<10} {name:>18} {:>8.2} {:>10.0}",
                raw.len() as f64 / stored as f64,
                raw.len() as f64 / secs / 1e6
            );
        }
    }
    Ok(())
}

/// A process case: label, keeps traces, extra spec lines, command-line flags, environment.
type Case<'a> = (String, bool, &'a str, &'a [&'a str], &'a [(String, String)]);

fn main() {
    rustrates_bench::exit_on_error(real_main());
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    let side = (args.points as f64).sqrt().round() as usize;
    let cli = rustrates_bench::cli_beside_bench()?;
    if !cli.exists() {
        return Err(format!(
            "build {} first: cargo build --release -p rustrates-cli",
            cli.display()
        ));
    }
    // Next to the repository, on the disk the results would go to (not a tmpfs /tmp).
    let work = tempfile::tempdir_in(repo_root().join("target")).map_err(|e| e.to_string())?;
    // Not a command-line flag: the case runs with `RUSTRATES_DIRECT_IO=0` in its environment.
    const BUFFERED: &str = "RUSTRATES_DIRECT_IO=0";
    let all_cases: [(&str, bool, &str, &[&str]); 7] = [
        ("summaries only", false, "", &[]),
        ("traces, default (one file, uncompressed)", true, "", &[]),
        ("traces, uncompressed, RUSTRATES_DIRECT_IO=0", true, "", &[BUFFERED]),
        ("traces, --compress (deflate)", true, "", &["--compress"]),
        ("traces, float32", true, "trace_precision: float32\n", &[]),
        (
            "traces, float32 --compress",
            true,
            "trace_precision: float32\n",
            &["--compress"],
        ),
        ("traces, parts of 4,096 points, merged", true, "chunk_size: 4096\n", &[]),
    ];
    let mut cases: Vec<Case<'_>> = all_cases
        .iter()
        .take(if args.uncompressed_only { 3 } else { all_cases.len() })
        .map(|&(label, keep, extra, flags)| (label.to_string(), keep, extra, flags, &[][..]))
        .collect();
    for env in &args.env_cases {
        let vars: Vec<String> = env.iter().map(|(var, value)| format!("{var}={value}")).collect();
        cases.push((format!("traces, {}", vars.join(",")), true, "", &[], env));
    }
    let mut times = vec![Vec::new(); cases.len()];
    let mut peaks = vec![0.0f64; cases.len()];
    let mut sizes = vec![0u64; cases.len()];
    let mut disk_use = vec![Vec::new(); cases.len()];
    let mut dd = [Vec::new(), Vec::new()];
    let x = work.path().join("x");
    let disk = Disk::of(work.path());
    for _ in 0..args.repeats.max(1) {
        for (i, (_, keep, extra, flags, env)) in cases.iter().enumerate() {
            let spec = work.path().join(format!("spec{i}.yaml"));
            std::fs::write(&spec, reference_spec_yaml(side, args.time, *keep, extra)).map_err(|e| e.to_string())?;
            let out = work.path().join(format!("out{i}.h5"));
            let _ = std::fs::remove_file(&out);
            let mut cmd = sweep_command(&cli, &spec, &out, args.threads);
            for flag in *flags {
                if *flag == BUFFERED {
                    cmd.env(rustrates::io::h5::DIRECT_IO_ENV, "0");
                } else {
                    cmd.arg(flag);
                }
            }
            for (var, value) in env.iter() {
                cmd.env(var, value);
            }
            settle(work.path())?;
            let (dirty, before) = (dirty_mb(), disk.as_ref().and_then(Disk::counters));
            let (secs, peak) = run_process_with_peak(&mut cmd)?;
            let after = disk.as_ref().and_then(Disk::counters);
            disk_use[i].push((dirty, before.zip(after).map(|(b, a)| a.since(b))));
            times[i].push(secs);
            peaks[i] = peaks[i].max(peak);
            sizes[i] = std::fs::metadata(&out).map_err(|e| e.to_string())?.len();
            std::fs::remove_file(&out).map_err(|e| e.to_string())?;
        }
        for (k, extra) in [None, Some("oflag=direct")].into_iter().enumerate() {
            let mut cmd = Command::new("dd");
            cmd.arg("if=/dev/zero")
                .arg(format!("of={}", x.display()))
                .args(["bs=1M", "count=400", "conv=fsync"])
                .args(extra);
            settle(work.path())?;
            dd[k].push(run_process_with_peak(&mut cmd)?.0);
            std::fs::remove_file(&x).map_err(|e| e.to_string())?;
        }
    }
    let dd_runs = dd.clone();
    let dd = dd.map(median);
    println!(
        "{side}×{side} points, T {}, {} samples per point, {} threads, median of {}",
        args.time,
        (args.time / (DT * EVERY as f64)).round(),
        args.threads,
        args.repeats
    );
    println!(
        "\n{:<42} {:>9} {:>11} {:>10} {:>12} {:>9}",
        "whole `rustrates sweep` process", "seconds", "× summaries", "file MB", "write MB/s", "peak MB"
    );
    let base = median(times[0].clone());
    let samples = (args.time / (DT * EVERY as f64)).round();
    // One block of the default 64 points × the samples of one column, as float64.
    let block_bytes = 64.0 * samples * 8.0;
    let bound = rss_bound_mb(block_bytes, args.threads, peaks[0]);
    let mut over = Vec::new();
    for (i, (label, keep, _, _, _)) in cases.iter().enumerate() {
        let t = median(times[i].clone());
        let mb = sizes[i] as f64 / 1e6;
        let bandwidth = if *keep && t > base {
            format!("{:.0}", mb / (t - base).max(1e-9))
        } else {
            "-".to_string()
        };
        println!(
            "{label:<42} {t:>9.3} {:>11.2} {mb:>10.1} {bandwidth:>12} {:>9.0}",
            t / base,
            peaks[i]
        );
        if *keep && peaks[i] > bound {
            over.push(format!("{label}: {:.0} MB", peaks[i]));
        }
    }
    for (label, t) in [("dd bs=1M count=400 conv=fsync", dd[0]), ("dd ... oflag=direct", dd[1])] {
        println!(
            "{label:<42} {t:>9.3} {:>11.2} {:>10.1} {:>12.0}",
            t / base,
            419.4,
            419.4 / t
        );
    }
    println!("\nevery run, seconds, in the order run");
    for (i, (label, ..)) in cases.iter().enumerate() {
        let runs: Vec<String> = times[i].iter().map(|t| format!("{t:.3}")).collect();
        println!("{label:<42} {}", runs.join(" "));
    }
    for (label, runs) in ["dd bs=1M count=400 conv=fsync", "dd ... oflag=direct"]
        .iter()
        .zip(&dd_runs)
    {
        let runs: Vec<String> = runs.iter().map(|t| format!("{t:.3}")).collect();
        println!("{label:<42} {}", runs.join(" "));
    }
    print_disk_use(&cases.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), &disk_use);
    println!(
        "peak memory bound for traces: {bound:.0} MB (queue {} MB + {} blocks of {:.1} MB + summaries-only peak {:.0} MB, + {:.0} % allocator slack)",
        rustrates::io::h5::QUEUE_BYTES / 1_000_000,
        4 * args.threads + 2 + rustrates::io::h5::DIRECT_IO_THREADS + rustrates::io::h5::SPARE_BUFFERS,
        block_bytes / 1e6,
        peaks[0],
        ALLOCATOR_SLACK * 100.0
    );
    if !over.is_empty() {
        return Err(format!("peak memory above the bound: {}", over.join(", ")));
    }
    if args.uncompressed_only {
        return Ok(());
    }
    read_back(&args, &cli, work.path(), side)?;
    if let Some(python) = &args.pyrates_python {
        against_pyrates(&args, &cli, python, work.path())?;
    }
    deflate_levels(args.time)
}

/// Reading traces back through the engine's reader, in this process, from a file just written
/// (uncompressed: from the disk, its chunks were written `O_DIRECT`; deflated: from the page
/// cache): the whole file, a tenth of its points, and the file without its traces;
/// uncompressed and deflated. MB/s counts the traces' values as float64.
fn read_back(args: &Args, cli: &Path, work: &Path, side: usize) -> Result<(), String> {
    use rustrates::io::h5::{read_results_selected, ReadSelection};
    println!(
        "\nreading back ({side}×{side}, engine's reader, file just written, median of {})",
        args.repeats.max(1)
    );
    println!("{:<42} {:>9} {:>12}", "what", "seconds", "traces MB/s");
    let n = side * side;
    for (label, flags) in [("uncompressed", &[][..]), ("--compress", &["--compress"][..])] {
        let spec = work.join("spec_read.yaml");
        std::fs::write(&spec, reference_spec_yaml(side, args.time, true, "")).map_err(|e| e.to_string())?;
        let out = work.join("read.h5");
        let _ = std::fs::remove_file(&out);
        let mut cmd = sweep_command(cli, &spec, &out, args.threads);
        cmd.args(flags);
        run_process_with_peak(&mut cmd)?;
        let selections = [
            ("whole file", ReadSelection::default()),
            (
                "a tenth of the points",
                ReadSelection {
                    points: Some(0..n / 10),
                    ..ReadSelection::default()
                },
            ),
            (
                "no traces (result map, status)",
                ReadSelection {
                    traces: false,
                    ..ReadSelection::default()
                },
            ),
        ];
        for (what, selection) in selections {
            let mut secs = Vec::new();
            let mut bytes = 0.0;
            for _ in 0..args.repeats.max(1) {
                let start = Instant::now();
                let r = read_results_selected(&out, &selection).map_err(|e| e.to_string())?;
                secs.push(start.elapsed().as_secs_f64());
                bytes = r.traces.map_or(0.0, |t| (t.len() * 8) as f64);
            }
            let t = median(secs);
            let rate = if bytes > 0.0 {
                format!("{:.0}", bytes / 1e6 / t)
            } else {
                "-".to_string()
            };
            println!("{:<42} {t:>9.3} {rate:>12}", format!("{label}: {what}"));
        }
        std::fs::remove_file(&out).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// PyRates' `grid_search` of the reference sweep (T 5 as here): `python script.py TEMPLATE n`.
const PYRATES_SCRIPT: &str = include_str!("../pyrates_grid_search.py");

/// 50×50 with traces end to end against its summaries-only sweep and against PyRates.
fn against_pyrates(args: &Args, cli: &Path, python: &Path, work: &Path) -> Result<(), String> {
    if (args.time - 5.0).abs() > 1e-12 {
        return Err("--pyrates-python needs --simulation-time 5 (the PyRates script's T)".into());
    }
    let side = 50;
    let mut ours = [Vec::new(), Vec::new()];
    for _ in 0..args.repeats.max(1) {
        for (i, keep) in [false, true].into_iter().enumerate() {
            let spec = work.join(format!("spec50_{keep}.yaml"));
            std::fs::write(&spec, reference_spec_yaml(side, args.time, keep, "")).map_err(|e| e.to_string())?;
            let out = work.join(format!("out50_{keep}.h5"));
            let _ = std::fs::remove_file(&out);
            let mut cmd = sweep_command(cli, &spec, &out, args.threads);
            ours[i].push(run_process_with_peak(&mut cmd)?.0);
            std::fs::remove_file(&out).map_err(|e| e.to_string())?;
        }
    }
    let script = work.join("pyrates_grid_search.py");
    std::fs::write(&script, PYRATES_SCRIPT).map_err(|e| e.to_string())?;
    let template = repo_root().join("examples/models/reference_qif");
    // PyRates' cost per point grows with the grid (measured: CPU time ≈ quadratic in points
    // from 20×20 to 40×40), so 50×50 is estimated from two sizes timed here, by the power law
    // through them, next to the per-point scaling of the smaller one.
    let mut pyrates = Vec::new();
    for n in [20usize, 30] {
        let (secs, _) = run_process_with_peak(
            Command::new(python)
                .arg(&script)
                .arg(format!("{}/pc_iin", template.display()))
                .arg(n.to_string()),
        )?;
        pyrates.push(((n * n) as f64, secs));
    }
    let [(n20, t20), (n30, t30)] = [pyrates[0], pyrates[1]];
    let points50 = (side * side) as f64;
    let exponent = (t30 / t20).ln() / (n30 / n20).ln();
    let py50 = t30 * (points50 / n30).powf(exponent);
    let py50_per_point = t20 / n20 * points50;
    let (summaries, traces) = (median(ours[0].clone()), median(ours[1].clone()));
    println!(
        "
50×50, T {}, whole processes ({} threads, median of {})",
        args.time, args.threads, args.repeats
    );
    println!("summaries only                           {summaries:>9.3} s");
    println!(
        "traces, default                          {traces:>9.3} s  {:.2}× summaries only",
        traces / summaries
    );
    println!("PyRates 20×20 grid_search                {t20:>9.1} s");
    println!("PyRates 30×30 grid_search                {t30:>9.1} s  (time ∝ points^{exponent:.2})");
    println!(
        "PyRates 50×50 estimated                  {py50:>9.0} s  (per-point scaling of 20×20: {py50_per_point:.0} s)"
    );
    println!(
        "speed-up on 50×50 with traces            {:>9.0}×  (per-point scaling: {:.0}×)",
        py50 / traces,
        py50_per_point / traces
    );
    Ok(())
}
