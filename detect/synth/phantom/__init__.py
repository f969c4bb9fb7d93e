"""The chest phantom: geometry (:mod:`.anatomy`), lesions by histology (:mod:`.lesions`)
and HU / SUV / fused slices (:mod:`.render`)."""
