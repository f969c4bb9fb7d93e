"""Reading and writing files: DICOM headers and HU (:mod:`.dicom`), hardened VOC XML
(:mod:`.voc`), DICOM SR boxes in (:mod:`.sr`) and IDC-style SRs out (:mod:`.idc_sr`),
where a series' slices lie in the patient (:mod:`.geometry`), and atomic writes
(:mod:`.atomic`). The bottom layer: imports nothing of
detect but errors, boxes and the histology taxonomy."""
