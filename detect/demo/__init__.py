"""``detect demo``: the whole chain on a phantom cohort (:mod:`.run`), then the shipped real
model on the repository's real CT sample (:mod:`.real`)."""

from detect.demo.run import DemoConfig, DemoSummary, run_demo

__all__ = ["DemoConfig", "DemoSummary", "run_demo"]
