//! Engine errors → Python exceptions. Every exception carries the rendered diagnostics as its
//! message and a `diagnostics` attribute: a list of dicts (code, message, file, line, col,
//! path, severity, help), so notebooks can show them and tools can read them.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3::{create_exception, exceptions::PyException};

use rustrates::syntax::{render, Diagnostic, Diagnostics, Severity, SourceMap};

create_exception!(
    rustrates,
    RustratesError,
    PyException,
    "Base class of rustrates' errors; `diagnostics` lists the problems as dicts."
);
create_exception!(
    rustrates,
    TemplateError,
    RustratesError,
    "A template could not be loaded (YAML, paths, inheritance)."
);
create_exception!(
    rustrates,
    EquationError,
    RustratesError,
    "An equation in a template is invalid."
);
create_exception!(
    rustrates,
    SolverError,
    RustratesError,
    "The simulation could not run (settings, inputs, compiling)."
);
create_exception!(
    rustrates,
    SweepError,
    RustratesError,
    "The sweep's grid, param_map, inputs or outputs are invalid."
);

/// Which exception class a problem maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Template,
    Equation,
    Solver,
    Sweep,
}

/// One diagnostic, the engine's own, with its location as data (`render::location`: file,
/// line, col when it has a span) and its text as the engine's renderer writes it
/// (`syntax::render_concise`, the CLI's concise form).
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    pub diagnostic: Diagnostic,
    pub location: Option<(String, usize, usize)>,
    rendered: String,
}

impl Located {
    pub fn from_diagnostic(d: &Diagnostic, sources: &SourceMap) -> Located {
        let rendered = match d.severity {
            Severity::Error => render::render_concise(d, sources),
            Severity::Warning => format!("warning: {}", render::render_concise(d, sources)),
        };
        Located {
            diagnostic: d.clone(),
            location: d.span.and_then(|span| render::location(span, sources)),
            rendered,
        }
    }

    /// A problem without a source location (a bad argument, a runtime failure); `path` names
    /// the argument it concerns.
    pub fn plain(code: &'static str, message: String, path: &str) -> Located {
        Located::unlocated(code, message, path, None)
    }

    /// As [`Located::plain`], with a hint.
    pub fn unlocated(code: &'static str, message: String, path: &str, help: Option<String>) -> Located {
        let d = Diagnostic::error(code, message);
        // The argument is not a template path: it is not printed as ` (in ...)`.
        let rendered = render::render_concise(&d, &SourceMap::new());
        Located {
            diagnostic: Diagnostic {
                path: path.to_string(),
                help,
                ..d
            },
            location: None,
            rendered,
        }
    }

    /// The engine's concise line, then the help.
    pub fn render(&self) -> String {
        match &self.diagnostic.help {
            Some(help) => format!("{}\n  help: {help}", self.rendered),
            None => self.rendered.clone(),
        }
    }
}

/// A Python exception of `kind` whose message is every diagnostic rendered, one per line.
pub fn to_pyerr(py: Python<'_>, kind: Kind, items: &[Located]) -> PyErr {
    let message = items.iter().map(Located::render).collect::<Vec<_>>().join("\n");
    let err = match kind {
        Kind::Template => TemplateError::new_err(message),
        Kind::Equation => EquationError::new_err(message),
        Kind::Solver => SolverError::new_err(message),
        Kind::Sweep => SweepError::new_err(message),
    };
    if let Err(e) = attach_diagnostics(py, &err, items) {
        return e;
    }
    err
}

fn attach_diagnostics(py: Python<'_>, err: &PyErr, items: &[Located]) -> PyResult<()> {
    let list = PyList::empty(py);
    for item in items {
        let d = &item.diagnostic;
        let (file, line, col) = match &item.location {
            Some((file, line, col)) => (Some(file), Some(line), Some(col)),
            None => (None, None, None),
        };
        let dict = PyDict::new(py);
        dict.set_item("code", d.code)?;
        dict.set_item("message", &d.message)?;
        dict.set_item("file", file)?;
        dict.set_item("line", line)?;
        dict.set_item("col", col)?;
        dict.set_item("path", &d.path)?;
        dict.set_item("severity", d.severity.name())?;
        dict.set_item("help", &d.help)?;
        list.append(dict)?;
    }
    err.value(py).setattr("diagnostics", list)
}

