"""The detector families behind one interface (:mod:`.base`), loaded by model.json's
family (:mod:`.detector`); the catalogue of families and backbones (:mod:`.catalog`) is
torch-free. Exported files run through :mod:`.runtime`."""
