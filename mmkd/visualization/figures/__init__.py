"""PNG figures of a run: training curves, reliability diagrams, accuracy bars, detections.

Every function draws with matplotlib's Agg backend (no display needed), saves one PNG and
returns its path. Figures have a fixed size and dpi (never ``bbox_inches='tight'``), so the
pixel size of each PNG does not depend on the data (width x height):

=========================  ==============  ==================================================
function                   PNG size (px)   content
=========================  ==============  ==================================================
plot_training_curves       1600 x 1200     a subplot per model's losses vs iteration, then a
                                           subplot per val metric vs epoch, a line per model
plot_reliability_diagram   600 x 700       accuracy per confidence bin, diagonal, ECE (%)
plot_accuracy_bars         800 x 500       one bar per model (exits / teacher, students,
                                           ensemble) of one metric
plot_detection_grid        1200 x 800      up to 6 pictures in a 3 x 2 grid
=========================  ==============  ==================================================

One module per figure; ``FIGURE_PIXELS`` (in :mod:`.plotting`, with the helpers the figures
share) holds these sizes. The reading helpers (:func:`read_scalars`,
:func:`find_scalars_files`, :func:`last_metrics`, in :mod:`.scalars`) understand the files
mmengine's ``LoggerHook`` writes under a work dir.
"""
from .accuracy_bars import plot_accuracy_bars
from .detection_grid import plot_detection_grid
from .plotting import (ACCURACY_BARS_SIZE, DETECTION_GRID_SIZE, DPI, ENSEMBLE, FIGURE_PIXELS,
                       RELIABILITY_SIZE, TRAINING_CURVES_SIZE, PathLike)
from .reliability_diagram import plot_reliability_diagram, reliability_bins
from .scalars import find_scalars_files, last_metrics, read_scalars
from .training_curves import plot_training_curves

__all__ = [
    'ACCURACY_BARS_SIZE', 'DETECTION_GRID_SIZE', 'DPI', 'ENSEMBLE', 'FIGURE_PIXELS',
    'RELIABILITY_SIZE', 'TRAINING_CURVES_SIZE', 'PathLike', 'find_scalars_files',
    'last_metrics', 'plot_accuracy_bars', 'plot_detection_grid', 'plot_reliability_diagram',
    'plot_training_curves', 'read_scalars', 'reliability_bins'
]
