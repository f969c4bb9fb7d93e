"""The phantom cohort: DICOM + VOC XML in the exact layout of the TCIA Lung-PET-CT-Dx
download, deterministic per seed (:mod:`detect.synth.cohort` plans it; ``patient``,
``dicom``, ``annotate``, ``records`` and ``phantom/`` draw and write it)."""

from detect.synth.cohort import SynthConfig, SynthSummary, synthesize

__all__ = ["SynthConfig", "SynthSummary", "synthesize"]
