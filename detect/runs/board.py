"""A run's TensorBoard log, ``RUN/tb/``: every numeric column of each epoch's metrics.csv
row as a scalar at step = epoch, for every family (the same rows metrics.csv holds).

Written only when the ``tensorboard`` package is installed (torch's ``SummaryWriter``
needs it); detect never installs it at run time. Otherwise :class:`EpochBoard` does
nothing and model.json ``provenance.tensorboard`` is false. The writer is opened at the
first epoch's row, so a run that fails before its first epoch leaves no log (and no
folder) behind; a resumed run logs the epochs after those already done.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The log's folder inside the run folder.
TB_DIR = "tb"


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package is installed (torch's writer needs it)."""
    return importlib.util.find_spec("tensorboard") is not None


class EpochBoard:
    """Epoch rows → TensorBoard scalars in ``run_dir/tb`` (module docstring); rows up to
    epoch ``after`` (already logged before a resume) are skipped."""

    def __init__(self, run_dir: Path, *, after: int = 0) -> None:
        self.run_dir, self.logged = run_dir, after
        self.enabled = tensorboard_available()
        self._writer: Any = None

    def _open(self) -> Any:
        if self._writer is None and self.enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.run_dir / TB_DIR))
            except Exception as exc:  # a broken install must not stop training
                log.warning("TensorBoard log off: %s", exc)
                self.enabled = False
        return self._writer

    def log(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add every row whose epoch is after the last one logged."""
        for row in rows:
            epoch = int(row.get("epoch") or 0)
            if epoch <= self.logged:
                continue
            writer = self._open()
            if writer is None:
                return
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) \
                        and not isinstance(value, bool) and math.isfinite(value):
                    writer.add_scalar(key, float(value), epoch)
            self.logged = epoch
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
