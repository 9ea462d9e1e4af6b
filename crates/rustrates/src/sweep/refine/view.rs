//! The finest lattice of a refined point set, for plotting and for regular outputs.

use std::collections::VecDeque;

use super::{distinct, Axis, LEVEL_KEY, MAX_LEVELS};
use crate::sweep::SweepResult;

/// The finest lattice of a refined point set, each node filled from the nearest point.
#[derive(Clone, Debug, PartialEq)]
pub struct RegularView {
    /// The lattice values of the first and (2-D) second key.
    pub axes: Vec<Vec<f64>>,
    /// Per node (first key fastest), the index of the point whose values it shows.
    pub source: Vec<usize>,
}

/// The regular view of a refined point set: `keys` and `values` are its grid columns,
/// [`LEVEL_KEY`] among them. The lattice is the finest level present (coarse values: the
/// level-0 points'). Every node takes the point nearest to it in lattice steps (Chebyshev
/// distance: a breadth-first fill over the 8 neighbours in 2-D), ties going to the point first
/// in file order; computed nodes show themselves. `None` when the columns are not a refined
/// point set (no level column, or points off the lattice).
pub fn regular_view(keys: &[String], values: &[Vec<f64>]) -> Option<RegularView> {
    let li = keys.iter().position(|k| k == LEVEL_KEY)?;
    let param: Vec<usize> = (0..keys.len()).filter(|&k| k != li).collect();
    if !(1..=2).contains(&param.len()) {
        return None;
    }
    let levels = values[li].iter().copied().fold(0.0f64, f64::max);
    if !(0.0..=f64::from(MAX_LEVELS)).contains(&levels) {
        return None;
    }
    let scale = 1usize << levels as u32;
    let coarse_of = |k: usize| -> Vec<f64> {
        let level0: Vec<f64> = values[k]
            .iter()
            .zip(&values[li])
            .filter(|(_, l)| **l == 0.0)
            .map(|(v, _)| *v)
            .collect();
        distinct(&level0)
    };
    let axes: Vec<Axis> = param
        .iter()
        .map(|&k| Axis {
            coarse: coarse_of(k),
            scale,
        })
        .collect();
    if axes.iter().any(|a| a.coarse.len() < 2) {
        return None;
    }
    let (nx, ny) = (axes[0].nodes(), axes.get(1).map_or(1, Axis::nodes));
    let mut source = vec![usize::MAX; nx * ny];
    let mut queue = VecDeque::new();
    for (p, &x) in values[param[0]].iter().enumerate() {
        let i = axes[0].node_of(x)?;
        let j = match axes.get(1) {
            Some(a) => a.node_of(values[param[1]][p])?,
            None => 0,
        };
        let at = j * nx + i;
        if source[at] == usize::MAX {
            source[at] = p;
            queue.push_back(at);
        }
    }
    while let Some(at) = queue.pop_front() {
        let (i, j) = ((at % nx) as isize, (at / nx) as isize);
        for dj in -1..=1isize {
            for di in -1..=1isize {
                let (x, y) = (i + di, j + dj);
                if (di, dj) == (0, 0) || x < 0 || y < 0 || x >= nx as isize || y >= ny as isize {
                    continue;
                }
                let next = y as usize * nx + x as usize;
                if source[next] == usize::MAX {
                    source[next] = source[at];
                    queue.push_back(next);
                }
            }
        }
    }
    Some(RegularView {
        axes: axes
            .iter()
            .map(|a| (0..a.nodes()).map(|n| a.value(n)).collect())
            .collect(),
        source,
    })
}

/// A refined result as a regular result over the finest lattice ([`regular_view`]): grid
/// keys without [`LEVEL_KEY`], first key fastest, summaries and status of each node's source
/// point, no traces. `None` when the result is not refined.
pub fn regular_result(result: &SweepResult) -> Option<SweepResult> {
    let view = regular_view(&result.grid_keys, &result.grid_values)?;
    let nx = view.axes[0].len();
    let nc = result.columns.len();
    let keys: Vec<String> = result.grid_keys.iter().filter(|k| *k != LEVEL_KEY).cloned().collect();
    let mut grid_values = vec![view
        .source
        .iter()
        .enumerate()
        .map(|(at, _)| view.axes[0][at % nx])
        .collect::<Vec<_>>()];
    if let Some(ys) = view.axes.get(1) {
        grid_values.push((0..view.source.len()).map(|at| ys[at / nx]).collect());
    }
    Some(SweepResult {
        circuit_name: result.circuit_name.clone(),
        labels: (0..view.source.len())
            .map(|at| format!("{}_{at}", result.circuit_name))
            .collect(),
        grid_keys: keys,
        grid_values,
        time: result.time.clone(),
        columns: result.columns.clone(),
        traces: None,
        summaries: result.summaries.as_ref().map(|s| crate::sweep::Summaries {
            stats: s.stats.clone(),
            values: s
                .values
                .iter()
                .map(|v| {
                    view.source
                        .iter()
                        .flat_map(|&p| v[p * nc..(p + 1) * nc].iter().copied())
                        .collect()
                })
                .collect(),
        }),
        status: view.source.iter().map(|&p| result.status[p]).collect(),
    })
}
