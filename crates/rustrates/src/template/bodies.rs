//! A template's YAML → its typed body (operator, node, circuit, edge), inheritance applied,
//! every problem reported at its position.

use super::*;

impl<'o> Loader<'o> {
    pub(super) fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == crate::syntax::Severity::Error)
            .count()
    }

    pub(super) fn build_template(&mut self, f: usize, name: &str, node: &Node) -> Option<Template> {
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
                                        imag: None,
                                        len: None,
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
                    let value = v.get("value").map_or(Some((0.0, 0.0)), |n| {
                        n.as_f64()
                            .map(|x| (x, 0.0))
                            .or_else(|| n.as_str().and_then(yaml::parse_complex))
                    });
                    let dtype = v.get("dtype").and_then(Node::as_str).unwrap_or("float");
                    let is_complex = dtype.contains("complex") || value.is_some_and(|(_, im)| im != 0.0);
                    let len = match v.get("shape") {
                        Some(sh) => self.shape_len(sh, path)?,
                        None => None,
                    };
                    let Some((value, im)) = value else {
                        self.bad_var(
                            v.get("value").map_or(span, |n| n.span),
                            path,
                            "`value` must be a number",
                        );
                        return None;
                    };
                    let imag = is_complex.then_some(im);
                    if imag.is_some() && len.is_some() {
                        self.vector_variable(span, path, "vectors of complex elements are not supported".into());
                        return None;
                    }
                    return match parse_vtype(vtype) {
                        Some(vt) => Some(VarDecl {
                            vtype: vt,
                            value,
                            imag,
                            len,
                            span,
                        }),
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
        let shape_len = match v.get("shape") {
            Some(sh) => self.shape_len(sh, path)?,
            None => None,
        };
        if let Some(x) = spec.as_f64() {
            // As in PyRates, a number is a constant, also where it replaces an inherited
            // input or state (the definition is replaced, not its default).
            let vtype = VType::Constant;
            return Some(VarDecl {
                vtype,
                value: x,
                imag: None,
                len: shape_len,
                span,
            });
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
        let (head, arg) = match s.split_once('(') {
            Some((h, rest)) => (h.to_string(), Some(rest.trim_end_matches(')').to_string())),
            None => (s.clone(), None),
        };
        if let Some((re, im)) = yaml::parse_complex(&s) {
            // As PyRates: `0.0+1.0j` is a complex constant, `2.0` a real one.
            return Some(VarDecl {
                vtype: VType::Constant,
                value: re,
                imag: yaml::parse_number(&s).is_none().then_some(im),
                len: None,
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
        // `variable(0.5, 3)`: PyRates' vector of 3 elements, each starting at 0.5.
        let (arg, len) = match arg.as_deref().and_then(|a| a.split_once(',')) {
            Some((value, len)) => match len.parse::<usize>() {
                Ok(n) if n >= 1 && !value.starts_with('[') => (Some(value.to_string()), Some(n)),
                _ => {
                    self.vector_variable(
                        span_err,
                        path,
                        format!("cannot read the vector `{s}`: write `variable(value, length)`"),
                    );
                    return None;
                }
            },
            None => (arg, shape_len),
        };
        let (value, imag) = match arg.as_deref() {
            None | Some("") | Some("float") | Some("float64") | Some("float32") => (0.0, None),
            Some("complex") | Some("complex64") | Some("complex128") => (0.0, Some(0.0)),
            Some(a) => match (yaml::parse_number(a), yaml::parse_complex(a)) {
                (Some(x), _) => (x, None),
                (None, Some((re, im))) => (re, Some(im)),
                (None, None) => {
                    self.bad_var(span_err, path, &format!("`{a}` is not a number"));
                    return None;
                }
            },
        };
        if imag.is_some() && len.is_some() {
            self.vector_variable(span_err, path, "vectors of complex elements are not supported".into());
            return None;
        }
        Some(VarDecl {
            vtype,
            value,
            imag,
            len,
            span,
        })
    }

    /// The length a `shape:` gives: `None` for a scalar (`[1]`, `()`), `Some(n)` for one
    /// dimension of n; more dimensions are reported (and the declaration dropped).
    fn shape_len(&mut self, sh: &Node, path: &str) -> Option<Option<usize>> {
        if shape_is_scalar(sh) {
            return Some(None);
        }
        let dims: Vec<Option<usize>> = match &sh.value {
            Value::Seq(items) => items
                .iter()
                .map(|i| i.as_f64().filter(|x| x.fract() == 0.0 && *x >= 1.0).map(|x| x as usize))
                .collect(),
            Value::Scalar { text, .. } => text
                .trim_matches(|c| matches!(c, '(' | ')' | '[' | ']' | ' '))
                .split(',')
                .filter(|d| !d.trim().is_empty())
                .map(|d| d.trim().parse().ok())
                .collect(),
            Value::Map(_) => vec![None],
        };
        match dims.as_slice() {
            [Some(n)] if *n >= 1 => Some(Some(*n)),
            _ => {
                self.vector_variable(
                    sh.span,
                    path,
                    "a `shape` of more than one dimension is not supported".into(),
                );
                None
            }
        }
    }

    fn bad_var(&mut self, span: Span, path: &str, msg: &str) {
        self.diags.push(
            Diagnostic::error("template/invalid-variable", msg.to_string())
                .with_span(span)
                .with_path(path),
        );
    }

    /// A PyRates 1.x vector variable rustrates cannot lower (two dimensions, a list of values,
    /// complex elements).
    fn vector_variable(&mut self, span: Span, path: &str, message: String) {
        self.diags.push(
            Diagnostic::error("template/unsupported", message)
                .with_span(span)
                .with_path(path)
                .with_help(
                    "rustrates has real vectors of one dimension, `variable(0.5, 3)` or `shape: [3]`, every \
element starting at the same value (set elements with `update_var`/`param_map`, `x[1]`); otherwise write \
one node per element and couple them with edges or a `connectivity:` block",
                ),
        );
    }

    fn op_use(&mut self, f: usize, reference: &Node, overrides: Option<&Node>, path: &str) -> Option<OpUse> {
        let r = reference.as_str()?;
        let t = self.resolve_ref(r, Some(f), Some(reference.span), "template/unknown-path", path)?;
        if t.kind() != TemplateKind::Operator {
            self.wrong_kind(r, t.kind(), TemplateKind::Operator, reference.span, path);
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
                    self.wrong_kind(r, t.kind(), want, v.span, &path);
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
                        let named =
                            |o: &super::connectivity::ConnectivityDecl| o.scale.is_some() || o.velocity.is_some();
                        if named(&d) && c.connectivity.iter().any(|o| named(o) && o.name == d.name) {
                            self.diags.push(
                                Diagnostic::error(
                                    "connectivity/invalid",
                                    format!("two scaled (or velocity) connectivities are named `{}`", d.name),
                                )
                                .with_span(b.get("name").map_or(b.span, |n| n.span))
                                .with_path(path)
                                .with_help(
                                    "give each a `name:` of its own; its parameters are `<name>/scale` and `<name>/velocity`",
                                ),
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
        let template = self.edge_template(items.get(2), f, path)?;
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

impl Loader<'_> {
    /// The edge template an edge (or a connectivity block) names: `Some(None)` when absent or
    /// null; `None` (the declaration is dropped) when it is not text, does not resolve or is not
    /// an EdgeTemplate, the last two reported.
    pub(super) fn edge_template(&mut self, t: Option<&Node>, f: usize, path: &str) -> Option<Option<Rc<Template>>> {
        let Some(t) = t.filter(|t| !t.is_null()) else {
            return Some(None);
        };
        let r = t.as_str()?;
        let tpl = self.resolve_ref(r, Some(f), Some(t.span), "template/unknown-path", path)?;
        if tpl.kind() != TemplateKind::Edge {
            self.wrong_kind(r, tpl.kind(), TemplateKind::Edge, t.span, path);
            return None;
        }
        Some(Some(tpl))
    }

    /// `reference` names a `found` template where a `want` template belongs.
    fn wrong_kind(&mut self, reference: &str, found: TemplateKind, want: TemplateKind, span: Span, path: &str) {
        let article = |k: TemplateKind| match k {
            TemplateKind::Operator | TemplateKind::Edge => "an",
            TemplateKind::Node | TemplateKind::Circuit => "a",
        };
        self.diags.push(
            Diagnostic::error(
                "template/wrong-kind",
                format!(
                    "`{reference}` is {} {}, expected {} {}",
                    article(found),
                    found.class_name(),
                    article(want),
                    want.class_name()
                ),
            )
            .with_span(span)
            .with_path(path),
        );
    }
}
