"""Reading and writing files: DICOM headers and HU (:mod:`.dicom`), hardened VOC XML
(:mod:`.voc`) and atomic writes (:mod:`.atomic`). The bottom layer: imports nothing of
detect but errors, boxes and the histology taxonomy."""
