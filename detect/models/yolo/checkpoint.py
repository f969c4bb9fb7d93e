"""Reading a YOLO ``.pt`` without running anything in it: the one reader of every YOLO
checkpoint detect opens (predict, eval ``--weights``, export, train ``--weights`` and
``--resume``).

An ultralytics checkpoint is a pickle of a ``DetectionModel`` (torch and ultralytics
nn.Modules) and plain dicts. ultralytics opens it with ``torch.load(weights_only=False)``,
which runs whatever the pickle asks for, so a crafted ``best.pt`` would run its code the
moment a model was loaded. detect never lets it; it reads a YOLO ``.pt`` in three steps:

1. **Names.** torch lists the globals the pickle references beyond its own weights-only
   set (``get_unsafe_globals_in_checkpoint``). Each must be in :data:`MODULE_CLASSES` (the
   modules a YOLOv8 / YOLO11 detection model is made of) or :data:`DATA_CLASSES` (the
   argument namespace, numpy scalars and paths ultralytics pickles beside it); anything else
   is refused by name: ``refused: best.pt holds posix.system, which a YOLO checkpoint never
   needs``.
2. **Load.** ``torch.load(weights_only=True)`` with every allowed name mapped to an inert
   stand-in, not to the real class. The pickle can fill in a stand-in's attributes, nothing
   else: no constructor, ``__setstate__`` or hook of torch or ultralytics runs while the file
   is read. A pickle that *calls* a model class (a genuine one only ever creates modules
   empty and fills them in) is refused: called with a crafted YAML, ultralytics'
   ``DetectionModel`` would ``eval`` its ``activation`` string.
3. **Rebuild.** Only tensors (the state dict), the class names and plain values (epoch,
   optimizer state present, architecture and training arguments as data) leave this module
   (:class:`YoloCheckpoint`). The network is built by detect from ultralytics' bundled YAML
   (:mod:`detect.models.yolo.network`), the tensors loaded into it with ``load_state_dict``.

What is trusted: nothing a user hands over (``--weights``, a run folder's ``best.pt``) is
unpickled by anything but step 2. ultralytics itself still reloads files during training:
the ``last.pt`` it resumes from (``--resume``) and the ``best.pt``/``last.pt`` it writes and
re-reads in the run folder. The ``last.pt`` of a resumed run is read here first and
checked (:func:`detect.models.yolo.train.check_resumable`: detect's own architecture,
training arguments that name no file detect did not pass), and ultralytics then reads it,
like the files it writes itself, with its own restricted loader (``ULTRALYTICS_SAFE_LOAD=1``, set by
:mod:`detect.models.yolo.env`). Replacing ``last.pt`` between that check and the resume
needs write access to the run folder during the run.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)

from detect.errors import RunFolderError  # noqa: E402
from detect.models.checkpoint import (  # noqa: E402
    SafeGlobal,
    global_in_refusal,
    load_fault,
    only_these_globals,
    pickled_globals,
    refused,
)

#: Every module class of a YOLOv8 / YOLO11 detection model, n to x (ultralytics 8.3/8.4).
MODULE_CLASSES = (
    "ultralytics.nn.tasks.DetectionModel",
    "ultralytics.nn.modules.head.Detect",
    "ultralytics.nn.modules.conv.Conv",
    "ultralytics.nn.modules.conv.DWConv",
    "ultralytics.nn.modules.conv.Concat",
    "ultralytics.nn.modules.block.C2f",
    "ultralytics.nn.modules.block.C3k2",
    "ultralytics.nn.modules.block.C3k",
    "ultralytics.nn.modules.block.Bottleneck",
    "ultralytics.nn.modules.block.SPPF",
    "ultralytics.nn.modules.block.C2PSA",
    "ultralytics.nn.modules.block.PSABlock",
    "ultralytics.nn.modules.block.Attention",
    "ultralytics.nn.modules.block.DFL",
    "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.activation.SiLU",
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.upsampling.Upsample",
    "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.modules.linear.Identity",
)
#: Plain values ultralytics pickles beside the model (its argument namespace, also under
#: its pre-8.0.44 name; numpy scalars and dtypes; paths): read as inert placeholders.
DATA_CLASSES = (
    "ultralytics.utils.IterableSimpleNamespace",
    "ultralytics.yolo.utils.IterableSimpleNamespace",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "pathlib._local.PosixPath",
    "pathlib._local.WindowsPath",
)
DETECTION_MODEL = MODULE_CLASSES[0]
MAX_MODULE_DEPTH = 32  # a YOLO model nests 6 deep; deeper is not a YOLO model
MAX_CLASSES = 100
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
WHAT = "a YOLO checkpoint"
HINT = ("pass the weights of a detect YOLO run or an ultralytics YOLOv8/YOLO11 detection "
        "checkpoint")


class _Called(Exception):
    """A stand-in was called: the pickle tried to run a class's constructor."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _InertModule:
    """What an allowed module class becomes while a checkpoint is read: a record of the
    attributes the pickle gives it. Calling it (a constructor call) is refused."""

    qualified: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _Called(self.qualified)

    def __setstate__(self, state: Any) -> None:
        self.state: dict[str, Any] = state if isinstance(state, dict) else {}


