"""The report's charts: small matplotlib figures rendered to deterministic PNG bytes.

Every function takes plain numbers and returns PNG bytes. Figures are drawn on the Agg
canvas without pyplot (no global state), under a fixed style (:data:`STYLE`: DejaVu Sans,
which matplotlib ships, fixed dpi and sizes), and saved without the "Software" metadata, so
the same numbers give the same bytes with the same matplotlib. Labels come from data and
configs, so the style turns mathtext off: a ``$`` is drawn as a dollar sign.
"""
from __future__ import annotations

import io
from contextlib import contextmanager

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from riskcap.capitation.money import gbp

DPI = 100
WIDTH, HEIGHT = 7.5, 3.8
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "savefig.dpi": DPI,
    "path.simplify": False,
    "svg.hashsalt": "riskcap",
    # labels are data (practice codes, scenario and group names): "$...$" is text, never mathtext
    "text.parse_math": False,
}
#: Colours (colour-blind safe, Okabe-Ito).
BLUE, ORANGE, GREEN, RED, PURPLE, GREY, SKY, YELLOW = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#777777", "#56B4E9", "#F0E442")
SERIES = (BLUE, ORANGE, GREEN, RED, PURPLE, SKY, YELLOW, GREY)
#: Practices beyond which per-practice charts drop their practice labels.
MAX_LABELLED = 40

_pct = PercentFormatter(xmax=1.0, decimals=0)


gbp_formatter = FuncFormatter(lambda value, _pos: gbp(value, 1, compact=True))


@contextmanager
def figure(width: float = WIDTH, height: float = HEIGHT, ncols: int = 1):
    """Yield (fig, axes) under the fixed style; the caller renders with :func:`png`."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, ncols)
        yield fig, axes


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes, without timestamps or software metadata."""
    with matplotlib.rc_context(STYLE):
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


# --- Population ----------------------------------------------------------------------

def population_pyramid(bands: list[str], female: np.ndarray, male: np.ndarray) -> bytes:
    """Horizontal bars: men to the left, women to the right, as shares of everyone."""
    total = max(float(np.sum(female) + np.sum(male)), 1.0)
    f, m = np.asarray(female) / total, np.asarray(male) / total
    y = np.arange(len(bands))
    with figure(WIDTH, 4.2) as (fig, ax):
        ax.barh(y, -m, color=BLUE, label="men")
        ax.barh(y, f, color=ORANGE, label="women")
        ax.set_yticks(y, bands)
        limit = max(float(f.max(initial=0)), float(m.max(initial=0))) * 1.1 or 0.01
        ax.set_xlim(-limit, limit)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{abs(v):.0%}" if limit > 0.05 else f"{abs(v):.1%}"))
        ax.set_xlabel("share of registered people")
        ax.set_title("Registered population by age and sex")
        ax.legend(loc="upper right")
        return png(fig)


def ltc_prevalence(names: list[str], prevalence: np.ndarray, england: np.ndarray) -> bytes:
    """Recorded prevalence per register (bars) with England's figure (markers)."""
    order = np.argsort(np.asarray(prevalence), kind="stable")
    y = np.arange(len(names))
    with figure(WIDTH, 5.0) as (fig, ax):
        ax.barh(y, np.asarray(prevalence)[order], color=BLUE, label="this population")
        eng = np.asarray(england, dtype=float)[order]
        ok = np.isfinite(eng)
        ax.plot(eng[ok], y[ok], "|", color=RED, markersize=12, markeredgewidth=2, label="England (QOF 2019/20)")
        ax.set_yticks(y, [names[i] for i in order])
        ax.xaxis.set_major_formatter(_pct)
        ax.set_xlabel("recorded prevalence (QOF denominator)")
        ax.set_title("Long-term conditions")
        ax.legend(loc="lower right")
        return png(fig)


# --- Models ----------------------------------------------------------------------------

