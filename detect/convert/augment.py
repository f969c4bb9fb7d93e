"""HU augmentation (``detect convert --hu-jitter``): jittered copies of the training images.

The same tissue reaches a model through different scanners as different HU images: a
sharp reconstruction kernel (Siemens B70f, GE "Lung") is far noisier than a standard one,
thick slices are smoother, calibrations and contrast phases move soft tissue by tens of
HU. A model trained on two patients of one scanner sees one of each. So each training
image (annotated or negative) gets ``copies`` extra images rendered from the same HU with:

- every window of the recipe scaled in width by a factor drawn uniformly in
  [1 - ``width``, 1 + ``width``] and moved by a level shift drawn uniformly in
  [-``level``, +``level``] HU (one draw per copy, shared by its windows);
- Gaussian noise added to the HU before windowing, its standard deviation drawn uniformly
  in [0, ``noise``] HU per copy (white, independent per pixel and per slice of a 2.5d
  stack): the grain of a sharper kernel, which a narrow window magnifies.

A draw depends only on (seed, the image's name, the copy's number), and its noise on the
draw's own seed, so a copy is the same whichever worker renders it and however the work
is sharded. Copies are made for the train split only: val and test images stay what the
scanner gave. A copy's name is its original's plus ``_hu<k>`` and its label the same
boxes; dataset.json records the rule and every copy's draw (``augmentation``), and each
copy's COCO image its draw (``hu_jitter``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from detect.errors import ConfigError
from detect.recipe import ChannelRecipe, Window

#: Suffix of a copy's name: ``<original>_hu<k>``, k = 1 .. copies.
COPY_SUFFIX = "_hu"
MAX_COPIES = 20
#: Largest level shift and noise a user may ask for, in HU (beyond, tissue classes swap).
MAX_HU = 500.0


@dataclass(frozen=True)
class HuJitter:
    """The rule: ``copies`` per training image (0: off), width scale ``1 ± width``, level
    ``± level`` HU, noise standard deviation up to ``noise`` HU."""

    copies: int = 0
    width: float = 0.2
    level: float = 50.0
    noise: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.copies <= MAX_COPIES:
            raise ConfigError(f"--hu-jitter copies must be 0..{MAX_COPIES}, got {self.copies}")
        if not (math.isfinite(self.width) and 0 <= self.width < 1):
            raise ConfigError(f"--hu-jitter width must be >= 0 and < 1 (a fraction of the "
                              f"window width), got {self.width}")
        for name in ("level", "noise"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= MAX_HU):
                raise ConfigError(f"--hu-jitter {name} must be 0..{MAX_HU:g} HU, got {value}")

    @classmethod
    def parse(cls, text: str) -> HuJitter:
        """``"2"`` or ``"2,width=0.2,level=50,noise=40"`` (any of the three keys).

        Raises:
            ConfigError: not of that form, or a value out of range.
        """
        head, *pairs = [part.strip() for part in text.split(",")]
        values: dict[str, float] = {}
        try:
            copies = int(head)
            for pair in pairs:
                key, _, value = pair.partition("=")
                if key not in ("width", "level", "noise") or key in values:
                    raise ValueError(key)
                values[key] = float(value)
        except ValueError:
            raise ConfigError(f"--hu-jitter takes COPIES or COPIES,width=F,level=HU,noise=HU "
                              f"(e.g. 1,width=0.2,level=50,noise=60), got {text!r}") from None
        return cls(copies, **values)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": "hu-jitter", "version": 1, "copies": self.copies,
                "width_scale": [1.0 - self.width, 1.0 + self.width],
                "level_shift_hu": [-self.level, self.level], "noise_sd_hu": [0.0, self.noise]}


@dataclass(frozen=True)
class JitterDraw:
    """One copy's draw: its number (1..), window width factor, level shift (HU), noise
    standard deviation (HU) and the seed of its noise."""

    copy: int
    width_scale: float
    level_shift_hu: float
    noise_sd_hu: float
    noise_seed: int

    def recipe(self, recipe: ChannelRecipe) -> ChannelRecipe:
        """The recipe with every window scaled and shifted."""
        windows = tuple(Window(w.name, w.width * self.width_scale, w.level + self.level_shift_hu)
                        for w in recipe.windows)
        return replace(recipe, windows=windows)

    def noisy(self, hu_by_offset: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        """The HU slices with this copy's noise added (float32; each offset its own)."""
        out = {}
        for offset, hu in sorted(hu_by_offset.items()):
            rng = np.random.default_rng([self.noise_seed, offset + 1000])
            noise = rng.normal(0.0, self.noise_sd_hu, size=hu.shape).astype(np.float32)
            out[offset] = hu.astype(np.float32) + noise
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"copy": self.copy, "width_scale": round(self.width_scale, 6),
                "level_shift_hu": round(self.level_shift_hu, 4),
                "noise_sd_hu": round(self.noise_sd_hu, 4), "noise_seed": self.noise_seed}


def draw(rule: HuJitter, seed: int, name: str, copy: int) -> JitterDraw:
    """Copy ``copy`` of the image ``name`` (module docstring: depends on nothing else)."""
    rng = random.Random(f"{seed}:hu-jitter:{name}:{copy}")
    return JitterDraw(copy=copy, width_scale=rng.uniform(1.0 - rule.width, 1.0 + rule.width),
                      level_shift_hu=rng.uniform(-rule.level, rule.level),
                      noise_sd_hu=rng.uniform(0.0, rule.noise), noise_seed=rng.getrandbits(63))


def copy_name(name: str, copy: int) -> str:
    return f"{name}{COPY_SUFFIX}{copy}"


def augmentation_section(rule: HuJitter, seed: int, records: Sequence[Mapping[str, Any]]
                         ) -> dict[str, Any]:
    """dataset.json's ``augmentation``: the rule, its seed and every copy's draw."""
    copies = sorted((r for r in records if r.get("hu_jitter")), key=lambda r: r["name"])
    return {"hu_jitter": {**rule.to_dict(), "seed": seed, "splits": ["train"]},
            "copies": [{"name": r["name"], "copy_of": r["copy_of"], **r["hu_jitter"]}
                       for r in copies]}
