//! The public entry point: a template path → a checked (not yet lowered) circuit.

use std::fmt;

use crate::syntax::{Diagnostic, Diagnostics, SourceMap};
use crate::template::{LoadOptions, Loader, TemplateKind};

use super::Circuit;

/// A loaded circuit with everything needed to report on it.
#[derive(Debug)]
pub struct Loaded {
    /// The circuit as written (edges not lowered).
    pub circuit: Circuit,
    pub sources: SourceMap,
    pub warnings: Diagnostics,
    /// The YAML of the file that defines the circuit (stored in results files).
    pub source_text: String,
}

/// Loading failed; `diagnostics` holds every problem found.
#[derive(Debug)]
pub struct LoadFailure {
    pub sources: SourceMap,
    pub diagnostics: Diagnostics,
}

impl fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for d in self.diagnostics.iter() {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "{}", concise(&self.sources, d))?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadFailure {}

/// `file:line:col: code: message (in PATH)`: the concise renderer of `syntax::render`.
pub fn concise(sources: &SourceMap, d: &Diagnostic) -> String {
    crate::syntax::render::render_concise(d, sources)
}

/// Load and build the circuit a template path names (`model_templates.x.y.Net`,
/// `dir/file.yaml/Net`, `dir/file/Net`). A node template loads as a one-node circuit.
pub fn load_circuit(path: &str, opts: &LoadOptions) -> Result<Loaded, LoadFailure> {
    let mut l = Loader::new(opts);
    let t = l.resolve_path(path);
    let mut diags = std::mem::take(&mut l.diags);
    let Some(t) = t else {
        return Err(LoadFailure {
            sources: l.sources,
            diagnostics: crate::template::dedup(diags),
        });
    };
    if matches!(t.kind(), TemplateKind::Operator | TemplateKind::Edge) {
        diags.push(
            Diagnostic::error(
                "template/wrong-kind",
                format!(
                    "`{path}` is an {}; give a CircuitTemplate or NodeTemplate",
                    t.kind().class_name()
                ),
            )
            .with_span(t.span)
            .with_path(t.name.clone()),
        );
    }
    let source_text = l.source_text_of(&t);
    let (circuit, bd) = super::build::build_template(&t, &mut l.sources);
    diags.extend(bd);
    let diags = crate::template::dedup(diags);
    match circuit {
        Some(circuit) if !diags.has_errors() => Ok(Loaded {
            circuit,
            sources: l.sources,
            warnings: diags,
            source_text,
        }),
        _ => Err(LoadFailure {
            sources: l.sources,
            diagnostics: diags,
        }),
    }
}
