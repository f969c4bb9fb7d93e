"""``detect train``: every model family behind one entry (:func:`train`, see
:mod:`detect.train.run`); the options are
:class:`detect.models.registry.TrainConfig`, the result :mod:`detect.models.training`'s."""

from detect.models.registry import TrainConfig
from detect.models.training import EpochProgress, TrainResult
from detect.train.run import SERVICES, scratch_warning, train, train_config

__all__ = ["SERVICES", "EpochProgress", "TrainConfig", "TrainResult", "scratch_warning", "train",
           "train_config"]
