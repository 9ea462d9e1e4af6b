//! Engine errors about a spec placed at the setting of the spec file they concern.

use std::path::Path;

use rustrates::sweep::{Setting, SweepError};
use rustrates::syntax::{Diagnostic, Diagnostics};
use rustrates::template::yaml::Node;

/// Diagnostics for `err` at the node of the setting it names (the whole file when it names
/// none the file sets).
pub(super) fn locate_in(root: &Node, path: &Path, err: &SweepError) -> Diagnostics {
    let file = path.display().to_string();
    let at = |node: &Node, code: &'static str, msg: String, help: Option<String>| {
        let d = Diagnostic::error(code, msg)
            .with_span(node.span)
            .with_path(file.clone());
        match help {
            Some(h) => d.with_help(h),
            None => d,
        }
    };
    // The entry `key` of the mapping `map_key` (`param_grid`, `inputs`, ...): its key and value.
    let entry = |map_key: &str, key: &str| -> Option<&(Node, Node)> {
        root.get(map_key)?
            .as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
    };
    let key_node = |map_key: &str, key: &str| entry(map_key, key).map(|(k, _)| k);
    let value_node = |map_key: &str, key: &str| entry(map_key, key).map(|(_, v)| v);
    let mut diags = Diagnostics::new();
    match err {
        SweepError::Settings(settings) => {
            // The engine's code and message (what Python reports too), at the setting's line.
            for (p, problem) in settings.iter().zip(err.problems()) {
                let node = match &p.setting {
                    Setting::SimulationTime => root.get("simulation_time"),
                    Setting::StepSize => root.get("step_size").or_else(|| root.get("dt")),
                    Setting::SamplingStepSize => root.get("sampling_step_size"),
                    Setting::Cutoff => root.get("cutoff"),
                    Setting::ParamGrid => root.get("param_grid"),
                    Setting::GridKey(k) => value_node("param_grid", k),
                    Setting::Size => root.get("keep_traces"),
                    Setting::Regime(k) => value_node("regime", k),
                    Setting::InitialConditions => root.get("initial_conditions"),
                    Setting::RandomStarts => root.get("random_starts"),
                }
                .unwrap_or(root);
                diags.push(at(node, problem.code, problem.message, problem.help));
            }
        }
        SweepError::UnknownOutput { key, .. } => {
            let node = value_node("outputs", key).unwrap_or(root);
            diags.push(at(node, "spec/unknown-output", err.to_string(), None));
        }
        SweepError::NoOutputs => {
            diags.push(at(
                root.get("outputs").unwrap_or(root),
                "spec/no-outputs",
                err.to_string(),
                None,
            ));
        }
        SweepError::UnknownInput { name, .. } | SweepError::NotAnInput { name, .. } => {
            let node = key_node("inputs", name).unwrap_or(root);
            diags.push(at(node, "spec/bad-input", err.to_string(), None));
        }
        SweepError::ParamMap(pm) => {
            use rustrates::sweep::ParamMapError as E;
            let (key, field) = match pm {
                E::UnknownKey { key, .. } => {
                    let node = key_node("param_grid", key).unwrap_or(root);
                    diags.push(at(
                        node,
                        "spec/param-map",
                        err.to_string(),
                        Some(format!(
                            "add `{key}: {{vars: [op/var], nodes: [node]}}` under `param_map`"
                        )),
                    ));
                    return diags;
                }
                E::UnknownNode { key, .. } | E::EdgeNotFound { key, .. } | E::BlockEntry { key, .. } => {
                    (key, Some("nodes"))
                }
                E::VarNotFound { key, .. }
                | E::PathNotFound { key, .. }
                | E::EdgeVarNotFound { key, .. }
                | E::NotSettable { key, .. }
                | E::NoVars { key } => (key, Some("vars")),
                E::NoTargets { key, what } => (key, Some(*what)),
            };
            let entry = value_node("param_map", key);
            let node = entry
                .and_then(|e| field.and_then(|f| e.get(f).or_else(|| if f == "nodes" { e.get("edges") } else { None })))
                .or(entry)
                .or_else(|| root.get("param_map"))
                .unwrap_or(root);
            diags.push(at(node, "spec/param-map", err.to_string(), None));
        }
        SweepError::Grid(_) => {
            diags.push(at(
                root.get("param_grid").unwrap_or(root),
                "spec/bad-grid",
                err.to_string(),
                None,
            ));
        }
        SweepError::Memory(m) => {
            diags.push(at(root, "spec/too-large", m.to_string(), None));
        }
        SweepError::Refine(r) => {
            use rustrates::sweep::refine::RefineError as E;
            let node = match r {
                E::Levels { .. } => value_node("refine", "levels"),
                E::Tolerance { .. } => value_node("refine", "tolerance"),
                E::MissingSummary { .. } => value_node("refine", "criterion").or_else(|| root.get("summaries")),
                E::Keys { .. } | E::TooFewValues { .. } | E::NotCartesian { .. } | E::ReservedKey => {
                    root.get("param_grid")
                }
                E::PerPointInput { name } => key_node("inputs", name),
                E::Shard => None,
            }
            .or_else(|| root.get("refine"))
            .unwrap_or(root);
            diags.push(at(node, "spec/refine", err.to_string(), None));
        }
        SweepError::RandomStart { name, .. } => {
            let node = root
                .get("random_starts")
                .and_then(|r| r.get("bounds"))
                .and_then(|b| b.as_map())
                .and_then(|b| b.iter().find(|(k, _)| k.as_str() == Some(name)).map(|(k, _)| k))
                .unwrap_or(root);
            for problem in err.problems() {
                diags.push(at(node, problem.code, problem.message, problem.help));
            }
        }
        other => {
            for problem in other.problems() {
                diags.push(at(root, problem.code, problem.message, problem.help));
            }
        }
    }
    diags
}