class _InertData:
    """What an allowed data class becomes: a placeholder that keeps nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


@functools.cache
def _stand_ins() -> dict[str, type]:
    modules = {name: type(name.rsplit(".", 1)[1], (_InertModule,), {"qualified": name})
               for name in MODULE_CLASSES}
    return {**modules, **dict.fromkeys(DATA_CLASSES, _InertData)}


@dataclass(frozen=True)
class YoloCheckpoint:
    """What detect takes from a YOLO ``.pt``: tensors and plain values only.

    ``state``: the state dict of its EMA model (else its model); ``names``: class names in
    index order; ``architecture``: the model's YAML dict as saved (data, never built from);
    ``epoch``: ultralytics' last finished epoch (-1 once training has finished);
    ``resumable``: epoch >= 0 and optimizer state present; ``train_args``: ultralytics'
    training arguments as saved (data)."""

    path: Path
    state: dict[str, torch.Tensor]
    names: tuple[str, ...]
    architecture: dict[str, Any] | None
    epoch: int
    resumable: bool
    train_args: dict[str, Any] = field(default_factory=dict)


def _unpickle(path: Path) -> Any:
    """The pickle read with the stand-ins as torch's only allowlist beyond its defaults
    (classes another library registered process-wide are set aside meanwhile)."""
    entries: list[SafeGlobal] = [(stand_in, name) for name, stand_in in _stand_ins().items()]
    try:
        with only_these_globals(entries):
            unknown = pickled_globals(path)  # beyond torch's defaults and the stand-ins
            if unknown:
                raise RunFolderError(f"{refused(path, unknown[0], WHAT)}; {HINT}")
            return torch.load(path, map_location="cpu", weights_only=True)
    except RunFolderError:
        raise
    except _Called as call:
        raise RunFolderError(
            f"refused: {path} calls {call.name} with arguments, which {WHAT} never does; it "
            f"was not loaded; {HINT}"
        ) from None
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        name = global_in_refusal(exc)
        if name is not None:
            raise RunFolderError(f"{refused(path, name, WHAT)}; {HINT}") from None
        raise RunFolderError(
            f"{path} is not a loadable YOLO checkpoint ({load_fault(exc)}); {HINT}"
        ) from None


def _tensors(module: _InertModule, prefix: str, out: dict[str, torch.Tensor], depth: int,
             path: Path) -> None:
    if depth > MAX_MODULE_DEPTH:
        raise RunFolderError(f"{path}: modules nested deeper than {MAX_MODULE_DEPTH}; "
                             f"not {WHAT}; {HINT}")
    state = getattr(module, "state", {})
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, tensor in dict(state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor) or not isinstance(name, str):
                raise RunFolderError(f"{path}: {prefix}{name} is not a tensor; not {WHAT}")
            out[f"{prefix}{name}"] = tensor.detach()
    for name, child in dict(state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, _InertModule) or not isinstance(name, str):
            raise RunFolderError(f"{path}: {prefix}{name} is not a module; not {WHAT}")
        _tensors(child, f"{prefix}{name}.", out, depth + 1, path)


def _names(raw: Any, path: Path) -> tuple[str, ...]:
    if isinstance(raw, Mapping):
        keys = sorted(raw, key=lambda k: (not isinstance(k, int), str(k)))
        if keys != list(range(len(keys))):
            raise RunFolderError(f"{path}: class names indexed {keys[:5]}..., not 0..n-1; "
                                 f"not {WHAT}")
        raw = [raw[k] for k in keys]
    if (not isinstance(raw, (list, tuple)) or not 0 < len(raw) <= MAX_CLASSES
            or not all(isinstance(n, str) and _NAME.fullmatch(n) for n in raw)):
        raise RunFolderError(f"{path}: its class names are not 1 to {MAX_CLASSES} short "
                             f"names; not {WHAT}")
    return tuple(raw)


def read_yolo_checkpoint(path: Path) -> YoloCheckpoint:
    """Read a YOLO ``.pt`` the safe way (module docstring).

    Raises:
        RunFolderError: missing; refused (``refused: <file> holds <global>...`` or ``calls
            <class>...``); not loadable; or holding no YOLO detection model.
    """
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path} is not a file; pass a local .pt (nothing is downloaded)")
    data = _unpickle(path)
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} holds a {type(data).__name__}, not {WHAT}; {HINT}")
    model = data.get("ema") if data.get("ema") is not None else data.get("model")
    if not isinstance(model, _InertModule) or model.qualified != DETECTION_MODEL:
        raise RunFolderError(
            f"{path} holds no YOLO detection model (no DetectionModel under 'ema' or "
            f"'model'); {HINT}"
        )
    tensors: dict[str, torch.Tensor] = {}
    _tensors(model, "", tensors, 0, path)
    architecture = model.state.get("yaml")
    epoch = data.get("epoch", -1)
    epoch = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else -1
    train_args = data.get("train_args")
    return YoloCheckpoint(
        path=path, state=tensors, names=_names(model.state.get("names"), path),
        architecture=dict(architecture) if isinstance(architecture, dict) else None,
        epoch=epoch, resumable=epoch >= 0 and isinstance(data.get("optimizer"), dict),
        train_args=dict(train_args) if isinstance(train_args, dict) else {},
    )