/// An argument error naming the argument.
pub fn arg_err(py: Python<'_>, kind: Kind, argument: &str, message: String) -> PyErr {
    to_pyerr(py, kind, &[Located::plain("argument/invalid", message, argument)])
}

/// An engine sweep error as the exception of its kind, one diagnostic per problem with the
/// engine's code and argument (`SweepError::problems`): nothing is re-mapped here.
/// An I/O error of the engine's results files: a sweep error as [`engine_error`], a missing
/// file as `FileNotFoundError`, anything else a `SweepError` naming `argument` (the file or
/// directory argument it concerns).
pub fn io_error(py: Python<'_>, e: &rustrates::io::IoError, argument: &str) -> PyErr {
    use rustrates::io::IoError;
    match e {
        IoError::Sweep(s) => engine_error(py, s),
        IoError::Fs { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            pyo3::exceptions::PyFileNotFoundError::new_err(e.to_string())
        }
        _ => to_pyerr(py, Kind::Sweep, &[Located::plain("io", e.to_string(), argument)]),
    }
}

pub fn engine_error(py: Python<'_>, e: &rustrates::sweep::SweepError) -> PyErr {
    let problems = e.problems();
    let kind = match problems.first().map(|p| p.code) {
        Some(code) if code.starts_with("solve") || code.starts_with("kernel") || code == "sweep/threads" => {
            Kind::Solver
        }
        _ => Kind::Sweep,
    };
    let items: Vec<Located> = problems
        .into_iter()
        .map(|p| Located::unlocated(p.code, p.message, &p.argument, p.help))
        .collect();
    to_pyerr(py, kind, &items)
}

/// Errors of a failed load: equation problems (codes `eq/...`) make an [`EquationError`],
/// everything else a [`TemplateError`]. Only errors are listed; warnings stay warnings.
pub fn load_failure(py: Python<'_>, diagnostics: &Diagnostics, sources: &SourceMap) -> PyErr {
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
    let shown: Vec<&Diagnostic> = if errors.is_empty() {
        diagnostics.iter().collect()
    } else {
        errors
    };
    let kind = if shown.iter().any(|d| d.code.starts_with("eq")) {
        Kind::Equation
    } else {
        Kind::Template
    };
    let items: Vec<Located> = shown.iter().map(|d| Located::from_diagnostic(d, sources)).collect();
    to_pyerr(py, kind, &items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustrates::syntax::Span;

    #[test]
    fn render_with_span_gives_file_line_col_code_message() {
        let text = "Op:\n  base: OperatorTemplate\n  equations: \"d/dt * r = q\"\n";
        let mut sources = SourceMap::new();
        let file = sources.add("models/net.yaml", text);
        let start = u32::try_from(text.find("q\"").expect("the symbol q")).expect("a small text");
        let d = Diagnostic::error("eq/undefined-symbol", "unknown symbol 'q'")
            .with_span(Span::new(file, start, start + 1))
            .with_path("Op.equations[0]")
            .with_help("declare 'q' under variables");
        let loc = Located::from_diagnostic(&d, &sources);
        assert_eq!(loc.location, Some(("models/net.yaml".to_string(), 3, 26)));
        assert_eq!(
            loc.render(),
            "models/net.yaml:3:26: eq/undefined-symbol: unknown symbol 'q' (in Op.equations[0])\n  help: declare 'q' under variables"
        );
    }

    #[test]
    fn render_without_span_is_code_and_message() {
        let loc = Located::plain(
            "sweep/param-map",
            "param_map['x']: unknown node 'P'".into(),
            "param_map",
        );
        assert_eq!(loc.render(), "sweep/param-map: param_map['x']: unknown node 'P'");
    }
}
