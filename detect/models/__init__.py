"""Model families. What a family is (:mod:`.family`), every family detect knows
(:mod:`.families`, one module each) and how to look one up (:mod:`.registry`): all
torch-free. Each family's engine lives beside them (:mod:`.yolo`, :mod:`.faster_rcnn`,
:mod:`.histology`); every detector offers :class:`.base.Detector`, loaded by
:func:`.detector.load_detector`; exported files run through :mod:`.runtime`."""
