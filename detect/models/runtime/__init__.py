"""Exported models (ONNX Runtime, TorchScript) behind the same Detector interface as
PyTorch, with the export record that model.json carries (:mod:`.record`)."""
