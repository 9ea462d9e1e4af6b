//! The parsers of the spec file's sections (grid, map, inputs, regime, refine, starts, outputs).

use std::path::Path;

use indexmap::IndexMap;
use rustrates::solve::Signal;
use rustrates::sweep::checks;
use rustrates::sweep::refine::{Criterion, Refine};
use rustrates::sweep::regime::{RandomStarts, RegimeSettings};
use rustrates::sweep::{EdgeRef, Grid, MapEntry, MapTargets, ParamMap};
use rustrates::template::yaml::Node;

use super::Ctx;
use crate::signal;

/// `{key: [values] | {linspace: [a, b, n]} | {arange: [a, b, step]} | number}`; absent = one
/// point with the template's own values.
pub(super) fn parse_grid(node: Option<&Node>, permute: bool, cx: &mut Ctx<'_>) -> Option<Grid> {
    let Some(node) = node else {
        return Grid::from_rows(Vec::new(), &[Vec::new()]).ok();
    };
    let map = cx.mapping(
        node,
        format!("`param_grid` maps keys to value lists, found {}", node.kind_name()),
    )?;
    let mut values: IndexMap<String, Vec<f64>> = IndexMap::new();
    for (k, v) in map {
        let key = cx.string(k, "param_grid key")?;
        let vals = grid_values(v, &key, cx)?;
        if vals.is_empty() {
            cx.err(v, "spec/empty-values", format!("`param_grid.{key}` has no values"));
            return None;
        }
        values.insert(key, vals);
    }
    match Grid::from_values(&values, permute) {
        Ok(g) => Some(g),
        Err(e @ rustrates::sweep::GridError::Memory(_)) => {
            cx.err(node, "spec/too-large", e.to_string());
            None
        }
        Err(e) => {
            cx.err_help(
                node,
                "spec/bad-grid",
                e.to_string(),
                "give every key the same number of values, or set `permute_grid: true`",
            );
            None
        }
    }
}

fn grid_values(v: &Node, key: &str, cx: &mut Ctx<'_>) -> Option<Vec<f64>> {
    if let Some(x) = v.as_f64() {
        return Some(vec![x]);
    }
    if let Some(items) = v.as_seq() {
        return items
            .iter()
            .map(|n| cx.number(n, &format!("param_grid.{key}")))
            .collect();
    }
    let range = |cx: &mut Ctx<'_>, n: &Node, name: &str| -> Option<[f64; 3]> {
        let items = n.as_seq().filter(|s| s.len() == 3);
        let Some(items) = items else {
            cx.err(
                n,
                "spec/bad-range",
                format!("`{name}` takes three numbers: [start, stop, count_or_step]"),
            );
            return None;
        };
        Some([
            cx.number(&items[0], name)?,
            cx.number(&items[1], name)?,
            cx.number(&items[2], name)?,
        ])
    };
    if let Some(n) = v.get("linspace") {
        let [a, b, count] = range(cx, n, "linspace")?;
        if count < 1.0 || count.fract() != 0.0 {
            cx.err(
                n,
                "spec/bad-range",
                "the count of `linspace` must be a whole number ≥ 1",
            );
            return None;
        }
        if let Err(e) = checks::check_alloc(
            format!("`linspace` of {count:.4e} values"),
            count * 8.0,
            "sweep fewer values, or split the sweep into several",
        ) {
            cx.err(n, "spec/too-large", e.to_string());
            return None;
        }
        let count = count as usize;
        // numpy's linspace: start + i·step, with the last value exactly `stop`.
        let step = if count > 1 { (b - a) / (count - 1) as f64 } else { 0.0 };
        return Some(
            (0..count)
                .map(|i| {
                    if i + 1 == count && count > 1 {
                        b
                    } else {
                        a + i as f64 * step
                    }
                })
                .collect(),
        );
    }
    if let Some(n) = v.get("arange") {
        let [a, b, step] = range(cx, n, "arange")?;
        if step == 0.0 || !step.is_finite() || (b - a) / step > 1e8 {
            cx.err(
                n,
                "spec/bad-range",
                "the step of `arange` must be non-zero and give at most 1e8 values",
            );
            return None;
        }
        let count = ((b - a) / step).ceil().max(0.0) as usize;
        return Some((0..count).map(|i| a + i as f64 * step).collect());
    }
    cx.err_help(
        v,
        "spec/bad-values",
        format!("`param_grid.{key}` must be a number, a list of numbers, or a range"),
        "write e.g. `[1, 2, 3]` or `{linspace: [-5, 5, 11]}`",
    );
    None
}

