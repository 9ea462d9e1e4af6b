//! PNG plots: traces over time, heatmaps of a summary over two grid keys, and phase diagrams
//! of the `regime` summary.
//!
//! The font is embedded (DejaVu Sans, see `assets/DejaVuSans-LICENSE`) so plotting needs no
//! system font libraries.

use std::path::Path;
use std::sync::Once;

use anyhow::{bail, Context};
use plotters::prelude::*;
use rustrates::sweep::regime::Regime;
use rustrates::sweep::{Statistic, SweepResult};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut ok = true;
    ONCE.call_once(|| ok = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if !ok {
        bail!("the embedded font could not be loaded");
    }
    Ok(())
}

fn finite_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 * lo.abs().max(1.0) {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

/// Line plot of several series sharing a time axis.
pub(crate) fn lines(png: &Path, title: &str, time: &[f64], series: &[(String, Vec<f64>)]) -> anyhow::Result<()> {
    register_font()?;
    let root = BitMapBackend::new(png, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let (t0, t1) = (
        time.first().copied().unwrap_or(0.0),
        time.last().copied().unwrap_or(1.0).max(1e-12),
    );
    let (y0, y1) = finite_range(series.iter().flat_map(|(_, v)| v.iter().copied()));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(t0..t1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .label_style((FAMILY, 14))
        .draw()?;
    for (i, (name, values)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = time
            .iter()
            .zip(values)
            .filter(|(_, v)| v.is_finite())
            .map(|(t, v)| (*t, *v));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .label_font((FAMILY, 14))
        .draw()?;
    root.present()
        .with_context(|| format!("cannot write {}", png.display()))?;
    Ok(())
}

/// Viridis, sampled at 9 points and interpolated linearly.
fn colormap(x: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    if !x.is_finite() {
        return RGBColor(200, 200, 200);
    }
    let x = x.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
    RGBColor(
        mix(STOPS[i].0, STOPS[i + 1].0),
        mix(STOPS[i].1, STOPS[i + 1].1),
        mix(STOPS[i].2, STOPS[i + 1].2),
    )
}

/// The distinct values of a grid column in ascending order.
fn levels(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

pub(crate) struct HeatmapArgs<'a> {
    pub statistic: Statistic,
    /// Output column index into `result.columns`.
    pub column: usize,
    pub x_key: &'a str,
    pub y_key: &'a str,
}

/// The column of grid key `k` in `result`, or an error listing the keys there are.
fn grid_key_index(result: &SweepResult, k: &str) -> anyhow::Result<usize> {
    result.grid_keys.iter().position(|g| g == k).with_context(|| {
        format!(
            "`{k}` is not a grid key of this file; its keys are: {}",
            result.grid_keys.join(", ")
        )
    })
}

/// A heatmap of one summary over two grid keys; cells with several points (other keys vary)
/// show their mean, grid points that diverged show grey. A refined sweep is drawn on its
/// regular view, as [`phase_diagram`] draws it.
pub(crate) fn heatmap(png: &Path, result: &SweepResult, args: &HeatmapArgs<'_>) -> anyhow::Result<()> {
    register_font()?;
    // A refined file is drawn on its finest lattice, each cell from the nearest computed point.
    let regular = rustrates::sweep::refine::regular_result(result);
    let result = regular.as_ref().unwrap_or(result);
    let key_index = |k: &str| grid_key_index(result, k);
    let (xi, yi) = (key_index(args.x_key)?, key_index(args.y_key)?);
    let summaries = result
        .summaries
        .as_ref()
        .context("the file has no summaries; run the sweep with `summaries: [...]` in its spec to plot a heatmap")?;
    let si = summaries
        .stats
        .iter()
        .position(|s| *s == args.statistic)
        .with_context(|| {
            let have: Vec<&str> = summaries.stats.iter().map(|s| s.name()).collect();
            format!(
                "the file has no `{}` summary; it has: {}",
                args.statistic.name(),
                have.join(", ")
            )
        })?;
    let nc = result.columns.len();
    let (xs, ys) = (levels(&result.grid_values[xi]), levels(&result.grid_values[yi]));
    let mut sum = vec![0.0; xs.len() * ys.len()];
    let mut count = vec![0usize; xs.len() * ys.len()];
    for p in 0..result.labels.len() {
        let x = xs.partition_point(|v| *v < result.grid_values[xi][p]);
        let y = ys.partition_point(|v| *v < result.grid_values[yi][p]);
        let v = summaries.values[si][p * nc + args.column];
        sum[y * xs.len() + x] += v;
        count[y * xs.len() + x] += 1;
    }
    let cells: Vec<f64> = sum
        .iter()
        .zip(&count)
        .map(|(s, &c)| if c == 0 { f64::NAN } else { s / c as f64 })
        .collect();
    let (lo, hi) = finite_range(cells.iter().copied());

    let root = BitMapBackend::new(png, (900, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (main, bar) = root.split_horizontally(760);
    let (node, key) = &result.columns[args.column];
    let title = format!("{} of {node}/{key}", args.statistic.name());
    let mut chart = ChartBuilder::on(&main)
        .caption(&title, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(
            // A segmented range a..b has b - a + 1 cells.
            (0..xs.len().saturating_sub(1)).into_segmented(),
            (0..ys.len().saturating_sub(1)).into_segmented(),
        )?;
    // Segmented axes put each label at the centre of its cell.
    let fmt = |levels: &[f64], v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => levels.get(*i).map(|v| format!("{v:.4}")).unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(args.x_key)
        .y_desc(args.y_key)
        .x_labels(xs.len().min(12))
        .y_labels(ys.len().min(12))
        .x_label_formatter(&|i| fmt(&xs, i))
        .y_label_formatter(&|i| fmt(&ys, i))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 16))
        .draw()?;
    chart.draw_series(
        (0..ys.len())
            .flat_map(|y| (0..xs.len()).map(move |x| (x, y)))
            .map(|(x, y)| {
                let v = cells[y * xs.len() + x];
                let corners = [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ];
                Rectangle::new(corners, colormap((v - lo) / (hi - lo)).filled())
            }),
    )?;

    let mut legend = ChartBuilder::on(&bar)
        .margin_top(50)
        .margin_bottom(62)
        .margin_right(10)
        .y_label_area_size(70)
        .caption(args.statistic.name(), (FAMILY, 16))
        .build_cartesian_2d(0.0..1.0, lo..hi)?;
    legend
        .configure_mesh()
        .disable_x_axis()
        .disable_mesh()
        .label_style((FAMILY, 12))
        .draw()?;
    let steps = 100;
    legend.draw_series((0..steps).map(|i| {
        let (a, b) = (
            lo + (hi - lo) * i as f64 / steps as f64,
            lo + (hi - lo) * (i + 1) as f64 / steps as f64,
        );
        Rectangle::new([(0.0, a), (1.0, b)], colormap((i as f64 + 0.5) / steps as f64).filled())
    }))?;
    root.present()
        .with_context(|| format!("cannot write {}", png.display()))?;
    Ok(())
}

/// A colour per regime (code order), picked to tell apart quiet, oscillating and failing.
fn regime_colour(r: Regime) -> RGBColor {
    match r {
        Regime::Diverged => RGBColor(40, 40, 40),
        Regime::StableNode => RGBColor(70, 120, 200),
        Regime::StableFocus => RGBColor(120, 190, 230),
        Regime::UnstableFixedPoint => RGBColor(150, 100, 200),
        Regime::Periodic => RGBColor(230, 120, 40),
        Regime::Irregular => RGBColor(200, 40, 60),
    }
}

/// One cell of a phase diagram: the most frequent regime of its points (ties: the lower
/// code; `None` when no point has one) and the mean period of its periodic points.
#[derive(Clone, Copy, Debug, PartialEq)]
struct RegimeCell {
    regime: Option<Regime>,
    period: f64,
}

/// Cells `[y][x]` over the levels of two grid columns (`ys` may be a single level for a 1-D
/// grid): `codes[p]` and `periods[p]` per point.
fn regime_cells(
    xs: &[f64],
    ys: &[f64],
    px: &[f64],
    py: Option<&[f64]>,
    codes: &[f64],
    periods: &[f64],
) -> Vec<RegimeCell> {
    let mut counts = vec![[0usize; Regime::ALL.len()]; xs.len() * ys.len()];
    let mut period = vec![(0.0, 0usize); xs.len() * ys.len()];
    for p in 0..codes.len() {
        let x = xs.partition_point(|v| *v < px[p]);
        let y = py.map_or(0, |py| ys.partition_point(|v| *v < py[p]));
        let cell = y * xs.len() + x;
        if let Some(r) = Regime::from_code(codes[p]) {
            counts[cell][r.code() as usize] += 1;
            if r == Regime::Periodic && periods[p].is_finite() {
                period[cell].0 += periods[p];
                period[cell].1 += 1;
            }
        }
    }
    counts
        .iter()
        .zip(&period)
        .map(|(c, &(sum, n))| {
            let best = (0..c.len())
                .filter(|&i| c[i] > 0)
                .max_by(|&a, &b| c[a].cmp(&c[b]).then(b.cmp(&a)));
            RegimeCell {
                regime: best.map(|i| Regime::ALL[i]),
                period: if n == 0 { f64::NAN } else { sum / n as f64 },
            }
        })
        .collect()
}

/// A phase diagram of the `regime` summary: a colour per regime over one or two grid keys,
/// periodic cells shaded by their period (darker = longer, over the file's range), black
/// lines where neighbouring cells differ in regime, and a legend of the regimes present.
/// A refined sweep (`refine:`) is drawn on its regular view ([`rustrates::sweep::refine::regular_view`]).
pub(crate) fn phase_diagram(
    png: &Path,
    result: &SweepResult,
    column: usize,
    x_key: &str,
    y_key: Option<&str>,
) -> anyhow::Result<()> {
    register_font()?;
    let regular = rustrates::sweep::refine::regular_result(result);
    let result = regular.as_ref().unwrap_or(result);
    let key_index = |k: &str| grid_key_index(result, k);
    let xi = key_index(x_key)?;
    let yi = y_key.map(key_index).transpose()?;
    let summaries = result
        .summaries
        .as_ref()
        .context("the file has no summaries; run the sweep with `summaries: [regime]` to plot regimes")?;
    let stat = |s: Statistic| summaries.stats.iter().position(|x| *x == s);
    let si = stat(Statistic::Regime)
        .context("the file has no `regime` summary; run the sweep with `summaries: [regime]` to plot regimes")?;
    let nc = result.columns.len();
    let n = result.labels.len();
    let codes: Vec<f64> = (0..n).map(|p| summaries.values[si][p * nc + column]).collect();
    let periods: Vec<f64> = match stat(Statistic::Period) {
        Some(pi) => (0..n).map(|p| summaries.values[pi][p * nc + column]).collect(),
        None => vec![f64::NAN; n],
    };
    let xs = levels(&result.grid_values[xi]);
    let ys = yi.map_or(vec![0.0], |yi| levels(&result.grid_values[yi]));
    let cells = regime_cells(
        &xs,
        &ys,
        &result.grid_values[xi],
        yi.map(|yi| result.grid_values[yi].as_slice()),
        &codes,
        &periods,
    );
    let (plo, phi) = finite_range(cells.iter().map(|c| c.period));

    let root = BitMapBackend::new(png, (900, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (main, bar) = root.split_horizontally(720);
    let (node, key) = &result.columns[column];
    let mut chart = ChartBuilder::on(&main)
        .caption(format!("regimes of {node}/{key}"), (FAMILY, 22))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        // Cell i spans i − ½ … i + ½, so whole-number ticks sit at cell centres.
        .build_cartesian_2d(-0.5..xs.len() as f64 - 0.5, -0.5..ys.len() as f64 - 0.5)?;
    let label = |levels: &[f64], v: f64| {
        let i = v.round();
        if (v - i).abs() < 1e-9 && i >= 0.0 {
            levels.get(i as usize).map(|l| format!("{l:.4}")).unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_key)
        .y_desc(y_key.unwrap_or(""))
        .x_labels(xs.len().min(12))
        .y_labels(ys.len().min(12))
        .x_label_formatter(&|v| label(&xs, *v))
        .y_label_formatter(&|v| label(&ys, *v))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 16))
        .draw()?;
    let nx = xs.len();
    chart.draw_series(cells.iter().enumerate().map(|(i, c)| {
        let (x, y) = ((i % nx) as f64 - 0.5, (i / nx) as f64 - 0.5);
        let colour = match c.regime {
            None => RGBColor(200, 200, 200),
            Some(Regime::Periodic) if c.period.is_finite() => {
                // Shade: 1 (the shortest period) to 0.45 (the longest).
                let f = 1.0 - 0.55 * (c.period - plo) / (phi - plo);
                let RGBColor(r, g, b) = regime_colour(Regime::Periodic);
                RGBColor(
                    (f64::from(r) * f) as u8,
                    (f64::from(g) * f) as u8,
                    (f64::from(b) * f) as u8,
                )
            }
            Some(r) => regime_colour(r),
        };
        Rectangle::new([(x, y), (x + 1.0, y + 1.0)], colour.filled())
    }))?;
    // Boundaries: the shared edge of two neighbouring cells in different regimes.
    let mut edges = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        let (x, y) = (i % nx, i / nx);
        let (x0, y0) = (x as f64 - 0.5, y as f64 - 0.5);
        if x + 1 < nx && cells[i + 1].regime != c.regime {
            edges.push([(x0 + 1.0, y0), (x0 + 1.0, y0 + 1.0)]);
        }
        if y + 1 < ys.len() && cells[i + nx].regime != c.regime {
            edges.push([(x0, y0 + 1.0), (x0 + 1.0, y0 + 1.0)]);
        }
    }
    chart.draw_series(
        edges
            .into_iter()
            .map(|e| PathElement::new(e.to_vec(), BLACK.stroke_width(2))),
    )?;

    let present: Vec<Regime> = Regime::ALL
        .into_iter()
        .filter(|r| cells.iter().any(|c| c.regime == Some(*r)))
        .collect();
    for (k, r) in present.iter().enumerate() {
        let top = 80 + 34 * k as i32;
        bar.draw(&Rectangle::new([(10, top), (34, top + 24)], regime_colour(*r).filled()))?;
        bar.draw(&Text::new(r.name().replace('_', " "), (40, top + 5), (FAMILY, 14)))?;
    }
    if present.contains(&Regime::Periodic) && phi > plo {
        let top = 100 + 34 * present.len() as i32;
        bar.draw(&Text::new(
            format!("period {plo:.3} … {phi:.3}"),
            (10, top),
            (FAMILY, 13),
        ))?;
        bar.draw(&Text::new("(darker = longer)", (10, top + 18), (FAMILY, 13)))?;
    }
    root.present()
        .with_context(|| format!("cannot write {}", png.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colormap_ends_are_viridis_ends_and_nan_is_grey() {
        assert_eq!(colormap(0.0), RGBColor(68, 1, 84));
        assert_eq!(colormap(1.0), RGBColor(253, 231, 37));
        assert_eq!(colormap(f64::NAN), RGBColor(200, 200, 200));
    }

    #[test]
    fn regime_cells_take_the_most_frequent_regime_and_mean_period() {
        // 2 × 2 cells over (x, y); cell (0, 0) holds three points (another key varies):
        // two periodic (periods 2 and 4) and one focus, so periodic with mean period 3; cell
        // (1, 1) has a NaN code only, so no regime.
        let (xs, ys) = (vec![0.0, 1.0], vec![10.0, 20.0]);
        let px = [0.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        let py = [10.0, 10.0, 10.0, 10.0, 20.0, 20.0];
        let codes = [4.0, 2.0, 4.0, 1.0, 0.0, f64::NAN];
        let periods = [2.0, f64::NAN, 4.0, f64::NAN, f64::NAN, f64::NAN];
        let c = regime_cells(&xs, &ys, &px, Some(&py), &codes, &periods);
        assert_eq!(
            c[0],
            RegimeCell {
                regime: Some(Regime::Periodic),
                period: 3.0
            }
        );
        assert_eq!(c[1].regime, Some(Regime::StableNode));
        assert_eq!(c[2].regime, Some(Regime::Diverged));
        assert_eq!(c[3].regime, None);
        // A tie goes to the lower code; a 1-D grid is one row.
        let one = regime_cells(&xs, &[0.0], &[0.0, 0.0], None, &[4.0, 2.0], &[1.0, f64::NAN]);
        assert_eq!(one[0].regime, Some(Regime::StableFocus));
    }

    #[test]
    fn levels_sorts_and_dedups() {
        assert_eq!(levels(&[2.0, -1.0, 2.0, 0.5]), vec![-1.0, 0.5, 2.0]);
    }
}
