//! Noisy network benchmark: `network_grid.c`'s network (N QIF nodes all-to-all, the C
//! program's weights, a PyRates YAML edge list) with noise on every node's `v'`
//! (`+ s·randn()`, s = σ/√dt, Euler–Maruyama), compiled as population loops (C back end, JIT)
//! and as the JIT's unrolled code (`KernelOptions::jit_unrolled`: what a noisy network compiled
//! to before the loops drew noise), in alternating rounds in this one run.
//!
//! ```text
//! cargo build --release -p rustrates-bench --bin noise
//! target/release/noise [--n 200] [--points 16] [--time 0.05] [--sigma 0.1] [--rounds 3]
//!                      [--variants c,jit,unrolled,c-quiet,jit-quiet]
//! ```
//!
//! `c-quiet` and `jit-quiet` are the loops of the same network without the noise term (what
//! the draws cost).
//!
//! Per round and variant: compile time (lowered circuit → kernel ready, C with an empty kernel
//! cache) and run time (`solve::simulate`, one block of all points, one thread, every node's r
//! sampled at the end), and whether the r of every node and point equals the first variant's
//! bit for bit (every variant draws the same streams). The C program has no noise: ratios are
//! between the variants.

use std::time::Instant;

use rustrates::kernel::{Backend, Kernel, KernelOptions};
use rustrates::model::load_circuit;
use rustrates::model::passes::{lower_edges, specialize_params};
use rustrates::model::test_models::network_grid;
use rustrates::model::{Circuit, VarId};
use rustrates::solve::{default_init, default_params, simulate, Method, OutputBinding, SimConfig};
use rustrates::template::LoadOptions;
use rustrates_bench::Flags;

const DT: f64 = 1e-4;

const VARIANTS: [&str; 5] = ["c", "jit", "unrolled", "c-quiet", "jit-quiet"];

struct Args {
    n: usize,
    points: usize,
    time: f64,
    sigma: f64,
    rounds: usize,
    variants: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        n: 200,
        points: 16,
        time: 0.05,
        sigma: 0.1,
        rounds: 3,
        variants: vec!["c".into(), "jit".into(), "unrolled".into()],
    };
    let mut flags = Flags::from_env();
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--n" => a.n = flags.parsed(&flag)?,
            "--points" => a.points = flags.parsed(&flag)?,
            "--time" => a.time = flags.parsed(&flag)?,
            "--sigma" => a.sigma = flags.parsed(&flag)?,
            "--rounds" => a.rounds = flags.parsed(&flag)?,
            "--variants" => a.variants = flags.value(&flag)?.split(',').map(str::to_string).collect(),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if a.n == 0 || a.points == 0 || a.rounds == 0 || a.time.is_nan() || a.time <= 0.0 {
        return Err("--n, --points, --rounds and --time must be positive".into());
    }
    if let Some(v) = a.variants.iter().find(|v| !VARIANTS.contains(&v.as_str())) {
        return Err(format!("unknown variant {v} ({})", VARIANTS.join(", ")));
    }
    Ok(a)
}

