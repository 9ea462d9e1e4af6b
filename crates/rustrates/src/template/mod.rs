//! Stage 2: PyRates YAML templates (0.8 and 1.x dialects) → resolved templates.
//!
//! Input: template paths (`model_templates.montbrio.simple_montbrio.Net3`,
//! `path/to/file.yaml/Name`, a bare name in the same file). Output: [`Template`]s with their
//! inheritance applied (`base:` chains, `equations: {replace, remove, add}`, merged
//! `variables`) and every referenced template resolved, or [`Diagnostic`]s. Equation strings
//! keep the byte offset of their text in the YAML file so stage 3 reports exact positions.
//!
//! Where a path is looked for: `a.b.file.Name` → inside the `model_templates/` tree of the
//! referring file (for `model_templates.*`), the built-in library, the working directory,
//! the referring file's directory, the search path; `dir/file.yaml/Name` and `dir/file/Name`
//! → the working directory, the referring file's directory, the search path; `Name` → the
//! referring file.
//!
//! PyRates' rules kept here because users rely on them: `replace` substitutes whole terms
//! only; a child drops inherited variables its equations no longer mention; a number
//! replacing an inherited variable makes it a constant; only an operator's `output` feeds
//! same-named inputs of the other operators of its node (summed when several do).
//!
//! Files: `locate` (where a reference is found, resolution), `bodies` (YAML → typed bodies),
//! `text` (whole-term replace, suggestions), `yaml` (the positioned YAML reader).

mod bodies;
pub mod connectivity;
mod locate;
mod npy;
mod text;
pub mod yaml;

pub use text::{edit_distance, replace_term, suggest};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use indexmap::IndexMap;

use crate::syntax::{Diagnostic, Diagnostics, FileId, SourceMap, Span};
use yaml::{Node, Style, Value};

/// Where to look for template files besides the built-in library.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Directories searched (in order) after the built-in library and the working directory.
    pub search_path: Vec<PathBuf>,
    /// Working directory for relative paths; the process's when `None`.
    pub cwd: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateKind {
    Operator,
    Node,
    Edge,
    Circuit,
}

impl TemplateKind {
    pub fn class_name(self) -> &'static str {
        match self {
            TemplateKind::Operator => "OperatorTemplate",
            TemplateKind::Node => "NodeTemplate",
            TemplateKind::Edge => "EdgeTemplate",
            TemplateKind::Circuit => "CircuitTemplate",
        }
    }
    pub(crate) fn from_class(name: &str) -> Option<Self> {
        Some(match name {
            "OperatorTemplate" => TemplateKind::Operator,
            "NodeTemplate" => TemplateKind::Node,
            "EdgeTemplate" => TemplateKind::Edge,
            "CircuitTemplate" => TemplateKind::Circuit,
            _ => return None,
        })
    }
}

/// A fully resolved template.
#[derive(Clone, Debug)]
pub struct Template {
    /// Name inside its file (`Net3`).
    pub name: String,
    /// Full path as resolved (`model_templates.montbrio.simple_montbrio.Net3`, `dir/f.yaml/Net3`).
    pub full_path: String,
    pub description: Option<String>,
    pub span: Span,
    pub body: Body,
    /// It, or a template it uses, had an error: usable for further checks, not for building.
    pub broken: bool,
}