pub(super) fn parse_param_map(node: &Node, cx: &mut Ctx<'_>) -> ParamMap {
    let mut map = ParamMap::new();
    let shape = "`param_map` maps grid keys to {vars, nodes} or {vars, edges}";
    cx.each_entry(node, shape, "param_map key", |cx, key, _, v| {
        let vars = match v.get("vars") {
            Some(n) => cx.strings(n, "vars"),
            None => {
                cx.err(v, "spec/missing-key", format!("`param_map.{key}` has no `vars`"));
                return;
            }
        };
        let targets = if let Some(n) = v.get("nodes") {
            MapTargets::Nodes(cx.strings(n, "nodes"))
        } else if let Some(n) = v.get("edges") {
            let mut edges = Vec::new();
            for e in n.as_seq().unwrap_or_default() {
                let parts = e.as_seq().unwrap_or_default();
                if !(2..=3).contains(&parts.len()) {
                    cx.err(
                        e,
                        "spec/bad-edge",
                        "an edge is [source, target] or [source, target, index]",
                    );
                    continue;
                }
                let (Some(source), Some(target)) =
                    (cx.string(&parts[0], "edge source"), cx.string(&parts[1], "edge target"))
                else {
                    continue;
                };
                let idx = parts
                    .get(2)
                    .and_then(|n| cx.number(n, "edge index"))
                    .map(|x| x as usize);
                edges.push(EdgeRef { source, target, idx });
            }
            MapTargets::Edges(edges)
        } else {
            MapTargets::Paths
        };
        map.entries.insert(key, MapEntry { vars, targets });
    });
    map
}

pub(super) fn parse_inputs(node: &Node, base_dir: &Path, cx: &mut Ctx<'_>) -> Vec<(String, Signal)> {
    let mut out = Vec::new();
    let shape = "`inputs` maps node/op/var to a constant or {file: PATH}";
    cx.each_entry(node, shape, "input variable", |cx, var, _, v| {
        if let Some(x) = v.as_f64() {
            out.push((var, Signal::Constant(x)));
        } else if let Some(f) = v.get("file") {
            let Some(name) = cx.string(f, "file") else { return };
            match signal::read_signal_file(&base_dir.join(&name)) {
                Ok(s) => out.push((var, s)),
                Err(e) => cx.err(f, "spec/bad-input-file", format!("{name}: {e}")),
            }
        } else {
            cx.err_help(
                v,
                "spec/bad-input",
                format!("input `{var}` must be a number or {{file: PATH}}"),
                "CSV/text (one row per step, one column per grid point) or .npy",
            );
        }
    });
    out
}

/// `regime: {stationary_tol: 1e-6, period_rtol: 0.01, min_cycles: 3, flat_tol: 1e-9}`; the
/// engine checks the values (`sweep::checks::check_regime`).
pub(super) fn parse_regime(node: &Node, cx: &mut Ctx<'_>) -> RegimeSettings {
    let mut out = RegimeSettings::default();
    let shape = "`regime` maps thresholds to numbers, e.g. `regime: {stationary_tol: 1.0e-6}`";
    cx.each_entry(node, shape, "regime threshold", |cx, key, k, v| {
        let Some(x) = cx.number(v, &format!("regime.{key}")) else {
            return;
        };
        match key.as_str() {
            "stationary_tol" => out.stationary_tol = x,
            "period_rtol" => out.period_rtol = x,
            "flat_tol" => out.flat_tol = x,
            "attractor_rtol" => out.attractor_rtol = x,
            "min_cycles" if x >= 0.0 && x.fract() == 0.0 => out.min_cycles = x as usize,
            "min_cycles" => cx.err(v, "spec/not-a-count", "`regime.min_cycles` must be a whole number"),
            _ => cx.err(
                k,
                "spec/unknown-key",
                format!("unknown regime threshold `{key}`: use stationary_tol, period_rtol, min_cycles, flat_tol, attractor_rtol"),
            ),
        }
    });
    out
}

/// `refine: {levels: 5, criterion: regime | <summary>, tolerance: 0.1}` (criterion default
/// `regime`, tolerance 0); the engine checks the values (`sweep::refine::check`).
pub(super) fn parse_refine(node: &Node, cx: &mut Ctx<'_>) -> Option<Refine> {
    let entries = cx.mapping(
        node,
        "`refine` is a mapping, e.g. `refine: {levels: 5, criterion: regime}`",
    )?;
    let (mut levels, mut criterion, mut tolerance) = (None, Some(Criterion::Regime), 0.0);
    for (k, v) in entries {
        let Some(key) = cx.string(k, "refine setting") else {
            continue;
        };
        match key.as_str() {
            "levels" => {
                let Some(x) = cx.number(v, "refine.levels") else {
                    levels = Some(None);
                    continue;
                };
                if x < 0.0 || x.fract() != 0.0 || x > f64::from(u32::MAX) {
                    cx.err(v, "spec/not-a-count", "`refine.levels` must be a whole number, e.g. 5");
                    levels = Some(None);
                } else {
                    levels = Some(Some(x as u32));
                }
            }
            "criterion" => {
                criterion = cx.string(v, "refine.criterion").and_then(|name| {
                    let stat = Criterion::parse(&name);
                    if stat.is_none() {
                        cx.err_help(
                            v,
                            "spec/unknown-statistic",
                            format!("unknown refine criterion `{name}`"),
                            "use regime, or the name of a summary the sweep computes (mean, max, period, …)",
                        );
                    }
                    stat
                });
            }
            "tolerance" => tolerance = cx.number(v, "refine.tolerance").unwrap_or(f64::NAN),
            _ => cx.err(
                k,
                "spec/unknown-key",
                format!("unknown refine setting `{key}`: use levels, criterion, tolerance"),
            ),
        }
    }
    let Some(levels) = levels else {
        cx.err(
            node,
            "spec/missing-key",
            "`refine` needs `levels`, e.g. `refine: {levels: 5}`",
        );
        return None;
    };
    Some(Refine {
        levels: levels?,
        criterion: criterion?,
        tolerance,
    })
}

