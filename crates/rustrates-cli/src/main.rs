//! The `rustrates` command line: a thin front over the `rustrates` library.
//!
//! Exit codes: 0 success, 1 the input has problems (diagnostics printed), 2 usage or I/O error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod check;
mod interrupt;
mod plot;
mod run;
mod signal;
mod spec;

#[derive(Parser)]
#[command(
    name = "rustrates",
    version,
    about = "PyRates-compatible neural population models and parameter sweeps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Extra directories searched for dotted template paths (after the built-in library and
    /// the working directory).
    #[arg(long = "search-path", global = true)]
    search_path: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, Default)]
enum DiagFormat {
    /// `file:line:col: code: message`, one line per problem.
    Concise,
    /// A code frame with carets and help.
    #[default]
    Full,
}

#[derive(Subcommand)]
enum Command {
    /// List the built-in template library.
    Templates,
    /// Print the resolved equations of every node and the edge list of a template.
    Show {
        /// Dotted path (`model_templates.montbrio.simple_montbrio.Net3`) or `file.yaml/Name`.
        template: String,
        /// Show the IR after edges are lowered into input assignments.
        #[arg(long)]
        lowered: bool,
    },
    /// Check template files: every problem of every template, with its location.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = DiagFormat::Full)]
        format: DiagFormat,
    },
    /// Simulate one parametrisation of a template and write its traces.
    Simulate(run::SimulateArgs),
    /// Run a parameter sweep described by a spec file into an HDF5 results file.
    Sweep(run::SweepArgs),
    /// Join the part files of sharded sweeps into one results file.
    Merge {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing results file at `--out`.
        #[arg(long)]
        overwrite: bool,
    },
    /// Plot a results file: a heatmap of a summary over two grid keys, and traces.
    Plot {
        file: PathBuf,
        /// Summary statistic for the heatmap.
        #[arg(long, default_value = "mean")]
        summary: String,
        /// Draw the phase diagram of the `regime` summary (over one or two grid keys)
        /// instead of a heatmap.
        #[arg(long)]
        regimes: bool,
        /// Output key (default: the first output).
        #[arg(long)]
        output: Option<String>,
        /// Grid key on the x axis (default: the first key).
        #[arg(long)]
        x: Option<String>,
        /// Grid key on the y axis (default: the second key).
        #[arg(long)]
        y: Option<String>,
        /// Heatmap PNG.
        #[arg(long, default_value = "heatmap.png")]
        out: PathBuf,
        /// Grid points (labels like `Net3_4` or indices) whose traces to draw.
        #[arg(long, value_delimiter = ',')]
        traces: Vec<String>,
        /// PNG for the traces.
        #[arg(long, default_value = "traces.png")]
        traces_out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = rustrates::template::LoadOptions {
        search_path: cli.search_path.clone(),
        cwd: None,
    };
    let result = match cli.command {
        Command::Templates => check::templates(),
        Command::Show { template, lowered } => check::show(&template, lowered, &opts),
        Command::Check { files, format } => check::check(&files, format, &opts),
        Command::Simulate(args) => run::simulate(args, &opts),
        Command::Sweep(args) => run::sweep(args, &opts),
        Command::Merge { dirs, out, overwrite } => run::merge(&dirs, &out, overwrite),
        Command::Plot {
            file,
            summary,
            regimes,
            output,
            x,
            y,
            out,
            traces,
            traces_out,
        } => plot_file(
            &file,
            if regimes { None } else { Some(&summary) },
            output.as_deref(),
            x.as_deref(),
            y.as_deref(),
            &out,
            &traces,
            &traces_out,
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause once: engine errors already quote their cause in
/// their own message (`path: reason`), which `{e:#}` would print a second time.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

#[allow(clippy::too_many_arguments)]
fn plot_file(
    file: &std::path::Path,
    summary: Option<&str>,
    output: Option<&str>,
    x: Option<&str>,
    y: Option<&str>,
    out: &std::path::Path,
    traces: &[String],
    traces_out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let result = rustrates::io::h5::read_results(file)?;
    let statistic = match summary {
        Some(summary) => Some(rustrates::sweep::Statistic::parse(summary).with_context(|| {
            format!("unknown summary `{summary}`; use mean, std, min, max, last, ptp, dominant_frequency, period, amplitude, eig_re, eig_im")
        })?),
        None => None,
    };
    let column = match output {
        Some(key) => result.columns.iter().position(|(_, k)| k == key).with_context(|| {
            let keys: Vec<&str> = result.columns.iter().map(|(_, k)| k.as_str()).collect();
            format!("no output `{key}` in {}; outputs: {}", file.display(), keys.join(", "))
        })?,
        None => 0,
    };
    if result.columns.is_empty() {
        anyhow::bail!("{} has no outputs to plot", file.display());
    }
    if let (None, Some(first)) = (statistic, result.grid_keys.first()) {
        let x_key = x.unwrap_or(first);
        // A refined file's level column is not an axis.
        let y_key = y.or(result.grid_keys[1..]
            .iter()
            .find(|k| *k != rustrates::sweep::refine::LEVEL_KEY)
            .map(String::as_str));
        plot::phase_diagram(out, &result, column, x_key, y_key)?;
        eprintln!("wrote {}", out.display());
    } else if let (None, None) = (statistic, result.grid_keys.first()) {
        eprintln!("a phase diagram needs a grid key; {} has none", file.display());
    } else if let (Some(statistic), true) = (statistic, result.grid_keys.len() >= 2 || (x.is_some() && y.is_some())) {
        let x_key = x.unwrap_or(&result.grid_keys[0]);
        let y_key = y.unwrap_or_else(|| &result.grid_keys[1]);
        plot::heatmap(
            out,
            &result,
            &plot::HeatmapArgs {
                statistic,
                column,
                x_key,
                y_key,
            },
        )?;
        eprintln!("wrote {}", out.display());
    } else {
        eprintln!(
            "a heatmap needs two grid keys; {} has {}",
            file.display(),
            result.grid_keys.len()
        );
    }
    if !traces.is_empty() {
        let Some(data) = result.traces.as_deref() else {
            anyhow::bail!("{} holds no traces (the sweep kept summaries only)", file.display());
        };
        let nc = result.columns.len();
        let nt = result.time.len();
        let mut series = Vec::new();
        for t in traces {
            let point = match result.labels.iter().position(|l| l == t) {
                Some(p) => p,
                None => t
                    .parse::<usize>()
                    .ok()
                    .filter(|&p| p < result.labels.len())
                    .with_context(|| {
                        format!(
                            "`{t}` is neither a label nor a point index below {}",
                            result.labels.len()
                        )
                    })?,
            };
            let values = (0..nt).map(|k| data[(point * nt + k) * nc + column]).collect();
            let params: Vec<String> = result
                .grid_keys
                .iter()
                .zip(&result.grid_values)
                .map(|(k, v)| format!("{k}={}", v[point]))
                .collect();
            series.push((format!("{} ({})", result.labels[point], params.join(", ")), values));
        }
        plot::lines(traces_out, &result.columns[column].1, &result.time, &series)?;
        eprintln!("wrote {}", traces_out.display());
    }
    Ok(ExitCode::SUCCESS)
}
