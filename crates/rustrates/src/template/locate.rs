//! Where templates are found: files (disk, built-in library, memory), dotted and path
//! references, resolution with `base:` chains and cycle detection.

use super::*;

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

    pub(super) fn cwd(&self) -> PathBuf {
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

    pub(super) fn load_builtin(&mut self, module: &str) -> Option<usize> {
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
    pub(crate) fn template_names(&self, f: usize) -> Vec<String> {
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
    pub(super) fn template_key_span(&self, f: usize, name: &str) -> Option<Span> {
        self.files[f]
            .root
            .as_ref()?
            .as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(k, _)| k.span)
    }

    pub(crate) fn template_node(&self, f: usize, name: &str) -> Option<&Node> {
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
    pub(super) fn locate(&mut self, reference: &str, from: Option<usize>) -> Result<TplRef, Option<String>> {
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
    pub(super) fn resolve_ref(
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
}
