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

pub mod connectivity;
pub mod yaml;

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
    fn from_class(name: &str) -> Option<Self> {
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
    pub value: f64,
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

impl<'o> Loader<'o> {
    pub fn new(opts: &'o LoadOptions) -> Self {
        Self {
            opts,
            sources: SourceMap::new(),
            diags: Diagnostics::new(),
            files: Vec::new(),
            by_key: HashMap::new(),
            resolved: HashMap::new(),
            saw_broken: false,
        }
    }

    fn cwd(&self) -> PathBuf {
        self.opts
            .cwd
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_default()
    }

    /// Text of the file a template came from.
    pub fn file_text(&self, file: FileId) -> &str {
        &self.sources.file(file).text
    }

    fn load_builtin(&mut self, module: &str) -> Option<usize> {
        let key = format!("builtin:{module}");
        if let Some(&i) = self.by_key.get(&key) {
            return Some(i);
        }
        let text = crate::library::module_source(module)?;
        let name = format!("<builtin>/{}.yaml", module.replace('.', "/"));
        Some(self.add_file(
            key,
            name,
            text.to_string(),
            Origin::Builtin(module.to_string()),
            module.to_string(),
        ))
    }

    /// Register YAML text that is not read from a file (the name is only for messages).
    pub fn load_text(&mut self, name: &str, text: &str) -> usize {
        let key = format!("memory:{}:{name}", self.files.len());
        self.add_file(
            key,
            name.to_string(),
            text.to_string(),
            Origin::Memory,
            name.to_string(),
        )
    }

    /// Load a file from disk (`None` when it does not exist or cannot be read).
    pub fn load_disk(&mut self, path: &Path) -> Option<usize> {
        let canon = path.canonicalize().ok()?;
        let key = format!("disk:{}", canon.display());
        if let Some(&i) = self.by_key.get(&key) {
            return Some(i);
        }
        if !canon.is_file() {
            return None;
        }
        let text = std::fs::read_to_string(&canon).ok()?;
        let display = path.display().to_string();
        Some(self.add_file(key, display.clone(), text, Origin::Disk(canon), display))
    }

    fn add_file(&mut self, key: String, name: String, text: String, origin: Origin, display: String) -> usize {
        let file = self.sources.add(name, text);
        let root = match yaml::parse(self.file_text(file), file) {
            Ok(r) => r,
            Err(d) => {
                self.diags.push(*d);
                None
            }
        };
        let tree_root = match &origin {
            Origin::Disk(p) => p
                .ancestors()
                .find(|a| a.file_name().is_some_and(|n| n == "model_templates"))
                .and_then(|mt| mt.parent().map(Path::to_path_buf)),
            Origin::Builtin(_) | Origin::Memory => None,
        };
        if let Some(r) = &root {
            if r.as_map().is_none() {
                self.diags.push(
                    Diagnostic::error(
                        "template/invalid",
                        "a template file must be a mapping of template names",
                    )
                    .with_span(r.span),
                );
            }
            for (k, v) in r.as_map().unwrap_or(&[]) {
                let name = k.as_str().unwrap_or("");
                if name != "aliases" && v.as_map().is_none() {
                    self.diags.push(
                        Diagnostic::error(
                            "template/invalid",
                            format!("template `{name}` must be a mapping with `base:`"),
                        )
                        .with_span(v.span)
                        .with_path(name)
                        .with_help("keep anchored values under a top-level `aliases:` list"),
                    );
                }
            }
        }
        self.files.push(LoadedFile {
            file,
            origin,
            root,
            tree_root,
            display,
        });
        let i = self.files.len() - 1;
        self.by_key.insert(key, i);
        i
    }

    /// Names of the templates defined in a loaded file, in file order.
    fn template_names(&self, f: usize) -> Vec<String> {
        let Some(root) = &self.files[f].root else {
            return Vec::new();
        };
        root.as_map()
            .unwrap_or(&[])
            .iter()
            .filter_map(|(k, v)| {
                k.as_str()
                    .filter(|k| *k != "aliases" && v.as_map().is_some())
                    .map(str::to_string)
            })
            .collect()
    }

    /// Span of a template's name (its key in the file).
    fn template_key_span(&self, f: usize, name: &str) -> Option<Span> {
        self.files[f]
            .root
            .as_ref()?
            .as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(k, _)| k.span)
    }

    fn template_node(&self, f: usize, name: &str) -> Option<&Node> {
        self.files[f]
            .root
            .as_ref()?
            .get(name)
            .filter(|n| n.as_map().is_some() && name != "aliases")
    }

    /// Find the file of a dotted module (`pkg.sub.file`), from the file `from` (if any).
    fn find_module(&mut self, module: &str, from: Option<usize>) -> Option<usize> {
        let rel: PathBuf = module.split('.').collect();
        let try_dir = |this: &mut Self, dir: &Path| -> Option<usize> {
            for ext in ["yaml", "yml"] {
                let p = dir.join(&rel).with_extension(ext);
                if p.is_file() {
                    return this.load_disk(&p);
                }
            }
            None
        };
        if module.starts_with("model_templates.") || module == "model_templates" {
            if let Some(tr) = from.and_then(|f| self.files[f].tree_root.clone()) {
                if let Some(i) = try_dir(self, &tr) {
                    return Some(i);
                }
            }
        }
        if let Some(i) = self.load_builtin(module) {
            return Some(i);
        }
        let cwd = self.cwd();
        if let Some(i) = try_dir(self, &cwd) {
            return Some(i);
        }
        // Next to the file that names the module (a project's templates referring to each
        // other work from any working directory).
        if let Some(Origin::Disk(p)) = from.map(|f| self.files[f].origin.clone()) {
            if let Some(i) = p.parent().and_then(|d| try_dir(self, d)) {
                return Some(i);
            }
        }
        for dir in self.opts.search_path.clone() {
            if let Some(i) = try_dir(self, &dir) {
                return Some(i);
            }
        }
        None
    }

    /// Find the file of a path form (`path/to/file.yaml` or `path/to/file`).
    fn find_path_file(&mut self, file_part: &str, from: Option<usize>) -> Option<usize> {
        let candidates: Vec<PathBuf> = if file_part.ends_with(".yaml") || file_part.ends_with(".yml") {
            vec![PathBuf::from(file_part)]
        } else {
            vec![
                PathBuf::from(format!("{file_part}.yaml")),
                PathBuf::from(format!("{file_part}.yml")),
            ]
        };
        let mut dirs = vec![self.cwd()];
        if let Some(Origin::Disk(p)) = from.map(|f| self.files[f].origin.clone()) {
            if let Some(d) = p.parent() {
                dirs.push(d.to_path_buf());
            }
        }
        dirs.extend(self.opts.search_path.iter().cloned());
        for c in &candidates {
            if c.is_absolute() {
                if let Some(i) = self.load_disk(c) {
                    return Some(i);
                }
                continue;
            }
            for d in &dirs {
                if let Some(i) = self.load_disk(&d.join(c)) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// A YAML file next to where `file_part` was looked for whose name is close to it.
    fn similar_file(&self, file_part: &str) -> Option<String> {
        let (dir, stem) = match file_part.rsplit_once('/') {
            Some((d, s)) => (Some(d), s),
            None => (None, file_part),
        };
        let stem = stem.trim_end_matches(".yaml").trim_end_matches(".yml");
        let base = self.cwd();
        let full = dir.map_or(base.clone(), |d| base.join(d));
        let mut names: Vec<String> = std::fs::read_dir(&full)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| {
                n.strip_suffix(".yaml")
                    .or_else(|| n.strip_suffix(".yml"))
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        let s = suggest(stem, &names)?;
        let ext = if file_part.ends_with(".yml") {
            ".yml"
        } else if file_part.ends_with(".yaml") {
            ".yaml"
        } else {
            ""
        };
        Some(match dir {
            Some(d) => format!("{d}/{s}{ext}"),
            None => format!("{s}{ext}"),
        })
    }

    /// Resolve a template reference written in file `from` to (file, name).
    fn locate(&mut self, reference: &str, from: Option<usize>) -> Result<TplRef, Option<String>> {
        let reference = reference.trim();
        if let Some((file_part, name)) = reference.rsplit_once('/') {
            let Some(f) = self.find_path_file(file_part, from) else {
                return Err(self.similar_file(file_part).map(|p| format!("{p}/{name}")));
            };
            return if self.template_node(f, name).is_some() {
                Ok((f, name.to_string()))
            } else {
                Err(suggest(name, &self.template_names(f)))
            };
        }
        if let Some((module, name)) = reference.rsplit_once('.') {
            if let Some(f) = self.find_module(module, from) {
                return if self.template_node(f, name).is_some() {
                    Ok((f, name.to_string()))
                } else {
                    Err(suggest(name, &self.template_names(f)).map(|s| format!("{module}.{s}")))
                };
            }
            return Err(self.builtin_holding(module, name));
        }
        if let Some(f) = from {
            if self.template_node(f, reference).is_some() {
                return Ok((f, reference.to_string()));
            }
            return Err(suggest(reference, &self.template_names(f)));
        }
        Err(None)
    }

    /// A built-in dotted path for `module.name` when `module` does not exist: the module
    /// closest to `module` among those that define `name`, else the closest existing dotted
    /// template path — never a module that lacks the name.
    fn builtin_holding(&mut self, module: &str, name: &str) -> Option<String> {
        let mut holders = Vec::new();
        let mut every = Vec::new();
        for (m, _) in crate::library::modules() {
            let Some(f) = self.load_builtin(m) else { continue };
            for t in self.template_names(f) {
                if t == name {
                    holders.push(*m);
                }
                every.push(format!("{m}.{t}"));
            }
        }
        if let Some(m) = holders.iter().min_by_key(|m| edit_distance(module, m)) {
            return Some(format!("{m}.{name}"));
        }
        every.sort();
        suggest(&format!("{module}.{name}"), &every)
    }

    /// Resolve a reference and report `code` at `span` when it cannot be found.
    fn resolve_ref(
        &mut self,
        reference: &str,
        from: Option<usize>,
        span: Option<Span>,
        code: &'static str,
        path: &str,
    ) -> Option<Rc<Template>> {
        match self.locate(reference, from) {
            Ok((f, name)) => self.resolve(f, &name),
            Err(sugg) => {
                self.saw_broken = true;
                let mut d = Diagnostic::error(code, format!("cannot find template `{reference}`")).with_path(path);
                if let Some(sp) = span {
                    d = d.with_span(sp);
                }
                if let Some(why) = crate::library::left_out(reference) {
                    d = d.with_help(why);
                } else if let Some(s) = sugg {
                    d = d.with_help(format!("did you mean `{s}`?"));
                } else if reference.contains('.') && !reference.contains('/') {
                    d = d.with_help("dotted paths are looked up in the built-in library, then the working directory, then the search path");
                }
                self.diags.push(d);
                None
            }
        }
    }

    /// Resolve a template by a path given on the command line (no file context).
    pub fn resolve_path(&mut self, reference: &str) -> Option<Rc<Template>> {
        self.resolve_ref(reference, None, None, "template/unknown-path", reference)
    }

    /// Resolve every template defined in a file; returns them in file order.
    pub fn resolve_all(&mut self, f: usize) -> Vec<Rc<Template>> {
        self.template_names(f)
            .iter()
            .filter_map(|n| self.resolve(f, n))
            .collect()
    }

    /// The text of the file a template was defined in.
    pub fn source_text_of(&self, t: &Template) -> String {
        self.sources.file(t.span.file).text.clone()
    }

    /// Resolve template `name` of file `f` (cached).
    pub fn resolve(&mut self, f: usize, name: &str) -> Option<Rc<Template>> {
        let key = (f, name.to_string());
        match self.resolved.get(&key) {
            Some(Slot::Done(t)) => {
                self.saw_broken |= t.broken;
                return Some(t.clone());
            }
            Some(Slot::Failed) => {
                self.saw_broken = true;
                return None;
            }
            Some(Slot::Busy) => {
                self.saw_broken = true;
                self.resolved.insert(key, Slot::Failed);
                let span = self
                    .template_node(f, name)
                    .map(|n| n.get("base").map_or(n.span, |b| b.span));
                let mut d = Diagnostic::error(
                    "template/base-cycle",
                    format!("template `{name}` refers back to itself (through `base:` or nested circuits)"),
                )
                .with_path(name);
                if let Some(s) = span {
                    d = d.with_span(s);
                }
                self.diags.push(d);
                return None;
            }
            None => {}
        }
        let Some(node) = self.template_node(f, name).cloned() else {
            self.saw_broken = true;
            return None;
        };
        self.resolved.insert(key.clone(), Slot::Busy);
        let outer = std::mem::replace(&mut self.saw_broken, false);
        let errors_before = self.error_count();
        let t = self.build_template(f, name, &node).map(|mut t| {
            t.broken = self.saw_broken || self.error_count() > errors_before;
            Rc::new(t)
        });
        if matches!(self.resolved.get(&key), Some(Slot::Failed)) {
            // A cycle through this template was found while building it.
            self.saw_broken = true;
            return None;
        }
        self.saw_broken = outer || t.as_ref().is_none_or(|t| t.broken);
        match &t {
            Some(t) => self.resolved.insert(key, Slot::Done(t.clone())),
            None => self.resolved.insert(key, Slot::Failed),
        };
        t
    }

    fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == crate::syntax::Severity::Error)
            .count()
    }

    fn build_template(&mut self, f: usize, name: &str, node: &Node) -> Option<Template> {
        let file = self.files[f].file;
        let full_path = if matches!(self.files[f].origin, Origin::Builtin(_)) {
            format!("{}.{name}", self.files[f].display)
        } else {
            format!("{}/{name}", self.files[f].display)
        };
        let mut renames: Vec<(String, &'static str)> = Vec::new();
        for (k, _) in node.as_map().unwrap_or(&[]) {
            let ks = k.as_str().unwrap_or("");
            if !TEMPLATE_KEYS.contains(&ks) {
                let typo_of = TEMPLATE_KEYS
                    .iter()
                    .filter(|t| node.get(t).is_none())
                    .find(|t| edit_distance(ks, t) <= (t.len() / 3).max(2));
                let d = match typo_of {
                    // A misspelt key: an error, but read it as meant so the rest is checked.
                    Some(t) => {
                        renames.push((ks.to_string(), t));
                        Diagnostic::error("yaml/unknown-key", format!("unknown key `{ks}` in template `{name}`"))
                            .with_help(format!("did you mean `{t}`?"))
                    }
                    None => Diagnostic::warning(
                        "yaml/unknown-key",
                        format!("unknown key `{ks}` in template `{name}` (ignored)"),
                    )
                    .with_help(format!("template keys are: {}", TEMPLATE_KEYS.join(", "))),
                };
                self.diags.push(d.with_span(k.span).with_path(format!("{name}.{ks}")));
            }
        }
        let fixed: Node;
        let node = if renames.is_empty() {
            node
        } else {
            let mut n = node.clone();
            if let Value::Map(m) = &mut n.value {
                for (k, _) in m.iter_mut() {
                    if let Some((_, t)) = renames.iter().find(|(from, _)| k.as_str() == Some(from)) {
                        k.value = Value::Scalar {
                            text: t.to_string(),
                            style: Style::Plain,
                        };
                    }
                }
            }
            fixed = n;
            &fixed
        };
        let description = node.get("description").and_then(Node::as_str).map(str::to_string);
        let Some(base) = node.get("base") else {
            self.diags.push(
                Diagnostic::error("template/missing-base", format!("template `{name}` has no `base:`"))
                    .with_span(self.template_key_span(f, name).unwrap_or(node.span))
                    .with_path(name)
                    .with_help(
                        "set `base:` to OperatorTemplate, NodeTemplate, EdgeTemplate, CircuitTemplate or a parent \
                         template; keep anchored values under a top-level `aliases:` list",
                    ),
            );
            return None;
        };
        let Some(base_s) = base.as_str().map(str::to_string) else {
            self.diags.push(
                Diagnostic::error(
                    "template/unknown-base",
                    "`base:` must be a class name or a template path",
                )
                .with_span(base.span)
                .with_path(format!("{name}.base")),
            );
            return None;
        };
        let parent: Option<Rc<Template>>;
        let kind = if let Some(k) = TemplateKind::from_class(&base_s) {
            parent = None;
            k
        } else {
            match self.locate(&base_s, Some(f)) {
                Ok((pf, pn)) => {
                    parent = self.resolve(pf, &pn);
                    parent.as_ref()?.kind()
                }
                Err(sugg) => {
                    let mut cands: Vec<String> =
                        ["OperatorTemplate", "NodeTemplate", "EdgeTemplate", "CircuitTemplate"]
                            .iter()
                            .map(|s| s.to_string())
                            .collect();
                    cands.extend(self.template_names(f));
                    let sugg = sugg.or_else(|| suggest(&base_s, &cands));
                    let mut d = Diagnostic::error(
                        "template/unknown-base",
                        format!("unknown base `{base_s}` of template `{name}`"),
                    )
                    .with_span(base.span)
                    .with_path(format!("{name}.base"));
                    if let Some(s) = sugg {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.diags.push(d);
                    return None;
                }
            }
        };
        let body = match kind {
            TemplateKind::Operator => {
                let p = parent.as_ref().and_then(|p| match &p.body {
                    Body::Operator(o) => Some(o),
                    _ => None,
                });
                Body::Operator(self.operator_body(f, name, node, p))
            }
            TemplateKind::Node | TemplateKind::Edge => {
                let p = parent.as_ref().and_then(|p| match &p.body {
                    Body::Node(n) | Body::Edge(n) => Some(n),
                    _ => None,
                });
                let nb = self.node_body(f, name, node, p);
                if kind == TemplateKind::Node {
                    Body::Node(nb)
                } else {
                    Body::Edge(nb)
                }
            }
            TemplateKind::Circuit => {
                let p = parent.as_ref().and_then(|p| match &p.body {
                    Body::Circuit(c) => Some(c),
                    _ => None,
                });
                Body::Circuit(self.circuit_body(f, name, node, p))
            }
        };
        let _ = file;
        Some(Template {
            name: name.to_string(),
            full_path,
            description,
            span: node.span,
            body,
            broken: false,
        })
    }

    fn operator_body(&mut self, f: usize, name: &str, node: &Node, parent: Option<&OperatorT>) -> OperatorT {
        let mut equations: Vec<EqText> = parent.map(|p| p.equations.clone()).unwrap_or_default();
        let mut variables: IndexMap<String, VarDecl> = parent.map(|p| p.variables.clone()).unwrap_or_default();
        let inherited = parent.is_some();
        let empty = |n: &Node| match &n.value {
            Value::Seq(v) => v.is_empty(),
            Value::Scalar { text, .. } => text.trim().is_empty(),
            Value::Map(_) => false,
        };
        if !inherited {
            let at = match node.get("equations") {
                Some(e) if empty(e) => Some(e.span),
                Some(_) => None,
                None => Some(self.template_key_span(f, name).unwrap_or(node.span)),
            };
            if let Some(at) = at {
                self.diags.push(
                    Diagnostic::error("template/no-equations", format!("operator `{name}` has no equations"))
                        .with_span(at)
                        .with_path(format!("{name}.equations")),
                );
            }
        }
        if let Some(eqs) = node.get("equations") {
            match &eqs.value {
                Value::Scalar { .. } => equations = vec![self.eq_text(eqs)],
                Value::Seq(items) => {
                    equations = items.iter().map(|n| self.eq_text(n)).collect();
                    for (i, n) in items.iter().enumerate() {
                        if n.as_str().is_none() {
                            self.diags.push(
                                Diagnostic::error("template/invalid", "an equation must be a string")
                                    .with_span(n.span)
                                    .with_path(format!("{name}.equations[{i}]")),
                            );
                        }
                    }
                }
                Value::Map(entries) => {
                    for (k, v) in entries {
                        match k.as_str().unwrap_or("") {
                            "replace" => {
                                for (old, new) in v.as_map().unwrap_or(&[]) {
                                    let (Some(o), Some(n)) = (old.as_str(), scalar_text(new)) else {
                                        continue;
                                    };
                                    if !equations.iter().any(|e| replace_term(&e.text, o, "\u{0}") != e.text) {
                                        let mut d = Diagnostic::error(
                                            "template/replace-not-found",
                                            format!("`{o}` does not occur in the inherited equations"),
                                        )
                                        .with_span(old.span)
                                        .with_path(format!("{name}.equations.replace"));
                                        if let Some(e) = equations.first() {
                                            d = d.with_label(e.span, "inherited equations");
                                        }
                                        self.diags.push(d.with_help(
                                            "`replace` substitutes whole terms of the parent's equation text",
                                        ));
                                        continue;
                                    }
                                    for e in &mut equations {
                                        let r = replace_term(&e.text, o, &n);
                                        if r != e.text {
                                            e.text = r;
                                            e.offset = None;
                                        }
                                    }
                                }
                            }
                            "remove" => {
                                let items: Vec<&Node> = match &v.value {
                                    Value::Seq(s) => s.iter().collect(),
                                    _ => vec![v],
                                };
                                for it in items {
                                    let Some(term) = it.as_str() else { continue };
                                    let before = equations.len();
                                    equations.retain(|e| e.text.trim() != term.trim());
                                    if equations.len() == before
                                        && !equations.iter().any(|e| replace_term(&e.text, term, "\u{0}") != e.text)
                                    {
                                        let mut d = Diagnostic::error(
                                            "template/remove-not-found",
                                            format!("no inherited equation or term `{term}` to remove"),
                                        )
                                        .with_span(it.span)
                                        .with_path(format!("{name}.equations.remove"));
                                        // Recover from a mistyped equation: drop the inherited
                                        // one with the same left-hand side, as meant.
                                        let lhs = |t: &str| t.split_once('=').map(|(l, _)| l.trim().to_string());
                                        if let Some(l) = lhs(term) {
                                            if let Some(pos) = equations
                                                .iter()
                                                .position(|e| lhs(&e.text).as_deref() == Some(l.as_str()))
                                            {
                                                d = d.with_help(format!(
                                                    "did you mean `{}`?",
                                                    equations[pos].text.trim()
                                                ));
                                                equations.remove(pos);
                                            }
                                        }
                                        self.diags.push(d);
                                    } else if equations.len() == before {
                                        for e in &mut equations {
                                            let r = replace_term(&e.text, term, "");
                                            if r != e.text {
                                                e.text = r;
                                                e.offset = None;
                                            }
                                        }
                                    }
                                }
                            }
                            "add" => match &v.value {
                                Value::Seq(s) => equations.extend(s.iter().map(|n| self.eq_text(n))),
                                _ => equations.push(self.eq_text(v)),
                            },
                            other => self.diags.push(
                                Diagnostic::error("yaml/unknown-key", format!("unknown equation update `{other}`"))
                                    .with_span(k.span)
                                    .with_path(format!("{name}.equations.{other}"))
                                    .with_help("use `replace`, `remove` or `add`"),
                            ),
                        }
                    }
                }
            }
        }
        if let Some(vars) = node.get("variables") {
            match vars.as_map() {
                Some(entries) => {
                    for (k, v) in entries {
                        let Some(vn) = k.as_str() else { continue };
                        match self.var_decl(v, &format!("{name}.variables.{vn}")) {
                            Some(d) => {
                                variables.insert(vn.to_string(), d);
                            }
                            // Keep the name (the template is already broken) so its equations
                            // do not also report it as undefined.
                            None => {
                                let vtype = variables.get(vn).map_or(VType::State, |d| d.vtype);
                                variables.insert(
                                    vn.to_string(),
                                    VarDecl {
                                        vtype,
                                        value: 0.0,
                                        span: v.span,
                                    },
                                );
                            }
                        }
                    }
                }
                None if vars.is_null() => {}
                None => self.diags.push(
                    Diagnostic::error("template/invalid", "`variables` must be a mapping")
                        .with_span(vars.span)
                        .with_path(format!("{name}.variables")),
                ),
            }
        } else if !inherited && node.get("equations").is_some() {
            // An operator without variables: every symbol will be reported as undefined.
        }
        if inherited {
            // As PyRates does: a child drops inherited variables its equations no longer mention.
            variables.retain(|v, _| equations.iter().any(|e| e.text.contains(v.as_str())));
        }
        let _ = f;
        OperatorT { equations, variables }
    }

    fn eq_text(&self, n: &Node) -> EqText {
        let text = n.as_str().unwrap_or("").to_string();
        let file = &self.sources.file(n.span.file).text;
        let start = n.span.range.start as usize;
        let offset = [start, start + 1]
            .into_iter()
            .find(|&s| file.get(s..s + text.len()) == Some(text.as_str()));
        EqText {
            text,
            span: n.span,
            offset: offset.map(|o| o as u32),
        }
    }

    /// Parse a variable definition in either dialect.
    fn var_decl(&mut self, v: &Node, path: &str) -> Option<VarDecl> {
        let span = v.span;
        let spec: Node = match &v.value {
            Value::Map(_) => {
                if let Some(d) = v.get("default") {
                    d.clone()
                } else if v.get("vtype").is_some() || v.get("value").is_some() {
                    let vtype = v.get("vtype").and_then(Node::as_str).unwrap_or("constant");
                    let value = v.get("value").map_or(Some(0.0), |n| {
                        n.as_f64().or_else(|| n.as_str().and_then(yaml::parse_number))
                    });
                    let dtype = v.get("dtype").and_then(Node::as_str).unwrap_or("float");
                    if dtype.contains("complex") {
                        self.unsupported(span, path, "complex-valued variables");
                        return None;
                    }
                    if let Some(sh) = v.get("shape") {
                        if !shape_is_scalar(sh) {
                            self.unsupported(sh.span, path, "vector-valued variables (`shape`)");
                            return None;
                        }
                    }
                    let Some(value) = value else {
                        self.bad_var(
                            v.get("value").map_or(span, |n| n.span),
                            path,
                            "`value` must be a number",
                        );
                        return None;
                    };
                    return match parse_vtype(vtype) {
                        Some(vt) => Some(VarDecl { vtype: vt, value, span }),
                        None => {
                            let at = v.get("vtype").map_or(span, |n| n.span);
                            let mut d =
                                Diagnostic::error("template/invalid-variable", format!("unknown vtype `{vtype}`"))
                                    .with_span(at)
                                    .with_path(path);
                            if let Some(sg) =
                                suggest(vtype, &["input", "output", "state_var", "constant"].map(String::from))
                            {
                                d = d.with_help(format!("did you mean `{sg}`?"));
                            }
                            self.diags.push(d);
                            None
                        }
                    };
                } else {
                    self.bad_var(
                        span,
                        path,
                        "a variable dict needs `default:` (0.8) or `vtype`/`value` (1.x)",
                    );
                    return None;
                }
            }
            _ => v.clone(),
        };
        if let Some(sh) = v.get("shape") {
            if !shape_is_scalar(sh) {
                self.unsupported(sh.span, path, "vector-valued variables (`shape`)");
                return None;
            }
        }
        if let Some(x) = spec.as_f64() {
            // As in PyRates, a number is a constant, also where it replaces an inherited
            // input or state (the definition is replaced, not its default).
            let vtype = VType::Constant;
            return Some(VarDecl { vtype, value: x, span });
        }
        let Some(s) = spec.as_str() else {
            self.bad_var(
                spec.span,
                path,
                "expected a number, `input`, `output(0.0)`, `variable(0.0)`, ...",
            );
            return None;
        };
        let span_err = spec.span;
        let s = s.replace(' ', "");
        if s.contains('j') && (s.contains("complex") || s.chars().any(|c| c.is_ascii_digit())) || s.contains("complex")
        {
            self.unsupported(span, path, "complex-valued variables");
            return None;
        }
        let (head, arg) = match s.split_once('(') {
            Some((h, rest)) => (h.to_string(), Some(rest.trim_end_matches(')').to_string())),
            None => (s.clone(), None),
        };
        if let Some(x) = yaml::parse_number(&s) {
            return Some(VarDecl {
                vtype: VType::Constant,
                value: x,
                span,
            });
        }
        let Some(vtype) = parse_vtype(&head) else {
            let mut d = Diagnostic::error(
                "template/invalid-variable",
                format!("cannot read variable definition `{s}`"),
            )
            .with_span(span_err)
            .with_path(path);
            if let Some(sg) = suggest(
                &head,
                &["input", "output", "variable", "state_var", "constant", "placeholder"].map(String::from),
            ) {
                d = d.with_help(format!("did you mean `{sg}`?"));
            }
            self.diags.push(d);
            return None;
        };
        let value = match arg.as_deref() {
            None | Some("") | Some("float") | Some("float64") | Some("float32") => 0.0,
            Some(a) => match yaml::parse_number(a) {
                Some(x) => x,
                None => {
                    self.bad_var(span_err, path, &format!("`{a}` is not a number"));
                    return None;
                }
            },
        };
        Some(VarDecl { vtype, value, span })
    }

    fn bad_var(&mut self, span: Span, path: &str, msg: &str) {
        self.diags.push(
            Diagnostic::error("template/invalid-variable", msg.to_string())
                .with_span(span)
                .with_path(path),
        );
    }

    fn unsupported(&mut self, span: Span, path: &str, feature: &str) {
        self.diags.push(
            Diagnostic::error("template/unsupported", format!("{feature} are not supported"))
                .with_span(span)
                .with_path(path)
                .with_help("rustrates simulates real scalar variables only"),
        );
    }

    fn op_use(&mut self, f: usize, reference: &Node, overrides: Option<&Node>, path: &str) -> Option<OpUse> {
        let r = reference.as_str()?;
        let t = self.resolve_ref(r, Some(f), Some(reference.span), "template/unknown-path", path)?;
        if t.kind() != TemplateKind::Operator {
            self.diags.push(
                Diagnostic::error(
                    "template/wrong-kind",
                    format!("`{r}` is a {}, not an OperatorTemplate", t.kind().class_name()),
                )
                .with_span(reference.span)
                .with_path(path),
            );
            return None;
        }
        let mut ovs = Vec::new();
        for (k, v) in overrides.and_then(Node::as_map).unwrap_or(&[]) {
            let Some(vn) = k.as_str() else { continue };
            match v.as_f64() {
                Some(x) => ovs.push((vn.to_string(), x, k.span)),
                None => self.bad_var(v.span, &format!("{path}.{vn}"), "an operator override must be a number"),
            }
        }
        Some(OpUse {
            name: t.name.clone(),
            template: t,
            overrides: ovs,
            span: reference.span,
        })
    }

    fn node_body(&mut self, f: usize, name: &str, node: &Node, parent: Option<&NodeT>) -> NodeT {
        let mut operators: Vec<OpUse> = parent.map(|p| p.operators.clone()).unwrap_or_default();
        let Some(ops) = node.get("operators") else {
            return NodeT { operators };
        };
        let fresh = parent.is_none() || ops.as_seq().is_some();
        if fresh {
            operators.clear();
        }
        match &ops.value {
            Value::Seq(items) => {
                for (i, it) in items.iter().enumerate() {
                    let p = format!("{name}.operators[{i}]");
                    // `- Op` or `- {Op: {var: value}}`
                    let (r, ov) = match &it.value {
                        Value::Map(m) if m.len() == 1 => (&m[0].0, Some(&m[0].1)),
                        _ => (it, None),
                    };
                    if let Some(u) = self.op_use(f, r, ov, &p) {
                        operators.push(u);
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    let p = format!("{name}.operators.{}", k.as_str().unwrap_or("?"));
                    let key = k.as_str().unwrap_or("");
                    let short = key.rsplit(['.', '/']).next().unwrap_or(key);
                    if let Some(existing) = operators.iter_mut().find(|o| o.name == short) {
                        for (vk, vv) in v.as_map().unwrap_or(&[]) {
                            if let (Some(vn), Some(x)) = (vk.as_str(), vv.as_f64()) {
                                existing.overrides.push((vn.to_string(), x, vk.span));
                            }
                        }
                        continue;
                    }
                    if let Some(u) = self.op_use(f, k, Some(v), &p) {
                        operators.push(u);
                    }
                }
            }
            Value::Scalar { .. } => {
                if let Some(u) = self.op_use(f, ops, None, &format!("{name}.operators")) {
                    operators.push(u);
                }
            }
        }
        NodeT { operators }
    }

    fn circuit_body(&mut self, f: usize, name: &str, node: &Node, parent: Option<&CircuitT>) -> CircuitT {
        let mut c = parent.cloned().unwrap_or(CircuitT {
            nodes: Vec::new(),
            circuits: Vec::new(),
            edges: Vec::new(),
            connectivity: Vec::new(),
        });
        if parent.is_none()
            && node.get("nodes").is_none_or(Node::is_null)
            && node.get("circuits").is_none_or(Node::is_null)
        {
            self.diags.push(
                Diagnostic::error(
                    "template/no-nodes",
                    format!("circuit `{name}` has no `nodes` or `circuits`"),
                )
                .with_span(self.template_key_span(f, name).unwrap_or(node.span))
                .with_path(name),
            );
        }
        for (key, want) in [("nodes", TemplateKind::Node), ("circuits", TemplateKind::Circuit)] {
            let Some(m) = node.get(key) else { continue };
            for (k, v) in m.as_map().unwrap_or(&[]) {
                let Some(sub) = k.as_str() else { continue };
                let path = format!("{name}.{key}.{sub}");
                let Some(r) = v.as_str() else {
                    self.diags.push(
                        Diagnostic::error("template/invalid", format!("`{sub}` must name a template"))
                            .with_span(v.span)
                            .with_path(path),
                    );
                    continue;
                };
                let Some(t) = self.resolve_ref(r, Some(f), Some(v.span), "template/unknown-path", &path) else {
                    continue;
                };
                let ok = t.kind() == want || (want == TemplateKind::Node && t.kind() == TemplateKind::Circuit);
                if !ok {
                    self.diags.push(
                        Diagnostic::error(
                            "template/wrong-kind",
                            format!("`{r}` is a {}, expected a {}", t.kind().class_name(), want.class_name()),
                        )
                        .with_span(v.span)
                        .with_path(path),
                    );
                    continue;
                }
                let u = SubUse {
                    name: sub.to_string(),
                    template: t.clone(),
                    span: v.span,
                };
                // A circuit listed under `nodes:` is nested like one under `circuits:`.
                let list = if t.kind() == TemplateKind::Circuit {
                    &mut c.circuits
                } else {
                    &mut c.nodes
                };
                // A child's entry replaces the parent's in place (dict update).
                match list.iter_mut().find(|x| x.name == sub) {
                    Some(x) => *x = u,
                    None => list.push(u),
                }
            }
        }
        if let Some(edges) = node.get("edges") {
            let base_idx = c.edges.len();
            for (i, e) in edges.as_seq().unwrap_or(&[]).iter().enumerate() {
                let path = format!("{name}.edges[{}]", base_idx + i);
                if let Some(d) = self.edge_decl(f, e, &path) {
                    c.edges.push(d);
                }
            }
            if edges.as_seq().is_none() && !edges.is_null() {
                self.diags.push(
                    Diagnostic::error(
                        "template/invalid",
                        "`edges` must be a list of [source, target, template, {weight, ...}]",
                    )
                    .with_span(edges.span)
                    .with_path(format!("{name}.edges")),
                );
            }
        }
        if let Some(blocks) = node.get("connectivity").filter(|b| !b.is_null()) {
            let base_idx = c.connectivity.len();
            match blocks.as_seq() {
                Some(items) => {
                    for (i, b) in items.iter().enumerate() {
                        let path = format!("{name}.connectivity[{}]", base_idx + i);
                        let Some(d) = self.connectivity_decl(f, b, &path, base_idx + i) else {
                            continue;
                        };
                        if d.scale.is_some() && c.connectivity.iter().any(|o| o.scale.is_some() && o.name == d.name) {
                            self.diags.push(
                                Diagnostic::error(
                                    "connectivity/invalid",
                                    format!("two scaled connectivities are named `{}`", d.name),
                                )
                                .with_span(b.get("name").map_or(b.span, |n| n.span))
                                .with_path(path)
                                .with_help("give each a `name:` of its own; its scale is `<name>/scale`"),
                            );
                            continue;
                        }
                        c.connectivity.push(d);
                    }
                }
                None => self.diags.push(
                    Diagnostic::error(
                        "template/invalid",
                        "`connectivity` must be a list of {source, target, source_nodes, weight, ...}",
                    )
                    .with_span(blocks.span)
                    .with_path(format!("{name}.connectivity")),
                ),
            }
        }
        c
    }

    fn edge_decl(&mut self, f: usize, e: &Node, path: &str) -> Option<EdgeDecl> {
        // The older dict form `{source, target, template, variables}` maps onto the list form.
        let from_dict: Vec<Node>;
        let items: &[Node] = match &e.value {
            Value::Map(_) if e.get("source").is_some() => {
                let null = Node {
                    value: Value::Scalar {
                        text: String::new(),
                        style: Style::Plain,
                    },
                    span: e.span,
                };
                from_dict = ["source", "target", "template", "variables"]
                    .iter()
                    .map(|k| e.get(k).cloned().unwrap_or_else(|| null.clone()))
                    .collect();
                &from_dict
            }
            _ => e.as_seq().unwrap_or(&[]),
        };
        if items.len() < 2 || items.len() > 4 || items[0].as_str().is_none() || items[1].as_str().is_none() {
            self.diags.push(
                Diagnostic::error(
                    "edge/invalid",
                    "an edge is [source, target, template|null, {weight, delay, spread}]",
                )
                .with_span(e.span)
                .with_path(path),
            );
            return None;
        }
        let template = match items.get(2) {
            Some(t) if !t.is_null() => {
                let r = t.as_str()?;
                let tpl = self.resolve_ref(r, Some(f), Some(t.span), "template/unknown-path", path)?;
                if tpl.kind() != TemplateKind::Edge {
                    self.diags.push(
                        Diagnostic::error(
                            "template/wrong-kind",
                            format!("`{r}` is a {}, expected an EdgeTemplate", tpl.kind().class_name()),
                        )
                        .with_span(t.span)
                        .with_path(path),
                    );
                    return None;
                }
                Some(tpl)
            }
            _ => None,
        };
        let mut params = Vec::new();
        if let Some(p) = items.get(3) {
            match p.as_map() {
                Some(m) => {
                    for (k, v) in m {
                        let Some(ks) = k.as_str() else { continue };
                        let val = match (v.as_f64(), v.as_str()) {
                            (Some(x), _) => ParamValue::Num(x),
                            (None, Some(s)) => ParamValue::Ref(s.to_string()),
                            _ => {
                                self.diags.push(
                                    Diagnostic::error(
                                        "edge/invalid",
                                        format!("edge parameter `{ks}` must be a number"),
                                    )
                                    .with_span(v.span)
                                    .with_path(path),
                                );
                                continue;
                            }
                        };
                        params.push((ks.to_string(), val, v.span, k.span));
                    }
                }
                None if p.is_null() => {}
                None => self.diags.push(
                    Diagnostic::error("edge/invalid", "edge parameters must be a mapping like {weight: 1.0}")
                        .with_span(p.span)
                        .with_path(path),
                ),
            }
        }
        Some(EdgeDecl {
            source: items[0].as_str()?.trim().to_string(),
            source_span: items[0].span,
            target: items[1].as_str()?.trim().to_string(),
            target_span: items[1].span,
            template,
            params,
            span: e.span,
            path: path.to_string(),
        })
    }
}

fn shape_is_scalar(n: &Node) -> bool {
    match &n.value {
        Value::Seq(items) => items.iter().all(|i| i.as_f64() == Some(1.0)),
        Value::Scalar { text, .. } => {
            let t: String = text
                .chars()
                .filter(|c| !matches!(c, '(' | ')' | '[' | ']' | ',' | ' '))
                .collect();
            t.is_empty() || t.chars().all(|c| c == '1')
        }
        Value::Map(_) => false,
    }
}

fn parse_vtype(s: &str) -> Option<VType> {
    Some(match s {
        "input" | "placeholder" => VType::Input,
        "output" => VType::Output,
        "variable" | "state_var" => VType::State,
        "constant" | "raw" => VType::Constant,
        _ => return None,
    })
}

fn scalar_text(n: &Node) -> Option<String> {
    match &n.value {
        Value::Scalar { text, style } => {
            let _ = style == &Style::Plain;
            Some(text.clone())
        }
        _ => None,
    }
}

/// PyRates' `replace` on equation strings: `term` is replaced where it stands alone, i.e.
/// between the string's ends or operator/space characters (so `r` does not hit `r_thr`).
pub fn replace_term(eq: &str, term: &str, replacement: &str) -> String {
    const SEP: &str = "-+=*/^<>=!.%@[]():, ";
    if term.is_empty() {
        return eq.to_string();
    }
    let mut out = String::with_capacity(eq.len());
    let mut rest = eq;
    let mut prev: Option<char> = None;
    while let Some(i) = rest.find(term) {
        let before = if i == 0 { prev } else { rest[..i].chars().next_back() };
        let after = rest[i + term.len()..].chars().next();
        let ok_before = before.is_none_or(|c| SEP.contains(c));
        let ok_after = after.is_none_or(|c| SEP.contains(c));
        out.push_str(&rest[..i]);
        if ok_before && ok_after {
            out.push_str(replacement);
        } else {
            out.push_str(term);
        }
        prev = term.chars().next_back();
        rest = &rest[i + term.len()..];
    }
    out.push_str(rest);
    out
}

/// Levenshtein distance, for "did you mean" help.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j])).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The closest candidate within a distance that still looks like a typo.
pub fn suggest(word: &str, candidates: &[String]) -> Option<String> {
    let limit = (word.chars().count() / 3).max(2);
    let lw = word.to_lowercase();
    candidates
        .iter()
        .map(|c| {
            let lc = c.to_lowercase();
            // A truncated name (`state` for `state_var`) is as close as a one-letter typo.
            let d = if lw.len() >= 3 && lc.starts_with(&lw) {
                1
            } else {
                edit_distance(&lw, &lc)
            };
            (d, c)
        })
        .filter(|(d, c)| *d <= limit && c.as_str() != word)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

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
        let (circuit, diags) = crate::model::build::build_template(&t, &mut l.sources);
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
            s.n_edges = c.edges.len();
            for v in &c.vars {
                match v.kind {
                    crate::model::VarKind::State => s.n_states += 1,
                    crate::model::VarKind::Param => s.n_params += 1,
                    crate::model::VarKind::Input => s.n_inputs += 1,
                    crate::model::VarKind::Algebraic => {}
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
