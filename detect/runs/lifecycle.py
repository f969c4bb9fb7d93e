"""The life of one training run folder, the same for every family: choose it, start or
resume it, complete it, and clean up after a start that failed.

::

    run = RunFolder.choose(project, family, name, resume)   # a fresh folder, or the run to resume
    with run.guarded():                                     # a failure before the first
        previous = run.resumable(dataset) if resume else None   # checkpoint removes the folder
        run.start(manifest)  /  run.mark_resumed()          # model.json, status "training"
        ...train: weights/last.pt after each epoch...
        run.complete(metrics)                               # model.json, status "complete"

- A new run never overwrites another: ``name``, ``name-2``, ``name-3``... (like
  ultralytics), and the folder is created by :meth:`RunFolder.start` only.
- A start that fails (a bad option found late, a dataset the engine refuses, a crash or
  Ctrl-C in the first epoch) leaves nothing behind: a folder this process created and that
  holds no ``weights/last.pt`` yet is removed whole (everything in it was written by this
  run). With ``last.pt`` the folder stays, resumable with ``--resume``; a resumed run's
  folder is never removed.
- Completion is one atomic rewrite of model.json (``status`` complete, the best epoch's
  metrics, ``finished``), after the weights and metrics.csv are in place.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detect.errors import ConfigError, OutputFolderError, RunFolderError
from detect.runs.folder import choose_run_dir
from detect.runs.manifest import MODEL_JSON, now_iso, read_model_json, write_model_json

if TYPE_CHECKING:
    from detect.dataset import DatasetInfo

log = logging.getLogger(__name__)

#: Options saved in model.json ``args`` as strings that are paths again on resume.
PATH_OPTIONS = ("data", "weights", "project")
LAST = Path("weights") / "last.pt"


class RunFolder:
    """One run folder of ``family`` (module docstring)."""

    def __init__(self, path: Path, family: str, resume: bool) -> None:
        self.path, self.family, self.resume = path, family, resume
        self.created = False

    @classmethod
    def choose(cls, project: Path, family: str, name: str | None, resume: bool) -> RunFolder:
        """A fresh ``project/family/<name>`` (never an existing one), or with ``resume`` the
        named run, or the latest, that has ``weights/last.pt``.

        Raises:
            ConfigError: ``--resume`` finds no run with ``weights/last.pt``.
        """
        return cls(choose_run_dir(project, family, name, resume), family, resume)

    @property
    def model_json(self) -> Path:
        return self.path / MODEL_JSON

    def resumable(self, dataset: DatasetInfo) -> dict[str, Any]:
        """model.json of the run ``--resume`` continues, after checking it can be continued.

        Raises:
            ConfigError: the run is of another family, finished, or of another dataset.
            RunFolderError: its model.json is missing or invalid.
        """
        info = read_model_json(self.path)
        if info.family != self.family:
            raise ConfigError(f"--resume {self.path}: a {info.family} run, not {self.family}")
        if info.status == "complete":
            raise ConfigError(
                f"{self.path} finished training; nothing to resume (fine-tune it with "
                f"--weights {self.path / LAST} in a new run)"
            )
        if info.manifest["dataset"]["fingerprint"] != dataset.fingerprint:
            raise ConfigError(
                f"--resume {self.path}: it was trained on dataset "
                f"{info.manifest['dataset']['path']} (another dataset.json than "
                f"{dataset.root}); resume with the same --data"
            )
        return dict(info.manifest)

    def saved_options(self, config_type: type, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """The options of ``config_type`` (a dataclass) saved in ``manifest``'s ``args``,
        with paths as :class:`~pathlib.Path` again."""
        known = {f.name for f in fields(config_type)}
        saved = {k: v for k, v in manifest.get("args", {}).items() if k in known}
        for key in PATH_OPTIONS:
            if saved.get(key) is not None:
                saved[key] = Path(saved[key])
        return saved

    def start(self, manifest: Mapping[str, Any]) -> Path:
        """Create the folder (and ``weights/``) and write model.json (status training).

        Raises:
            RunFolderError: the folder appeared meanwhile, or cannot be created.
            OutputFolderError: the folder cannot be written.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise RunFolderError(f"{self.path} appeared while this run started (another "
                                 f"detect train?); run again for a fresh name") from None
        except OSError as exc:
            raise OutputFolderError(f"cannot create run folder {self.path} ({exc.strerror}); "
                                    f"pass --project to a folder you can write") from None
        self.created = True
        (self.path / "weights").mkdir()
        return write_model_json(self.path, manifest)

    def mark_resumed(self) -> dict[str, Any]:
        """Add this moment to model.json's ``args.resumed``; returns the manifest."""
        data = dict(read_model_json(self.path).manifest)
        data["args"]["resumed"] = [*data["args"].get("resumed", []), now_iso()]
        write_model_json(self.path, data)
        return data

    def complete(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Rewrite model.json atomically with ``metrics`` (the best epoch's) and ``status``
        complete; returns the manifest."""
        data = dict(read_model_json(self.path).manifest)
        data.update(status="complete", metrics=dict(metrics), finished=now_iso())
        write_model_json(self.path, data)
        log.info("run complete: %s (best epoch %s)", self.path, metrics.get("epoch"))
        return data

    @contextmanager
    def guarded(self) -> Iterator[RunFolder]:
        """Remove the folder when what runs inside fails before the run's first checkpoint
        (module docstring); Ctrl-C and errors pass on."""
        try:
            yield self
        except BaseException:
            if self.created and not (self.path / LAST).is_file():
                log.info("run did not start, removing %s", self.path)
                shutil.rmtree(self.path, ignore_errors=True)
            raise
