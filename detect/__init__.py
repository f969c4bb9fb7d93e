"""detect: lung tumour detection and histology on CT / PET-CT DICOM."""

__version__ = "0.1.0"
