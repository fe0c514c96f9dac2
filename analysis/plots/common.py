"""What the heatmaps and the line plots share: the panel to draw into, the stage-switch mark,
per-panel options and saving a figure.

Separate from both kinds of plot so that neither imports the other for these helpers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from training.fileio import write_atomic

__all__ = ["save_figure"]

SWITCH_STYLE = {"color": "0.3", "linestyle": "--", "linewidth": 1.0}
SWITCH_LABEL = "stage switch"


def _axes(ax: Axes | None, size: tuple[float, float] = (5.0, 3.6)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def _own(option: Any, name: str) -> Any:
    """A panel's own value of an option that is either shared or a mapping of panel names."""
    return option.get(name) if isinstance(option, Mapping) else option


def _switch_line(ax: Axes, switch: int | None) -> None:
    """The stage switch: a dashed line at its epoch, labelled at the top of the panel."""
    if switch is None:
        return
    ax.axvline(switch, **SWITCH_STYLE, label=SWITCH_LABEL)
    _switch_text(ax, switch)


def _switch_text(ax: Axes, x: float) -> None:
    """The word "switch" at the top of the switch line, on a white label readable on any colour."""
    ax.annotate("switch", xy=(x, 1.0), xycoords=("data", "axes fraction"), xytext=(0, -3),
                textcoords="offset points", ha="center", va="top", fontsize="x-small",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "0.5",
                      "alpha": 0.9})  # fmt: skip


def _legend_below(
    figure: Figure, handles: list, max_columns: int, title: str | None = None
) -> None:
    """One legend for the whole figure under its panels (at most `max_columns` across), and the
    figure's title if any."""
    if handles:
        figure.legend(handles=handles, loc="outside lower center", ncols=min(max_columns, len(handles)),
                      fontsize="small", frameon=False)  # fmt: skip
    if title:
        figure.suptitle(title)


def save_figure(figure: Figure, path: Path | str, dpi: int = 120) -> Path:
    """Save `figure` as PNG (atomically) and return the path."""
    return write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi))