impl Template {
    pub fn kind(&self) -> TemplateKind {
        match &self.body {
            Body::Operator(_) => TemplateKind::Operator,
            Body::Node(_) => TemplateKind::Node,
            Body::Edge(_) => TemplateKind::Edge,
            Body::Circuit(_) => TemplateKind::Circuit,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Body {
    Operator(OperatorT),
    Node(NodeT),
    /// An operator chain applied along an edge.
    Edge(NodeT),
    Circuit(CircuitT),
}

/// One equation string and where its text is.
#[derive(Clone, Debug)]
pub struct EqText {
    pub text: String,
    /// The YAML scalar holding the equation.
    pub span: Span,
    /// Byte offset of `text` in the file of `span` when the text appears there verbatim
    /// (so equation spans map 1:1); `None` after a `replace` or for block scalars.
    pub offset: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VType {
    Input,
    Output,
    State,
    Constant,
}

#[derive(Clone, Debug)]
pub struct VarDecl {
    pub vtype: VType,
    /// The default; for a complex variable its real part.
    pub value: f64,
    /// `Some(imaginary part of the default)` for a complex-valued variable (`dtype: complex`,
    /// `variable(complex)`, `output(0.5+0.1j)`, a constant `0.0+1.0j`), `None` for a real one.
    pub imag: Option<f64>,
    /// `Some(n)` for a PyRates 1.x vector variable of n elements (`variable(0.5, 3)`,
    /// `shape: [3]`), every element starting at `value`; `None` for a scalar.
    pub len: Option<usize>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct OperatorT {
    pub equations: Vec<EqText>,
    pub variables: IndexMap<String, VarDecl>,
}

#[derive(Clone, Debug)]
pub struct OpUse {
    /// The key the operator's variables live under (`node/<name>/var`): the template name.
    pub name: String,
    pub template: Rc<Template>,
    /// `{Op: {var: value}}` overrides of variable defaults (span: the variable's key).
    pub overrides: Vec<(String, f64, Span)>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct NodeT {
    pub operators: Vec<OpUse>,
}

#[derive(Clone, Debug)]
pub enum ParamValue {
    Num(f64),
    /// `source` or a variable path (edge-template inputs wired to another variable).
    Ref(String),
}

#[derive(Clone, Debug)]
pub struct EdgeDecl {
    pub source: String,
    pub source_span: Span,
    pub target: String,
    pub target_span: Span,
    pub template: Option<Rc<Template>>,
    /// (key, value, value span, key span).
    pub params: Vec<(String, ParamValue, Span, Span)>,
    pub span: Span,
    /// `Net3.edges[0]`.
    pub path: String,
}

#[derive(Clone, Debug)]
pub struct SubUse {
    pub name: String,
    pub template: Rc<Template>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct CircuitT {
    pub nodes: Vec<SubUse>,
    pub circuits: Vec<SubUse>,
    pub edges: Vec<EdgeDecl>,
    /// Edges given as matrices (`connectivity:`); they follow `edges` in edge order.
    pub connectivity: Vec<connectivity::ConnectivityDecl>,
}

const TEMPLATE_KEYS: &[&str] = &[
    "base",
    "description",
    "label",
    "equations",
    "variables",
    "operators",
    "nodes",
    "circuits",
    "edges",
    "connectivity",
];

#[derive(Clone, Debug)]
enum Origin {
    Builtin(#[allow(dead_code)] String),
    Disk(PathBuf),
    /// Text given directly (`check_source`); resolves like a file in the working directory.
    Memory,
}

struct LoadedFile {
    file: FileId,
    origin: Origin,
    root: Option<Node>,
    /// The directory that contains `model_templates/` when this file is inside such a tree.
    tree_root: Option<PathBuf>,
    /// Prefix of `full_path` for templates of this file.
    display: String,
}

/// Loads files and resolves templates, collecting every problem.
pub struct Loader<'o> {
    opts: &'o LoadOptions,
    pub sources: SourceMap,
    pub diags: Diagnostics,
    files: Vec<LoadedFile>,
    by_key: HashMap<String, usize>,
    resolved: HashMap<(usize, String), Slot>,
    /// Set when a resolution met a missing or broken template (propagates to users).
    saw_broken: bool,
}

enum Slot {
    /// Being resolved (seeing it again means a `base:` cycle).
    Busy,
    Failed,
    Done(Rc<Template>),
}

/// A template reference: which file, which name.
type TplRef = (usize, String);

/// The built-in library: (full dotted path, kind, description) of every template.
pub fn list_builtin() -> Vec<(String, String, Option<String>)> {
    let opts = LoadOptions::default();
    let mut out = Vec::new();
    let mut mods: Vec<&str> = crate::library::modules().iter().map(|(m, _)| *m).collect();
    mods.sort_unstable();
    for m in mods {
        let mut l = Loader::new(&opts);
        let Some(f) = l.load_builtin(m) else { continue };
        for name in l.template_names(f) {
            let node = l.template_node(f, &name).cloned();
            let desc = node
                .as_ref()
                .and_then(|n| n.get("description"))
                .and_then(Node::as_str)
                .map(|s| s.trim().to_string());
            let kind = l
                .resolve(f, &name)
                .map_or_else(|| "invalid".to_string(), |t| t.kind().class_name().to_string());
            out.push((format!("{m}.{name}"), kind, desc));
        }
    }
    out
}

/// Drop repeats (an operator's error shows up in every node that uses it).
pub fn dedup(d: Diagnostics) -> Diagnostics {
    let mut out: Vec<Diagnostic> = Vec::new();
    for x in d.0 {
        if !out
            .iter()
            .any(|y| y.code == x.code && y.span == x.span && y.message == x.message)
        {
            out.push(x);
        }
    }
    Diagnostics(out)
}

#[cfg(test)]
mod tests;
