//! `templates`, `show` and `check`: looking at templates without running them.

use std::path::PathBuf;
use std::process::ExitCode;

use rustrates::syntax::render;
use rustrates::template::{self, LoadOptions};

use crate::DiagFormat;

pub(crate) fn templates() -> anyhow::Result<ExitCode> {
    for (path, kind, description) in template::list_builtin() {
        let description = description
            .map(|d| d.lines().next().unwrap_or_default().to_string())
            .unwrap_or_default();
        println!("{path:<60} {kind:<16} {description}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn show(path: &str, lowered: bool, opts: &LoadOptions) -> anyhow::Result<ExitCode> {
    match rustrates::model::load_circuit(path, opts) {
        Ok(loaded) => {
            if !loaded.warnings.is_empty() {
                eprint!("{}", render::render_all_full(&loaded.warnings, &loaded.sources));
            }
            let circuit = if lowered {
                rustrates::model::passes::lower_edges(&loaded.circuit)
            } else {
                loaded.circuit
            };
            print!("{}", rustrates::model::dump(&circuit));
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            eprint!("{}", render::render_all_full(&failure.diagnostics, &failure.sources));
            Ok(ExitCode::from(1))
        }
    }
}

pub(crate) fn check(files: &[PathBuf], format: DiagFormat, opts: &LoadOptions) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for file in files {
        let report = rustrates::model::check_file(file, opts);
        if !report.diagnostics.is_empty() {
            let text = match format {
                DiagFormat::Concise => render::render_all_concise(&report.diagnostics, &report.sources),
                DiagFormat::Full => render::render_all_full(&report.diagnostics, &report.sources),
            };
            eprint!("{text}");
        }
        if report.diagnostics.has_errors() {
            failed = true;
            eprintln!("{}: {} problem(s)", file.display(), report.diagnostics.len());
            continue;
        }
        for t in &report.templates {
            println!(
                "{}: {} ({}): {} node(s), {} edge(s), {} state(s), {} parameter(s), {} input(s)",
                file.display(),
                t.name,
                t.kind.class_name(),
                t.n_nodes,
                t.n_edges,
                t.n_states,
                t.n_params,
                t.n_inputs
            );
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
