"""Faster R-CNN training (torchvision): options (:mod:`.config`), data (:mod:`.data`), the
engine (:mod:`.engine`), the epoch loop (:mod:`.loop`), checkpoints (:mod:`.checkpoint`),
the run folder (:mod:`.run`) and process launch (:mod:`.launch`)."""

from detect.models.faster_rcnn.config import FasterRCNNConfig

__all__ = ["FasterRCNNConfig"]
