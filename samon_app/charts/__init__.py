"""Plotly figures of the app, built from the ``samon_app`` view models. No streamlit, no torch.

Every builder returns a ``plotly.graph_objects.Figure`` (plain data) and never mutates its
inputs. Colours follow the method family (``method_color`` of the method catalogue): the same
method has the same colour on every chart and page, its seeds too; train curves are dashed, test
curves solid.

* ``base``:    layout, empty figure, axis ranges, the plotly toolbar config
* ``curves``:  the Live page's accuracy / loss, sharpness and speed figures
* ``gamma``:   the gamma distribution (animated), its mean, the layers' means
* ``compare``: the Compare page's overlay with mean ± std bands
* ``landscape``: the loss-landscape slices of the runs
* ``robustness``: robust accuracy against eps, accuracy under corruptions
"""

from samon_app.charts.base import FONT, HEIGHT, METRIC_TITLES, empty_figure, plotly_config
from samon_app.charts.compare import compare_figure
from samon_app.charts.curves import run_curves_figure, sharpness_figure, speed_figure
from samon_app.charts.gamma import (
    gamma_animation,
    gamma_mean_figure,
    gamma_notes,
    layer_gamma_figure,
)
from samon_app.charts.landscape import landscape_figure, plane_figure
from samon_app.charts.robustness import corruption_figure, robustness_figure

__all__ = [
    "FONT",
    "HEIGHT",
    "METRIC_TITLES",
    "compare_figure",
    "corruption_figure",
    "empty_figure",
    "gamma_animation",
    "gamma_mean_figure",
    "gamma_notes",
    "landscape_figure",
    "layer_gamma_figure",
    "plane_figure",
    "plotly_config",
    "robustness_figure",
    "run_curves_figure",
    "sharpness_figure",
    "speed_figure",
]
