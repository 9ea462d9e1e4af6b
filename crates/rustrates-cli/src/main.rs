//! The `rustrates` command line: a thin front over the `rustrates` library.
//!
//! Exit codes: 0 success, 1 the input has problems (diagnostics printed), 2 usage or I/O error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod check;

#[derive(Parser)]
#[command(name = "rustrates", version, about = "PyRates-compatible neural population models and parameter sweeps")]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = rustrates::template::LoadOptions { search_path: cli.search_path.clone(), cwd: None };
    let result = match cli.command {
        Command::Templates => check::templates(),
        Command::Show { template, lowered } => check::show(&template, lowered, &opts),
        Command::Check { files, format } => check::check(&files, format, &opts),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
