"""Histology-head training: options (:mod:`.config`), tumour crops (:mod:`.data`), the run
folder (:mod:`.run`) and the loop (:mod:`.loop`)."""

from detect.models.histology.config import HistologyConfig

__all__ = ["HistologyConfig"]
