//! Edges: their ends found by variable path, their parameters as variables, delays and
//! gamma-distributed spreads.

use super::*;
use crate::model::ir::SharedEntries;
use crate::template::connectivity::Entries;

pub(super) struct PendingEdge<'t> {
    pub(super) prefix: String,
    pub(super) decl: PendingDecl<'t>,
}

pub(super) enum PendingDecl<'t> {
    Edge(&'t EdgeDecl),
    Matrix(&'t ConnectivityDecl),
}

fn edge_node_name(src: &str, tgt: &str, idx: usize) -> String {
    format!("edge:{src}->{tgt}:{idx}")
}

impl Builder<'_> {
    /// Find a variable by an edge path (`node/op/var` relative to `prefix`); a path without
    /// the operator (`node/var`) is accepted when exactly one operator has that variable.
    fn find_edge_var(&self, prefix: &str, p: &str) -> Option<VarId> {
        let full = format!("{prefix}{p}");
        if let Some(&id) = self.by_name.get(&full) {
            return Some(id);
        }
        let (node, var) = full.rsplit_once('/')?;
        let cands: Vec<usize> = self
            .c
            .vars
            .iter()
            .enumerate()
            .filter(|(_, v)| v.node.as_deref() == Some(node) && v.name.rsplit_once('/').map(|x| x.1) == Some(var))
            .map(|(i, _)| i)
            .collect();
        match cands.as_slice() {
            [i] => Some(VarId(*i as u32)),
            _ => None,
        }
    }

    fn unknown_edge_end(&mut self, code: &'static str, which: &str, prefix: &str, p: &str, span: Span, path: &str) {
        // Candidates relative to the circuit the edge is written in.
        let names: Vec<String> = self
            .c
            .vars
            .iter()
            .filter(|v| v.node.is_some())
            .filter_map(|v| v.name.strip_prefix(prefix).map(str::to_string))
            .collect();
        let first = p.split('/').next().unwrap_or("");
        let last = p.rsplit('/').next().unwrap_or("");
        // Same node and variable name, other operator: the usual slip (`qif_op` for `qif_gap_op`).
        let same_var = names
            .iter()
            .find(|n| n.split('/').next() == Some(first) && n.rsplit('/').next() == Some(last))
            .cloned();
        let mut d = Diagnostic::error(code, format!("edge {which} `{p}` is not a variable of the circuit"))
            .with_span(span)
            .with_path(path.to_string());
        d = match same_var.or_else(|| suggest(p, &names)) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => {
                let mut nodes: Vec<&str> = self.c.nodes.iter().filter_map(|n| n.strip_prefix(prefix)).collect();
                nodes.dedup();
                d.with_help(format!(
                    "write it as `node/operator/variable`; nodes here: {}",
                    nodes.join(", ")
                ))
            }
        };
        self.error(d);
    }

    pub(super) fn add_edge(&mut self, prefix: &str, e: &EdgeDecl) {
        let src = self.find_edge_var(prefix, &e.source);
        let tgt = self.find_edge_var(prefix, &e.target);
        if src.is_none() {
            self.unknown_edge_end(
                "edge/unknown-source",
                "source",
                prefix,
                &e.source,
                e.source_span,
                &e.path,
            );
        }
        if tgt.is_none() {
            self.unknown_edge_end(
                "edge/unknown-target",
                "target",
                prefix,
                &e.target,
                e.target_span,
                &e.path,
            );
        }
        let (Some(src), Some(tgt)) = (src, tgt) else {
            return;
        };
        if self.edge_target_is_input(tgt, &e.target, e.target_span, &e.path) {
            self.add_resolved_edge(prefix, e, src, tgt);
        }
    }

    /// Edges of a `connectivity:` block: the edges of the equivalent edge list, in its order.
    /// Each end is looked up and checked once per node, so a wrong name is one error, not
    /// one per matrix entry.
    pub(super) fn add_connectivity(&mut self, prefix: &str, m: &ConnectivityDecl) {
        // The first node without the variable is reported, at the variable's name.
        let ends = |this: &mut Self, nodes: &[(String, Span)], var: &str, span: Span, which: &str| {
            let mut ids = Vec::with_capacity(nodes.len());
            for (node, _) in nodes {
                let p = format!("{node}/{var}");
                match this.find_edge_var(prefix, &p) {
                    Some(id) => ids.push(id),
                    None => {
                        let code = if which == "source" {
                            "edge/unknown-source"
                        } else {
                            "edge/unknown-target"
                        };
                        this.unknown_edge_end(code, which, prefix, &p, span, &m.path);
                        return None;
                    }
                }
            }
            Some(ids)
        };
        let sources = ends(self, &m.source_nodes, &m.source, m.source_span, "source");
        let targets = ends(self, &m.target_nodes, &m.target, m.target_span, "target");
        let (Some(sources), Some(targets)) = (sources, targets) else {
            return;
        };
        for (k, &t) in targets.iter().enumerate() {
            let text = format!("{}/{}", m.target_nodes[k].0, m.target);
            if !self.edge_target_is_input(t, &text, m.target_span, &m.path) {
                return;
            }
        }
        // A block's parameters: `<block>/scale`, `<block>/velocity` (what a param_map names).
        let mut block_param = |key: &str, (value, span)| {
            self.c.add_var(Var {
                name: format!("{prefix}{}/{key}", m.name),
                kind: VarKind::Param,
                value,
                node: None,
                external_input: None,
                span: Some(span),
            })
        };
        let scale = m.scale.map(|s| block_param("scale", s));
        let velocity = m.velocity.map(|v| block_param("velocity", v));
        if self.add_coupling(prefix, m, &sources, &targets, scale, velocity) {
            return;
        }
        if let Some(lengths) = m.values.iter().find(|v| v.key == "lengths") {
            self.error(
                Diagnostic::error(
                    "connectivity/invalid",
                    "`lengths` and `velocity` need a block of weights alone (no edge template with operators or variables, no complex ends)",
                )
                .with_span(lengths.key_span)
                .with_path(m.path.clone())
                .with_help("give such a block its delays per entry under `delay:`"),
            );
            return;
        }
        let n_sources = sources.len();
        // One declaration for the whole block, its values set per entry: the ends are already
        // resolved, so no per-edge strings are built (10⁶ entries at N = 1000).
        let mut e = EdgeDecl {
            source: m.source.clone(),
            source_span: m.source_span,
            target: m.target.clone(),
            target_span: m.target_span,
            template: m.template.clone(),
            params: m
                .values
                .iter()
                .map(|v| (v.key.clone(), ParamValue::Num(0.0), v.span, v.key_span))
                .collect(),
            span: m.span,
            path: m.path.clone(),
        };
        for (i, j) in m.edges() {
            for (p, v) in e.params.iter_mut().zip(&m.values) {
                p.1 = ParamValue::Num(v.entries.at(i, j, n_sources));
            }
            self.add_resolved_edge(prefix, &e, sources[j], targets[i]);
            if let (Some(id), Some(edge)) = (scale, self.c.edges.last_mut()) {
                edge.params.push(("scale".into(), id));
            }
        }
    }

    /// A block as one [`Coupling`] (weights and delays as data) when nothing but weights and
    /// delays describe its edges: no edge template with operators or variables, no spread
    /// (gamma chains are states per edge), no complex ends (two parts per term). Returns
    /// false, adding nothing, for any other block, which is then expanded into its edges.
    fn add_coupling(
        &mut self,
        prefix: &str,
        m: &ConnectivityDecl,
        sources: &[VarId],
        targets: &[VarId],
        scale: Option<VarId>,
        velocity: Option<VarId>,
    ) -> bool {
        let plain_values = m
            .values
            .iter()
            .all(|v| matches!(v.key.as_str(), "weight" | "delay" | "lengths"));
        let copies_source = m
            .template
            .as_ref()
            .is_none_or(|t| !matches!(&t.body, Body::Edge(nt) if !nt.operators.is_empty()));
        let complex = sources.iter().chain(targets).any(|v| self.imag.contains_key(v));
        if !plain_values || !copies_source || complex {
            return false;
        }
        let (ns, nt) = (sources.len(), targets.len());
        let weight = &m.values[0].entries;
        // With a velocity, `delays` holds the lengths (see `Coupling::delays`).
        let delay = m
            .values
            .iter()
            .find(|v| matches!(v.key.as_str(), "delay" | "lengths"))
            .map(|v| &v.entries);
        // One scan decides dense or CSR. A dense block keeps every entry in row-major order,
        // which is the matrix as read: it shares the loaded matrices (no copy, no per-entry
        // work; 10⁶ entries at N = 1000).
        let kept = |w: f64| w.abs() > m.min_weight;
        let dense = match weight {
            Entries::Scalar(w) => kept(*w) || nt * ns == 0,
            Entries::Matrix(w) => w.iter().all(|&w| kept(w)),
        };
        let (row_starts, columns, weights, delays) = if dense {
            let whole = |e: &Entries| -> SharedEntries<f64> {
                match e {
                    Entries::Matrix(values) => values.clone().into(),
                    Entries::Scalar(x) => vec![*x; nt * ns].into(),
                }
            };
            let row_starts = (0..=nt).map(|i| i * ns).collect();
            (row_starts, SharedEntries::default(), whole(weight), delay.map(whole))
        } else {
            let mut row_starts = Vec::with_capacity(nt + 1);
            row_starts.push(0);
            let mut columns = Vec::new();
            let mut weights = Vec::new();
            let mut delays = delay.map(|_| Vec::new());
            // Entries in the edge list's order for each target: ascending source.
            for i in 0..nt {
                for j in 0..ns {
                    let w = weight.at(i, j, ns);
                    if kept(w) {
                        columns.push(j as u32);
                        weights.push(w);
                        if let (Some(d), Some(ds)) = (delay, delays.as_mut()) {
                            ds.push(d.at(i, j, ns));
                        }
                    }
                }
                row_starts.push(weights.len());
            }
            (row_starts, columns.into(), weights.into(), delays.map(Into::into))
        };
        self.c.couplings.push(Coupling {
            name: format!("{prefix}{}", m.name),
            sources: sources.to_vec(),
            targets: targets.to_vec(),
            row_starts,
            columns,
            weights,
            delays,
            scale: scale.map(Scale::Param),
            velocity: velocity.map(Scale::Param),
            span: Some(m.span),
            lowered: false,
            after_edges: self.c.edges.len(),
        });
        let index = |ids: &[VarId]| -> HashMap<String, usize> {
            ids.iter()
                .enumerate()
                .map(|(k, v)| (self.c.var(*v).node.clone().unwrap_or_default(), k))
                .collect()
        };
        self.block_ends.push((index(sources), index(targets)));
        true
    }

    fn edge_target_is_input(&mut self, tgt: VarId, target: &str, target_span: Span, path: &str) -> bool {
        let tv = self.c.var(tgt);
        // Inputs, also those fed inside their node (algebraic without an equation of their own).
        let is_input = tv.kind == VarKind::Input || (tv.kind == VarKind::Algebraic && !self.defined.contains_key(&tgt));
        if !is_input {
            let what = match tv.kind {
                VarKind::State => "a state variable",
                VarKind::Param => "a constant",
                _ => "computed by an equation",
            };
            self.error(
                Diagnostic::error(
                    "edge/target-not-input",
                    format!("edge target `{target}` is {what}, not an input"),
                )
                .with_span(target_span)
                .with_path(path)
                .with_help("edges deliver into variables declared as `input`"),
            );
            return false;
        }
        true
    }

    fn add_resolved_edge(&mut self, prefix: &str, e: &EdgeDecl, src: VarId, tgt: VarId) {
        let src_node = self.c.var(src).node.clone().unwrap_or_default();
        let tgt_node = self.c.var(tgt).node.clone().unwrap_or_default();
        let in_blocks = self
            .block_ends
            .iter()
            .zip(&self.c.couplings)
            .filter(|((cols, rows), cp)| match (cols.get(&src_node), rows.get(&tgt_node)) {
                (Some(&j), Some(&i)) => cp.entry(i, j).is_some(),
                _ => false,
            })
            .count();
        let cnt = self
            .edge_counts
            .entry((src_node.clone(), tgt_node.clone()))
            .or_insert(0);
        let idx = *cnt + in_blocks;
        *cnt += 1;
        let ename = edge_node_name(&src_node, &tgt_node, idx);
        let mut params: Vec<(String, VarId)> = Vec::new();
        let mut add_param = |this: &mut Self, key: &str, value: f64, span: Option<Span>| {
            let id = this.c.add_var(Var {
                name: format!("{ename}/{key}"),
                kind: VarKind::Param,
                value,
                node: None,
                external_input: None,
                span,
            });
            params.push((key.to_string(), id));
        };
        let num = |key: &str| {
            e.params
                .iter()
                .find(|(k, _, _, _)| k == key)
                .and_then(|(_, v, s, _)| match v {
                    ParamValue::Num(x) => Some((*x, *s)),
                    ParamValue::Ref(_) => None,
                })
        };
        for (k, v, sp, key_span) in &e.params {
            let core = matches!(k.as_str(), "weight" | "delay" | "spread");
            if core && matches!(v, ParamValue::Ref(r) if !matches!(r.as_str(), "null" | "~" | "")) {
                self.error(
                    Diagnostic::error("edge/invalid", format!("edge `{k}` must be a number"))
                        .with_span(*sp)
                        .with_path(e.path.clone()),
                );
            } else if !core && e.template.is_none() {
                let keys = ["weight", "delay", "spread"].map(String::from);
                let mut d = Diagnostic::error("edge/unknown-parameter", format!("unknown edge parameter `{k}`"))
                    .with_span(*key_span)
                    .with_path(e.path.clone());
                d = match suggest(k, &keys) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help("an edge without a template takes `weight`, `delay` and `spread`"),
                };
                self.error(d);
            }
        }
        let (w, ws) = num("weight").map_or((1.0, None), |(x, s)| (x, Some(s)));
        add_param(self, "weight", w, ws.or(Some(e.span)));
        for key in ["delay", "spread"] {
            if let Some((x, s)) = num(key) {
                if x < 0.0 || !x.is_finite() {
                    self.error(
                        Diagnostic::error("edge/invalid", format!("`{key}` must be a finite number >= 0"))
                            .with_span(s)
                            .with_path(e.path.clone()),
                    );
                }
                add_param(self, key, x, Some(s));
            }
        }
        if let Some((_, s)) = num("spread") {
            if num("delay").is_none_or(|(d, _)| d <= 0.0) {
                self.error(
                    Diagnostic::error("edge/invalid", "`spread` needs a positive `delay`")
                        .with_span(s)
                        .with_path(e.path.clone()),
                );
            }
        }
        let mut source = src;
        if let Some(t) = &e.template {
            // An edge template without operators (PyRates' `DummyEdge`) is a weighted copy.
            if let Some(nt) = match &t.body {
                Body::Edge(nt) if !nt.operators.is_empty() => Some(nt),
                _ => None,
            } {
                let scopes = self.add_node(&ename, nt, None);
                // Overrides of edge-template variables: `tpl/op/var`, `op/var` or `var`.
                let mut wired: HashSet<VarId> = HashSet::new();
                for (k, v, s, key_span) in &e.params {
                    if matches!(k.as_str(), "weight" | "delay" | "spread") {
                        continue;
                    }
                    let key = k.strip_prefix(&format!("{}/", t.name)).unwrap_or(k);
                    let found = scopes.iter().find_map(|(op, sc, _)| match key.split_once('/') {
                        Some((o, vn)) if o == op => sc.get(vn).copied(),
                        None => sc.get(key).copied(),
                        _ => None,
                    });
                    let Some(id) = found else {
                        self.error(
                            Diagnostic::error(
                                "edge/unknown-parameter",
                                format!("edge template `{}` has no variable `{k}`", t.name),
                            )
                            .with_span(*key_span)
                            .with_path(e.path.clone()),
                        );
                        continue;
                    };
                    match v {
                        ParamValue::Num(x) => self.c.vars[id.0 as usize].value = *x,
                        ParamValue::Ref(r) => {
                            let from = if r == "source" {
                                Some(src)
                            } else {
                                self.find_edge_var(prefix, r)
                            };
                            match from {
                                Some(f) => {
                                    self.feed(id, f);
                                    wired.insert(id);
                                }
                                None => self.unknown_edge_end("edge/unknown-source", "input", prefix, r, *s, &e.path),
                            }
                        }
                    }
                }
                // Unwired inputs of the edge operators receive the source.
                let mut out: Option<VarId> = None;
                for (op, sc, order) in &scopes {
                    let Some(Body::Operator(opt)) =
                        nt.operators.iter().find(|u| &u.name == op).map(|u| &u.template.body)
                    else {
                        continue;
                    };
                    for id in order {
                        let vn = self.c.var(*id).name.rsplit('/').next().unwrap_or("").to_string();
                        let vt = opt.variables.get(&vn).map(|d| d.vtype);
                        if vt == Some(VType::Input) && self.c.var(*id).kind == VarKind::Input && !wired.contains(id) {
                            self.feed(*id, src);
                        }
                        if vt == Some(VType::Output) {
                            out = Some(*id);
                        }
                    }
                    let _ = sc;
                }
                match out {
                    Some(o) => source = o,
                    None => self.error(
                        Diagnostic::error(
                            "edge/invalid",
                            format!("edge template `{}` declares no `output` variable", t.name),
                        )
                        .with_span(e.span)
                        .with_path(e.path.clone()),
                    ),
                }
            }
        }
        if self.imag.contains_key(&source) {
            if let Some((_, s)) = num("delay").filter(|(d, _)| *d > 0.0) {
                self.error(
                    Diagnostic::error(
                        "edge/complex-delay",
                        "a delay on an edge whose source is complex-valued is not supported",
                    )
                    .with_span(s)
                    .with_path(e.path.clone())
                    .with_help("rustrates delays real variables only; remove the delay or couple a real variable"),
                );
            }
        }
        self.c.edges.push(Edge {
            source_node: src_node,
            target_node: tgt_node,
            idx,
            source,
            target: tgt,
            params,
            span: Some(e.span),
        });
    }
}
