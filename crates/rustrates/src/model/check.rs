//! Checking a template file as a whole: resolve every template in it, build each circuit (and
//! each operator and node alone), report all problems at once (each reported once).

use std::path::Path;

use crate::syntax::{Diagnostic, Diagnostics, SourceMap};
use crate::template::yaml::Node;
use crate::template::{dedup, LoadOptions, Loader, TemplateKind};

/// Summary of one template for `rustrates check`.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateSummary {
    pub name: String,
    pub kind: TemplateKind,
    pub n_nodes: usize,
    pub n_edges: usize,
    pub n_states: usize,
    pub n_params: usize,
    pub n_inputs: usize,
    pub description: Option<String>,
    /// Loads and builds without error.
    pub ok: bool,
}

/// Everything `rustrates check FILE` reports.
#[derive(Debug)]
pub struct CheckReport {
    pub sources: SourceMap,
    pub diagnostics: Diagnostics,
    pub templates: Vec<TemplateSummary>,
}

/// Check every template in a file: resolve each, build each circuit (and each operator and
/// node alone), report all problems at once (each reported once).
pub fn check_file(path: &Path, opts: &LoadOptions) -> CheckReport {
    let mut l = Loader::new(opts);
    let templates = Vec::new();
    let Some(f) = l.load_disk(path) else {
        let mut diagnostics = Diagnostics::new();
        diagnostics.push(
            Diagnostic::error("template/unknown-path", format!("cannot read `{}`", path.display()))
                .with_path(path.display().to_string()),
        );
        return CheckReport {
            sources: l.sources,
            diagnostics,
            templates,
        };
    };
    check_loaded(l, f)
}

/// Like [`check_file`] for YAML text held in memory (`name` labels the messages).
pub fn check_source(name: &str, text: &str, opts: &LoadOptions) -> CheckReport {
    let mut l = Loader::new(opts);
    let f = l.load_text(name, text);
    check_loaded(l, f)
}

fn check_loaded(mut l: Loader<'_>, f: usize) -> CheckReport {
    let mut templates = Vec::new();
    let mut extra = Diagnostics::new();
    for name in l.template_names(f) {
        let Some(t) = l.resolve(f, &name) else {
            let kind = l
                .template_node(f, &name)
                .and_then(|n| n.get("base"))
                .and_then(Node::as_str)
                .and_then(TemplateKind::from_class);
            templates.push(TemplateSummary {
                name,
                kind: kind.unwrap_or(TemplateKind::Operator),
                n_nodes: 0,
                n_edges: 0,
                n_states: 0,
                n_params: 0,
                n_inputs: 0,
                description: None,
                ok: false,
            });
            continue;
        };
        let (circuit, diags) = super::build::build_template(&t, &mut l.sources);
        extra.extend(diags);
        let mut s = TemplateSummary {
            name: t.name.clone(),
            kind: t.kind(),
            n_nodes: 0,
            n_edges: 0,
            n_states: 0,
            n_params: 0,
            n_inputs: 0,
            description: t.description.clone(),
            ok: circuit.is_some() && !t.broken,
        };
        if let Some(c) = circuit {
            // Operators and edge templates are built as a one-node circuit only to check them.
            if matches!(t.kind(), TemplateKind::Circuit | TemplateKind::Node) {
                s.n_nodes = c.nodes.len();
            }
            s.n_edges = c.edges.len() + c.couplings.iter().map(|cp| cp.len()).sum::<usize>();
            for v in &c.vars {
                match v.kind {
                    super::VarKind::State => s.n_states += 1,
                    super::VarKind::Param => s.n_params += 1,
                    super::VarKind::Input => s.n_inputs += 1,
                    super::VarKind::Algebraic => {}
                }
            }
        }
        templates.push(s);
    }
    let mut diagnostics = std::mem::take(&mut l.diags);
    diagnostics.extend(extra);
    CheckReport {
        sources: l.sources,
        diagnostics: dedup(diagnostics),
        templates,
    }
}
