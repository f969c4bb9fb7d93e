"""``detect train``: every model family behind one entry (see :mod:`detect.train.dispatch`)."""

from detect.train.dispatch import TRAINERS, train
from detect.train.options import EpochProgress, TrainConfig, TrainResult

__all__ = ["TRAINERS", "EpochProgress", "TrainConfig", "TrainResult", "train"]
