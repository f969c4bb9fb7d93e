"""DICOM + VOC XML → windowed PNG dataset in COCO and YOLO form (docs/contracts.md, contract 2).

``convert(config)`` is the entry point; the modules are its stages: ``index`` (headers),
``plan`` (match XMLs to slices), ``split`` (patients → splits), ``images`` (the workers),
``manifest`` (COCO, data.yaml, dataset.json) and ``pipeline`` (orchestration, resume,
shards).
"""

from detect.convert.pipeline import ConvertSummary, convert

__all__ = ["ConvertSummary", "convert"]
