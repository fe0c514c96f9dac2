"""The paper's figures and the layer-by-epoch heatmaps, as matplotlib Figures.

Figures are built with `matplotlib.figure.Figure` directly, not pyplot: nothing is shown, no global
backend is touched (scripts and tests need no display; a notebook displays the returned figure). Each
function takes an optional ``ax`` to draw into a panel of a larger figure, and returns the figure.
ABX errors are plotted in percent.

heatmap_plots.py holds the heatmaps, line_plots.py the line plots (Fig. 2 and 3), common.py what
both draw with. Every name is imported here, not lazily: each module needs matplotlib anyway, and
``analysis.plots.<name>`` (and this package's documentation page) list them all in one place.
"""

from analysis.plots.common import SWITCH_LABEL as SWITCH_LABEL
from analysis.plots.common import SWITCH_STYLE as SWITCH_STYLE
from analysis.plots.common import save_figure
from analysis.plots.heatmap_plots import GAP_COLOUR as GAP_COLOUR
from analysis.plots.heatmap_plots import Cell as Cell
from analysis.plots.heatmap_plots import Switch as Switch
from analysis.plots.heatmap_plots import drift_heatmap, heatmap, heatmaps, overlapping_cells
from analysis.plots.line_plots import LOSS_NAMES as LOSS_NAMES
from analysis.plots.line_plots import (
    abx_by_layer,
    best_layer_by_epoch,
    best_over_layers,
    by_model,
    losses,
)

__all__ = [
    "heatmap",
    "heatmaps",
    "overlapping_cells",
    "abx_by_layer",
    "best_layer_by_epoch",
    "by_model",
    "best_over_layers",
    "losses",
    "drift_heatmap",
    "save_figure",
]