def calibration_curve(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Observed rate against mean predicted probability by risk decile, one line per model."""
    with figure(5.2, 4.2) as (fig, ax):
        top = 0.0
        for (name, (pred, obs)), colour in zip(curves.items(), SERIES):
            ax.plot(pred, obs, "o-", color=colour, label=name, markersize=4)
            top = max(top, float(np.max(pred, initial=0)), float(np.max(obs, initial=0)))
        top = top * 1.05 or 1.0
        ax.plot([0, top], [0, top], "--", color=GREY, linewidth=1, label="perfect calibration")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.xaxis.set_major_formatter(_pct)
        ax.yaxis.set_major_formatter(_pct)
        ax.set_xlabel("mean predicted risk (decile)")
        ax.set_ylabel("observed emergency admission rate")
        ax.set_title("Calibration by risk decile")
        ax.legend(loc="upper left")
        return png(fig)


def gains_curve(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Share of admitted people reached against share of people enrolled (highest risk first)."""
    with figure(5.2, 4.2) as (fig, ax):
        for (name, (x, y)), colour in zip(curves.items(), SERIES):
            ax.plot(np.r_[0, x], np.r_[0, y], "o-", color=colour, label=name, markersize=3)
        ax.plot([0, 1], [0, 1], "--", color=GREY, linewidth=1, label="random order")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_formatter(_pct)
        ax.yaxis.set_major_formatter(_pct)
        ax.set_xlabel("people enrolled, highest risk first")
        ax.set_ylabel("people with an emergency admission reached")
        ax.set_title("Gains curve")
        ax.legend(loc="lower right")
        return png(fig)


def ppv_at_top(labels: list[str], ppv: np.ndarray, sensitivity: np.ndarray, prevalence: float) -> bytes:
    """PPV and sensitivity at the top k% of the risk list (grouped bars)."""
    x = np.arange(len(labels))
    with figure() as (fig, ax):
        ax.bar(x - 0.2, ppv, width=0.4, color=BLUE, label="PPV: share of those listed who were admitted")
        ax.bar(x + 0.2, sensitivity, width=0.4, color=ORANGE, label="sensitivity: share of all admitted people listed")
        ax.axhline(prevalence, color=GREY, linestyle="--", linewidth=1, label="admission rate in everyone")
        for xi, v in zip(x, ppv):
            ax.annotate(f"{v:.0%}", (xi - 0.2, v), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, [f"top {lab}" for lab in labels])
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(_pct)
        ax.set_title("Who the top of the risk list reaches")
        ax.legend(loc="upper right")
        return png(fig)


def subgroup_ratios(groups: list[tuple[str, str, float]]) -> bytes:
    """Observed / expected admissions per subgroup (dots), 1.0 = calibrated."""
    y = np.arange(len(groups))[::-1]
    kinds = list(dict.fromkeys(g[0] for g in groups))
    with figure(WIDTH, max(2.5, 0.22 * len(groups) + 1.0)) as (fig, ax):
        ax.axvline(1.0, color=GREY, linestyle="--", linewidth=1)
        for kind, colour in zip(kinds, SERIES):
            rows = [i for i, g in enumerate(groups) if g[0] == kind]
            ax.plot([groups[i][2] for i in rows], y[rows], "o", color=colour, label=kind)
        ax.set_yticks(y, [f"{g[1]}" for g in groups])
        ax.set_xlabel("observed / expected emergency admissions (1 = calibrated)")
        ax.set_title("Calibration by subgroup")
        ax.legend(loc="lower right")
        return png(fig)


# --- Risk pyramid ----------------------------------------------------------------------

def risk_pyramid(practices: list[str], tiers: list[str], shares: np.ndarray) -> bytes:
    """Stacked bars per practice of the share of people in each tier (top tier first)."""
    colours = [RED, ORANGE, YELLOW, SKY, GREEN, PURPLE, GREY]
    n = len(practices)
    labelled = n <= MAX_LABELLED
    with figure(WIDTH, max(3.0, 0.22 * n + 1.2) if labelled else HEIGHT) as (fig, ax):
        y = np.arange(n)[::-1]
        left = np.zeros(n)
        for j, tier in enumerate(tiers[:-1]):  # the last (lowest) tier fills the rest of the bar
            ax.barh(y, shares[:, j], left=left, color=colours[j % len(colours)], label=tier, height=0.8)
            left += shares[:, j]
        if labelled:
            ax.set_yticks(y, practices)
        else:
            ax.set_yticks([])
            ax.set_ylabel(f"{n} practices, sorted")
        ax.xaxis.set_major_formatter(_pct)
        ax.set_xlabel(f"share of the practice's people (rest: {tiers[-1]})")
        ax.set_title("Risk pyramid by practice")
        ax.legend(loc="lower right")
        return png(fig)


# --- Capitation ------------------------------------------------------------------------

def need_group_mix(names: list[str], people_share: np.ndarray, spend_share: np.ndarray,
                   tariff_gbp: np.ndarray) -> bytes:
    """Left: share of people and of tariff money per need group; right: the tariff per person."""
    y = np.arange(len(names))[::-1]
    with figure(9.5, max(3.2, 0.3 * len(names) + 1.2), ncols=2) as (fig, (left, right)):
        left.barh(y + 0.2, people_share, height=0.4, color=BLUE, label="people")
        left.barh(y - 0.2, spend_share, height=0.4, color=ORANGE, label="tariff money")
        left.set_yticks(y, names)
        left.xaxis.set_major_formatter(_pct)
        left.set_title("Need-group mix")
        left.legend(loc="center right")
        right.barh(y, tariff_gbp, color=GREEN)
        right.set_yticks(y, [])
        right.set_xscale("symlog", linthresh=100)
        right.xaxis.set_major_formatter(gbp_formatter)
        right.set_title("Annual tariff per person")
        return png(fig)


def budgets_per_head(scenarios: list[str], values: list[np.ndarray]) -> bytes:
    """Each practice's budget per head (dots) per scenario, with the median (bar)."""
    x = np.arange(len(scenarios))
    with figure(WIDTH, 4.0) as (fig, ax):
        for xi, vals, colour in zip(x, values, [SERIES[i % len(SERIES)] for i in range(len(scenarios))]):
            vals = np.asarray(vals, dtype=float)
            vals = vals[np.isfinite(vals)]
            jitter = (np.linspace(-0.25, 0.25, len(vals)) if len(vals) > 1 else np.zeros(len(vals)))
            ax.plot(xi + jitter, np.sort(vals), "o", color=colour, markersize=3, alpha=0.8)
            if len(vals):
                ax.plot([xi - 0.35, xi + 0.35], [np.median(vals)] * 2, color="black", linewidth=1.5)
        ax.set_xticks(x, scenarios, rotation=20, ha="right")
        ax.yaxis.set_major_formatter(gbp_formatter)
        ax.set_ylabel("budget per registered person")
        ax.set_title("Practice budgets per head by scenario (line: median)")
        return png(fig)


def distance_from_target(practices: list[str], distance: np.ndarray, band: float = 0.10) -> bytes:
    """Each practice's (current - target) / target, sorted, with the +/- band shaded."""
    order = np.argsort(distance, kind="stable")
    d = np.asarray(distance, dtype=float)[order]
    n = len(d)
    with figure() as (fig, ax):
        colours = [RED if v > band else BLUE if v < -band else GREY for v in d]
        ax.bar(np.arange(n), d, color=colours, width=0.8)
        ax.axhspan(-band, band, color="#eeeeee", zorder=0)
        ax.axhline(0, color="black", linewidth=0.8)
        if n <= MAX_LABELLED:
            ax.set_xticks(np.arange(n), [practices[i] for i in order], rotation=90)
        else:
            ax.set_xticks([])
            ax.set_xlabel(f"{n} practices, sorted")
        ax.yaxis.set_major_formatter(_pct)
        ax.set_ylabel("(current - target) / target")
        ax.set_title(f"Distance from target (shaded: within ±{band:.0%})")
        return png(fig)


def settlement_waterfall(steps: list[tuple[str, float]], total_label: str) -> bytes:
    """A waterfall: the first step is a total, the middle ones add or subtract, the last
    bar is ``total_label`` (the running sum)."""
    labels = [s[0] for s in steps] + [total_label]
    with figure() as (fig, ax):
        running = 0.0
        for i, (label, value) in enumerate(steps):
            if i == 0:
                ax.bar(i, value, color=BLUE)
                running = value
            else:
                ax.bar(i, value, bottom=running, color=RED if value > 0 else GREEN)
                running += value
            ax.annotate(gbp(value, 1, compact=True), (i, running if i else value), ha="center", va="bottom", fontsize=7)
        ax.bar(len(steps), running, color=GREY)
        ax.annotate(gbp(running, 1, compact=True), (len(steps), running), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(np.arange(len(labels)), labels, fontsize=7)
        ax.yaxis.set_major_formatter(gbp_formatter)
        low = min(0.0, running)
        ax.set_ylim(low, max(running, steps[0][1]) * 1.12 if steps else 1)
        ax.set_title("Settlement waterfall (all practices)")
        return png(fig)


def corridor_exposure(scenarios: list[str], payer: np.ndarray, provider: np.ndarray) -> bytes:
    """Net variance shares per scenario: commissioner (payer) and practices (provider)."""
    y = np.arange(len(scenarios))[::-1]
    with figure(WIDTH, max(3.0, 0.4 * len(scenarios) + 1.2)) as (fig, ax):
        ax.barh(y + 0.2, payer, height=0.4, color=RED, label="commissioner (payer) share")
        ax.barh(y - 0.2, provider, height=0.4, color=BLUE, label="practices (provider) share")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y, scenarios)
        ax.xaxis.set_major_formatter(gbp_formatter)
        ax.set_xlabel("share of net variance (+ cost borne, - saving kept)")
        ax.set_title("Risk corridor exposure by scenario")
        ax.legend(loc="lower right")
        return png(fig)


def accuracy_scatter(series: dict[str, tuple[np.ndarray, np.ndarray]], band: float = 0.10) -> bytes:
    """Actual outturn against budget per practice, one colour per scenario; y = x and the
    +/- band as lines."""
    with figure(5.6, 4.4) as (fig, ax):
        top = 0.0
        for (name, (budget, actual)), colour in zip(series.items(), SERIES):
            ax.plot(budget, actual, "o", color=colour, label=name, markersize=4, alpha=0.8)
            top = max(top, float(np.max(budget, initial=0)), float(np.max(actual, initial=0)))
        top = top * 1.05 or 1.0
        ax.plot([0, top], [0, top], "-", color="black", linewidth=0.8, label="actual = budget")
        for f in (1 - band, 1 + band):
            ax.plot([0, top], [0, top * f], ":", color=GREY, linewidth=0.8)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.xaxis.set_major_formatter(gbp_formatter)
        ax.yaxis.set_major_formatter(gbp_formatter)
        ax.set_xlabel("budget (incl. withhold earned)")
        ax.set_ylabel("actual outturn")
        ax.set_title(f"Accuracy vs outturn per practice (dotted: ±{band:.0%})")
        ax.legend(loc="upper left")
        return png(fig)


def predictive_ratios(names: list[str], ratios: np.ndarray) -> bytes:
    """Actual / allocated per need group (bars), 1.0 = funded exactly."""
    y = np.arange(len(names))[::-1]
    r = np.asarray(ratios, dtype=float)
    with figure(WIDTH, max(3.0, 0.3 * len(names) + 1.2)) as (fig, ax):
        colours = [RED if v > 1.1 else BLUE if v < 0.9 else GREY for v in np.nan_to_num(r, nan=1.0)]
        ax.barh(y, np.nan_to_num(r, nan=0.0), color=colours)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_yticks(y, names)
        ax.set_xlabel("actual cost / money allocated (above 1: under-funded)")
        ax.set_title("Predictive ratio by need group")
        return png(fig)