/// The noisy network (without the noise term unless `noisy`) lowered, G and eta per lane, and
/// its parameters: a √P × √P-like grid (G in [0, 2] fastest, eta in [−6, −4]).
fn circuit(args: &Args, dir: &std::path::Path, noisy: bool) -> Result<(Circuit, Vec<f64>), String> {
    let s = args.sigma / DT.sqrt();
    let mut text = network_grid::yaml(args.n, 0.0, DT, |_, _| true);
    if noisy {
        text = text
            .replace("G*r_in - (pi*r)^2", "G*r_in + s*randn() - (pi*r)^2")
            .replace("    G: 1.0\n", &format!("    G: 1.0\n    s: {s:?}\n"));
        if !text.contains("randn") {
            return Err("the template has no noise term to add to".into());
        }
    }
    let path = dir.join(if noisy { "noisy.yaml" } else { "quiet.yaml" });
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let loaded =
        load_circuit(&format!("{}/Net", path.display()), &LoadOptions::default()).map_err(|e| e.to_string())?;
    let low = lower_edges(&loaded.circuit);
    let named = |suffix: &str| -> Vec<VarId> {
        (0..low.vars.len() as u32)
            .map(VarId)
            .filter(|v| low.var(*v).name.ends_with(suffix))
            .collect()
    };
    let (gs, etas) = (named("/G"), named("/eta"));
    let per_lane: Vec<VarId> = gs.iter().chain(&etas).copied().collect();
    let compiled = specialize_params(&low, &per_lane);
    let layout = compiled.layout();
    let lanes = args.points;
    let side = (lanes as f64).sqrt().ceil() as usize;
    let mut params = default_params(&compiled, lanes);
    for l in 0..lanes {
        let (g, eta) = (
            2.0 * (l % side) as f64 / (side.max(2) - 1) as f64,
            -6.0 + 2.0 * (l / side) as f64 / (side.max(2) - 1) as f64,
        );
        for (vars, value) in [(&gs, g), (&etas, eta)] {
            for v in vars {
                params[layout.slot[v.0 as usize] as usize * lanes + l] = value;
            }
        }
    }
    Ok((compiled, params))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("noise: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (c, params) = circuit(&args, work.path(), true)?;
    let (quiet, quiet_params) = circuit(&args, work.path(), false)?;
    let outputs: Vec<OutputBinding> = (0..args.n)
        .map(|i| {
            let key = format!("n{i}/qif_net_op/r");
            let var = c.find_var(&key).ok_or_else(|| format!("no {key}"))?;
            Ok(OutputBinding { key, var })
        })
        .collect::<Result<_, String>>()?;
    let steps = (args.time / DT).round() as usize;
    let cfg = SimConfig::new(Method::Euler, steps as f64 * DT, DT, Some(steps as f64 * DT));
    let init = default_init(&c, args.points);
    println!(
        "N = {}, {} points, T = {} ({steps} Euler steps), sigma = {}; one thread",
        args.n, args.points, args.time, args.sigma
    );
    println!(
        "{:>5} {:>9} {:>8} {:>10} {:>10} {:>14}",
        "round", "variant", "loops", "compile_s", "run_s", "equal_to_first"
    );
    let mut first: Option<Vec<u64>> = None;
    for round in 1..=args.rounds {
        for variant in &args.variants {
            let cache = tempfile::tempdir().map_err(|e| e.to_string())?;
            let is_quiet = variant.ends_with("-quiet");
            let (c, params) = if is_quiet {
                (&quiet, &quiet_params)
            } else {
                (&c, &params)
            };
            let opts = KernelOptions {
                backend: if variant.starts_with('c') {
                    Backend::C
                } else {
                    Backend::Jit
                },
                jit_unrolled: variant == "unrolled",
                cache_dir: Some(cache.path().to_path_buf()),
                ..KernelOptions::default()
            };
            let t0 = Instant::now();
            let k = Kernel::compile(c, &opts).map_err(|e| e.to_string())?;
            let compile = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let tr = simulate(&k, &cfg, &[], &outputs, params, &init, args.points).map_err(|e| e.to_string())?;
            let run = t1.elapsed().as_secs_f64();
            let bits: Vec<u64> = tr.data.iter().map(|x| x.to_bits()).collect();
            if bits.iter().any(|b| !f64::from_bits(*b).is_finite()) {
                return Err(format!("{variant}: a value is not finite"));
            }
            let equal = match &first {
                _ if is_quiet => "(no noise)".to_string(),
                None => {
                    first = Some(bits);
                    "(first)".to_string()
                }
                Some(f) => (f == &bits).to_string(),
            };
            println!(
                "{round:>5} {variant:>9} {:>8} {compile:>10.3} {run:>10.3} {equal:>14}",
                k.is_network()
            );
        }
    }
    Ok(())
}