/// `initial_conditions: [{PC/Op_e/r: 0.01}, {PC/Op_e/r: 2.0, PC/Op_e/v: -1}]`; the engine
/// checks that the names are states.
pub(super) fn parse_initial_conditions(node: &Node, cx: &mut Ctx<'_>) -> Vec<Vec<(String, f64)>> {
    let Some(starts) = node.as_seq() else {
        cx.err(
            node,
            "spec/not-a-list",
            "`initial_conditions` is a list of starts, e.g. `[{PC/Op_e/r: 0.01}, {PC/Op_e/r: 2.0}]`",
        );
        return Vec::new();
    };
    let mut out = Vec::with_capacity(starts.len());
    for start in starts {
        let Some(entries) = cx.mapping(
            start,
            "each start maps state variables to initial values, e.g. `{PC/Op_e/r: 0.01}`",
        ) else {
            continue;
        };
        let mut values = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            if let (Some(name), Some(x)) = (cx.string(k, "state variable"), cx.number(v, "initial value")) {
                values.push((name, x));
            }
        }
        out.push(values);
    }
    out
}

/// `random_starts: {n: 8, seed: 0, bounds: {PC/Op_e/r: [0, 3], PC/Op_e/v: [-3, 0]}}` (seed
/// defaults to 0); the engine checks the values and the names.
pub(super) fn parse_random_starts(node: &Node, cx: &mut Ctx<'_>) -> Option<RandomStarts> {
    const HELP: &str = "`random_starts` is {n: starts per point, seed: integer, bounds: {state: [low, high]}}";
    let entries = cx.mapping(node, HELP)?;
    let mut out = RandomStarts {
        n: 0,
        seed: 0,
        bounds: Vec::new(),
    };
    let mut ok = true;
    let count = |cx: &mut Ctx<'_>, v: &Node, what: &str| -> Option<u64> {
        let x = cx.number(v, what)?;
        if x < 0.0 || x.fract() != 0.0 || x > 2f64.powi(53) {
            cx.err(v, "spec/not-a-count", format!("`{what}` must be a whole number ≥ 0"));
            return None;
        }
        Some(x as u64)
    };
    let mut has_n = false;
    for (k, v) in entries {
        let Some(key) = cx.string(k, "random_starts key") else {
            ok = false;
            continue;
        };
        match key.as_str() {
            "n" => {
                has_n = true;
                match count(cx, v, "random_starts.n") {
                    Some(n) => out.n = n as usize,
                    None => ok = false,
                }
            }
            "seed" => match count(cx, v, "random_starts.seed") {
                Some(seed) => out.seed = seed,
                None => ok = false,
            },
            "bounds" => {
                let Some(bounds) = cx.mapping(
                    v,
                    "`random_starts.bounds` maps states to [low, high], e.g. {PC/Op_e/r: [0, 3]}",
                ) else {
                    ok = false;
                    continue;
                };
                for (name, range) in bounds {
                    let pair = range.as_seq().filter(|s| s.len() == 2);
                    let Some(pair) = pair else {
                        cx.err(
                            range,
                            "spec/bad-bounds",
                            "each bound is a list [low, high], e.g. [0, 3]",
                        );
                        ok = false;
                        continue;
                    };
                    match (
                        cx.string(name, "state variable"),
                        cx.number(&pair[0], "low bound"),
                        cx.number(&pair[1], "high bound"),
                    ) {
                        (Some(name), Some(low), Some(high)) => out.bounds.push((name, low, high)),
                        _ => ok = false,
                    }
                }
            }
            _ => {
                cx.err(
                    k,
                    "spec/unknown-key",
                    format!("unknown random_starts key `{key}`: use n, seed, bounds"),
                );
                ok = false;
            }
        }
    }
    if !has_n {
        cx.err(node, "spec/missing-key", format!("`random_starts` needs `n`; {HELP}"));
        ok = false;
    }
    ok.then_some(out)
}

pub(super) fn parse_outputs(node: &Node, cx: &mut Ctx<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(entries) = cx.mapping(node, "`outputs` maps keys to node/op/var, e.g. `r: PC/Op_e/r`") else {
        return out;
    };
    for (k, v) in entries {
        if let (Some(key), Some(path)) = (cx.string(k, "output key"), cx.string(v, "output variable")) {
            out.push((key, path));
        }
    }
    out
}
