"""The zoo's Lightning callbacks, in one package.

- :mod:`zoo.callbacks.checkpoint`: :class:`ZooCheckpoint`, the best and last checkpoints, exact resume and the
  checkpoint written on SIGTERM.
- :mod:`zoo.callbacks.training`: :class:`StopOnNonFiniteLoss` (a diverged run stops with one message) and
  :class:`ZooProgressBar`.
- :mod:`zoo.callbacks.pictures`: :class:`SampleGridCallback` (generative models' sample grids) and
  :class:`FrameStripCallback` (ConvLSTM forecast strips), written as PNG files and to the run's logger.
"""

from zoo.callbacks.checkpoint import ZooCheckpoint
from zoo.callbacks.pictures import FrameStripCallback, SampleGridCallback, save_and_log_image
from zoo.callbacks.training import StopOnNonFiniteLoss, TrainingDivergedError, ZooProgressBar

__all__ = ["FrameStripCallback", "SampleGridCallback", "StopOnNonFiniteLoss", "TrainingDivergedError", "ZooCheckpoint",
           "ZooProgressBar", "save_and_log_image"]
