"""Ultralytics made offline and quiet before its first import.

- Before ultralytics is first imported, :func:`prepare_ultralytics` sets
  ``ULTRALYTICS_SAFE_LOAD=1`` whatever the user set: every checkpoint ultralytics itself
  reads (the ``last.pt`` it resumes from, the files it writes and re-reads in a run) is
  loaded with ``weights_only=True`` and its allowlist, and models are built without
  ``eval`` (detect reads every file a user hands over itself, see
  :mod:`detect.models.yolo.checkpoint`; this covers what ultralytics reads on its own).
  It also sets ultralytics' documented environment switches unless the user set them:
  ``YOLO_OFFLINE=1`` (no online check, no
  pip-update check, no analytics), ``YOLO_AUTOINSTALL=false`` (ultralytics' requirement
  checks, e.g. in its exporter, never pip-install) and
  ``YOLO_VERBOSE=false`` unless detect logs at DEBUG (``detect -v``): ultralytics' argument
  dump, layer table, progress bars and "Overriding model.yaml nc=80" lines stay out of
  detect's output, which prints its own progress; ``YOLO_CONFIG_DIR=<config home>/detect``,
  so detect
  keeps its own ultralytics settings file (integrations such as MLflow/Comet/ClearML off,
  ``sync`` off, set through ``ultralytics.settings.update``) and never edits the user's.
  Set ``YOLO_CONFIG_DIR`` yourself to train with your own ultralytics settings.
- Threads: ultralytics' ``select_device`` sets torch to CPUs - 1 threads for the whole
  process on every CPU training, validation or export, and leaves it there: on 2 cores,
  whatever ran next in the process (a Faster R-CNN training, an evaluation) ran on one.
  :func:`threads_kept` puts the count back after each ultralytics call.
- Fonts: ultralytics' dataset check looks for ``Arial.ttf`` in its config dir and sends a
  request to fetch it when absent, even with ``plots=False``. In detect's own config dir we
  put matplotlib's bundled DejaVu Sans there under that name (plots stay off; the file only
  satisfies the check).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

_OFF_SETTINGS = {
    "sync": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
}

def detect_config_home() -> Path:
    """``$XDG_CONFIG_HOME/detect`` (``~/.config/detect``): detect's ultralytics config dir."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "detect"


def prepare_ultralytics() -> None:
    """Make ultralytics offline and quiet before first use (idempotent; see module doc)."""
    if "ultralytics" not in sys.modules:
        os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"  # read once, at ultralytics' import
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install at run time
        verbose = logging.getLogger("detect").isEnabledFor(logging.DEBUG)
        os.environ.setdefault("YOLO_VERBOSE", "true" if verbose else "false")
        os.environ.setdefault("YOLO_CONFIG_DIR", str(detect_config_home()))
    from ultralytics import settings
    from ultralytics.utils import USER_CONFIG_DIR

    config_dir = Path(USER_CONFIG_DIR)
    if config_dir.parent.resolve() != detect_config_home().resolve():
        log.info("ultralytics uses the settings in %s (YOLO_CONFIG_DIR)", config_dir)
        return
    changed = {k: v for k, v in _OFF_SETTINGS.items() if settings.get(k) != v}
    if changed:
        settings.update(changed)
    font = config_dir / "Arial.ttf"
    if not font.is_file():
        import matplotlib

        source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        try:
            shutil.copyfile(source, font)
        except OSError as exc:  # a missing font only costs ultralytics one failed request
            log.info("could not place a local font for ultralytics (%s)", exc)


@contextmanager
def threads_kept() -> Iterator[None]:
    """Run an ultralytics call and give torch back the thread count it had (module
    docstring: ultralytics drops it to CPUs - 1 for the rest of the process)."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
