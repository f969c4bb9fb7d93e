"""``detect export``: ONNX / TorchScript files that run without the training stack, checked
against PyTorch (:mod:`detect.export.parity`)."""

from detect.export.run import ExportConfig, ExportResult, export_model

__all__ = ["ExportConfig", "ExportResult", "export_model"]
