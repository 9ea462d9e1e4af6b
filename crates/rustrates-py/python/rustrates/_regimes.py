"""``plot_regimes``: the phase diagram of a ``regime`` sweep with matplotlib (the Python
counterpart of ``rustrates plot --regimes``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import _rustrates

# A colour per regime code, the CLI's palette (crates/rustrates-cli/src/plot.rs).
_COLOURS = {
    0: (40, 40, 40),
    1: (70, 120, 200),
    2: (120, 190, 230),
    3: (150, 100, 200),
    4: (230, 120, 40),
    5: (200, 40, 60),
}


def regime_grid(
    summaries: pd.DataFrame, result_map: pd.DataFrame, x: str, y: str | None = None, output: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x levels, y levels, codes[y, x], periods[y, x])`` of a regime sweep: per cell the
    most frequent regime code of its points (ties: the lower code; NaN when none) and the
    mean period of its periodic points. A refined sweep (``refine=``; ``result_map`` has a
    ``refine_level`` column) gives its finest lattice instead, each node showing the computed
    point nearest to it (see the README's "Refined regime maps")."""
    names = dict(_rustrates.REGIME_CODES)
    codes_by_name = {v: k for k, v in names.items()}
    outputs = list(dict.fromkeys(summaries.columns.get_level_values(0)))
    out = outputs[0] if output is None else output
    if (out, "regime") not in summaries.columns:
        raise ValueError(f"no `regime` summary for output {out!r}; run grid_search with summaries=['regime']")
    regime = summaries[(out, "regime")]
    codes = np.array(
        [codes_by_name.get(v, np.nan) if isinstance(v, str) else v for v in regime.astype(object)], dtype=float
    )
    periods = (
        summaries[(out, "period")].to_numpy(dtype=float)
        if (out, "period") in summaries.columns
        else np.full(len(codes), np.nan)
    )
    level_key = _rustrates.REFINE_LEVEL_KEY
    if level_key in result_map.columns:
        # A refined sweep: its finest lattice, each node from the nearest computed point
        # (the engine's rule, `sweep::refine::regular_view`).
        keys = [x] + ([y] if y is not None else []) + [level_key]
        rows = result_map.loc[summaries.index]
        view = _rustrates.refine_regular_view(keys, [rows[k].to_numpy(dtype=float).tolist() for k in keys])
        if view is not None:
            axes, source = view
            src = np.asarray(source)
            xs = np.asarray(axes[0])
            ys = np.asarray(axes[1]) if y is not None else np.zeros(1)
            shape = (len(ys), len(xs))
            return xs, ys, codes[src].reshape(shape), periods[src].reshape(shape)
    xv = result_map.loc[summaries.index, x].to_numpy(dtype=float)
    yv = result_map.loc[summaries.index, y].to_numpy(dtype=float) if y is not None else np.zeros(len(codes))
    xs, ys = np.unique(xv), np.unique(yv)
    counts = np.zeros((len(ys), len(xs), len(names)))
    psum = np.zeros((len(ys), len(xs)))
    pn = np.zeros((len(ys), len(xs)))
    ix, iy = np.searchsorted(xs, xv), np.searchsorted(ys, yv)
    for i, j, c, p in zip(iy, ix, codes, periods):
        if c == c:
            counts[i, j, int(c)] += 1
            if int(c) == 4 and p == p:
                psum[i, j] += p
                pn[i, j] += 1
    cell = np.where(counts.sum(axis=2) > 0, counts.argmax(axis=2), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        period = np.where(pn > 0, psum / pn, np.nan)
    return xs, ys, cell, period


def plot_regimes(
    summaries: pd.DataFrame,
    result_map: pd.DataFrame,
    x: str | None = None,
    y: str | None = None,
    output: str | None = None,
    ax: Any = None,
    path: Any = None,
) -> Any:
    """Draw the phase diagram of a ``regime`` sweep (``grid_search(..., summaries=['regime'])``
    or ``read_results``): a colour per regime over one or two grid keys (default: the first
    two columns of ``result_map``), periodic cells shaded by their period (darker = longer),
    and a legend. Returns the matplotlib ``Axes``; ``path`` also saves the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    keys = [k for k in result_map.columns if k != _rustrates.REFINE_LEVEL_KEY]
    x = keys[0] if x is None else x
    y = (keys[1] if len(keys) > 1 else None) if y is None else y
    xs, ys, cell, period = regime_grid(summaries, result_map, x, y, output)
    rgb = np.full(cell.shape + (3,), 200.0)
    for code, colour in _COLOURS.items():
        rgb[cell == code] = colour
    periodic = (cell == 4) & np.isfinite(period)
    if periodic.any():
        lo, hi = np.nanmin(period[periodic]), np.nanmax(period[periodic])
        shade = 1.0 - 0.55 * (period - lo) / (hi - lo) if hi > lo else np.ones_like(period)
        rgb[periodic] *= shade[periodic][:, None]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 6))
    ax.imshow(
        rgb / 255.0,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        extent=(-0.5, len(xs) - 0.5, -0.5, len(ys) - 0.5),
    )
    step = max(1, len(xs) // 10)
    ax.set_xticks(range(0, len(xs), step), [f"{v:.4g}" for v in xs[::step]])
    ax.set_xlabel(x)
    if y is not None:
        step = max(1, len(ys) // 10)
        ax.set_yticks(range(0, len(ys), step), [f"{v:.4g}" for v in ys[::step]])
        ax.set_ylabel(y)
    else:
        ax.set_yticks([])
    names = dict(_rustrates.REGIME_CODES)
    present = sorted({int(c) for c in cell[np.isfinite(cell)]})
    ax.legend(
        handles=[Patch(color=np.array(_COLOURS[c]) / 255.0, label=names[c].replace("_", " ")) for c in present],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    ax.set_title("regimes")
    if path is not None:
        ax.figure.savefig(path, bbox_inches="tight")
    return ax
