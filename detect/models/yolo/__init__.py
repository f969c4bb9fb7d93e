"""YOLO (yolov8, yolo11, yolo26) through ultralytics' public API: the run folder
(:mod:`.run`), options (:mod:`.config`), training (:mod:`.train`), the detector
(:mod:`.detector`), exported-file runtimes (:mod:`.runtime`) and export (:mod:`.export`).

This package is the only importer of ultralytics. :mod:`detect.models.yolo.env` makes it
offline before its first import (no online checks, no pip installs, no font fetch,
integrations off); :mod:`detect.models.yolo.decode` holds the letterbox and the decoding
(NMS, or the NMS-free head's top-k) that every YOLO runtime (PyTorch, ONNX, TorchScript)
shares.

Checkpoints are ultralytics' pickled ``.pt`` files. Every one detect opens is read by
:mod:`detect.models.yolo.checkpoint` (``weights_only=True``, an explicit allowlist of the
classes a YOLO detection model holds, inert stand-ins for them, tensors and names out) and
the network is built from ultralytics' bundled YAML (:mod:`detect.models.yolo.network`):
a crafted ``.pt`` is refused by name and never runs.

Importing the package itself loads nothing (its modules import torch): the family
registry reads :mod:`.config` without torch.
"""
