"""The channel recipe: how HU slices become the 8-bit, 3-channel images models see.

A recipe is written into dataset.json and model.json with its exact numbers, so every
later step (train, eval, predict) prepares pixels exactly the way the data was converted.

Windowing (DICOM's linear VOI function, without its half-pixel offset)::

    lower = level - width / 2
    value = round(clip((HU - lower) / width, 0, 1) * 255)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detect.errors import ConfigError
from detect.io.slice_order import Stacking

#: The largest 2.5d slice step (mm): farther slices say nothing about the slice.
MAX_STEP_MM = 50.0

#: Named windows, (width HU, level HU).
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (1400.0, -700.0),
    "mediastinum": (350.0, 40.0),
    "wide": (1500.0, -400.0),
    "soft": (400.0, 50.0),
    "bone": (1800.0, 400.0),
}


@dataclass(frozen=True)
class Window:
    """A display window in HU."""

    name: str
    width: float
    level: float

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ConfigError(f"window {self.name!r}: width must be > 0 HU, got {self.width}")

    def apply(self, hu: np.ndarray) -> np.ndarray:
        """HU array → uint8 array of the same shape."""
        lower = self.level - self.width / 2.0
        scaled = (hu.astype(np.float32) - np.float32(lower)) * np.float32(255.0 / self.width)
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "width_hu": self.width, "level_hu": self.level}


@dataclass(frozen=True)
class ChannelRecipe:
    """``kind='windows'``: one window per channel of the slice itself.
    ``kind='2.5d'``: one window, channels are the slices at ``offsets`` (edge-replicated),
    in steps of one distinct position, or with ``step_mm`` of the position nearest to that
    many mm (:func:`detect.io.slice_order.neighbour_indices`).
    """

    kind: str
    windows: tuple[Window, ...]
    offsets: tuple[int, ...] = field(default=(0, 0, 0))
    step_mm: float | None = None

    def __post_init__(self) -> None:
        if self.kind == "windows":
            if len(self.windows) != 3 or self.offsets != (0, 0, 0):
                raise ConfigError(
                    f"a windows recipe has 3 windows and offsets (0, 0, 0), got "
                    f"{len(self.windows)} windows and offsets {self.offsets}"
                )
        elif self.kind == "2.5d":
            if len(self.windows) != 1 or len(self.offsets) != 3:
                raise ConfigError(
                    f"a 2.5d recipe has 1 window and 3 slice offsets, got "
                    f"{len(self.windows)} windows and offsets {self.offsets}"
                )
        else:
            raise ConfigError(f"recipe kind must be 'windows' or '2.5d', got {self.kind!r}")
        if self.step_mm is not None and (
                self.kind != "2.5d" or not math.isfinite(self.step_mm)
                or not 0.0 < self.step_mm <= MAX_STEP_MM):
            raise ConfigError(f"a slice step is a number of mm in (0, {MAX_STEP_MM:g}] for a "
                              f"2.5d recipe, got {self.step_mm} for {self.kind!r}")

    @property
    def neighbours(self) -> tuple[int, ...]:
        """Slice offsets whose HU this recipe needs (0 = the slice itself)."""
        return tuple(sorted(set(self.offsets)))

    @property
    def stacking(self) -> Stacking:
        """The slices this recipe stacks, for :func:`~detect.io.slice_order.neighbour_indices`."""
        return Stacking(self.neighbours, self.step_mm)

    def render(self, hu_by_offset: Mapping[int, np.ndarray]) -> np.ndarray:
        """Make the H × W × 3 uint8 image from HU slices keyed by offset."""
        if self.kind == "windows":
            hu = hu_by_offset[0]
            channels = [window.apply(hu) for window in self.windows]
        else:
            window = self.windows[0]
            channels = [window.apply(hu_by_offset[offset]) for offset in self.offsets]
        return np.ascontiguousarray(np.stack(channels, axis=-1))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "windows": [w.to_dict() for w in self.windows],
            "slice_offsets": list(self.offsets),
        }
        if self.step_mm is not None:  # absent: one distinct position (recipes before it)
            data["slice_step_mm"] = self.step_mm
        data["formula"] = "uint8 = round(clip((HU - (level - width/2)) / width, 0, 1) * 255)"
        data["hu_source"] = "pydicom apply_modality_lut (RescaleSlope/Intercept or LUT)"
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelRecipe:
        """Rebuild a recipe written by :meth:`to_dict` (dataset.json, model.json).

        Raises:
            ConfigError: the mapping is not a recipe.
        """
        try:
            windows = tuple(
                Window(str(w["name"]), float(w["width_hu"]), float(w["level_hu"]))
                for w in data["windows"]
            )
            step = data.get("slice_step_mm")
            return cls(str(data["kind"]), windows, tuple(int(o) for o in data["slice_offsets"]),
                       None if step is None else float(step))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a channel recipe: {exc!r} in {dict(data)!r}") from None


def _parse_window(token: str) -> Window:
    token = token.strip()
    if token in WINDOW_PRESETS:
        return Window(token, *WINDOW_PRESETS[token])
    try:
        width_text, level_text = token.split("/")
        return Window(token, float(width_text), float(level_text))
    except ValueError:
        raise ConfigError(
            f"unknown window {token!r}: expected one of {', '.join(WINDOW_PRESETS)} or "
            f"WIDTH/LEVEL in HU such as 1400/-700"
        ) from None


def _parse_step(token: str) -> float:
    text = token.strip().lower()
    try:
        if not text.endswith("mm"):
            raise ValueError(text)
        step = float(text[:-2])
        if not math.isfinite(step) or not 0.0 < step <= MAX_STEP_MM:
            raise ValueError(text)
    except ValueError:
        raise ConfigError(f"2.5d slice step {token!r}: expected a length such as 5mm, in "
                          f"(0, {MAX_STEP_MM:g}] mm") from None
    return step


def parse_channels(spec: str | Sequence[str]) -> ChannelRecipe:
    """Parse ``--channels``: three windows (``lung,mediastinum,wide`` or ``W/L`` tokens),
    or ``2.5d`` / ``2.5d:WINDOW`` / ``2.5d:WINDOW:STEPmm`` (slice and its two neighbours in
    one window, lung by default; neighbours one distinct position away, or with ``5mm``
    the positions nearest to 5 mm away).

    Raises:
        ConfigError: an unknown window or step, or the wrong number of windows.
    """
    text = spec if isinstance(spec, str) else ",".join(spec)
    text = text.strip()
    if text.startswith("2.5d"):
        _, _, rest = text.partition(":")
        window_token, _, step_token = rest.partition(":")
        return ChannelRecipe("2.5d", (_parse_window(window_token or "lung"),), (-1, 0, 1),
                             _parse_step(step_token) if step_token else None)
    tokens = [t for t in text.split(",") if t.strip()]
    if len(tokens) != 3:
        raise ConfigError(
            f"--channels takes 3 windows (e.g. lung,mediastinum,wide) or 2.5d, got "
            f"{len(tokens)}: {text!r}"
        )
    return ChannelRecipe("windows", tuple(_parse_window(t) for t in tokens))


#: ``--channels`` default: three windows of one slice.
DEFAULT_CHANNELS = "lung,mediastinum,wide"
DEFAULT_RECIPE = parse_channels(DEFAULT_CHANNELS)
