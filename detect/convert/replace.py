"""A re-run of convert into a folder that holds a finished dataset: the same command
continues or changes nothing; anything that would change the dataset is a replacement.

Trained runs name their dataset by its fingerprint (the SHA-256 of dataset.json, contract
2), so a dataset rendered again with other options, or from inputs that changed, is a
different dataset and the runs trained on it no longer match it. By the rule of every
command (:mod:`detect.io.replacing`) such a run is refused without ``--overwrite``, and
with it one warning says what is replaced. It is found as early as it can be known:

1. before any work, when the options differ from those dataset.json records (recipe,
   classes, split, seed, negatives, fused, HU jitter, sources, detect's version);
2. after planning, when patients must be converted again because their inputs changed
   (their part was made from other inputs) or are new (a patient whose part file was
   lost is converted again without asking: the same inputs give the same images);
3. at the merge, when the new dataset.json would differ in any other way (an issue
   found or gone), before anything of the old dataset is removed; had this run already
   converted patients again (a lost part whose inputs had changed), it can only say so.

An interrupted run left no dataset.json (it is removed before images are rendered
again), so re-running it continues without ``--overwrite``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect.dataset import DATASET_FORMAT
from detect.io.replacing import announce_replacement, refuse_existing, written_on

#: What no longer holds once a dataset is replaced.
CONSEQUENCE = "runs trained on it no longer match it"
#: dataset.json keys made from the data, not the options.
_FROM_DATA = ("split_notes",)


@dataclass
class Replacement:
    """The finished dataset in OUT (None: none) and whether this run may replace it."""

    out: Path
    manifest: dict[str, Any] | None
    fingerprint: str
    overwrite: bool
    announced: bool = False

    @classmethod
    def of(cls, out: Path, overwrite: bool) -> Replacement:
        """The dataset.json of detect's format in ``out``, if any."""
        path = out / "dataset.json"
        try:
            raw = path.read_bytes()
            manifest = json.loads(raw)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return cls(out, None, "", overwrite)
        if not isinstance(manifest, dict) or manifest.get("format") != DATASET_FORMAT:
            return cls(out, None, "", overwrite)
        return cls(out, manifest, hashlib.sha256(raw).hexdigest(), overwrite)

    def describe(self) -> str:
        """The dataset in words: date, fingerprint, recipe and classes."""
        manifest = self.manifest or {}
        return (f"the dataset of {written_on(self.out / 'dataset.json')} (fingerprint "
                f"{self.fingerprint[:12]}, recipe {_recipe(manifest.get('recipe'))}, classes "
                f"{','.join(map(str, manifest.get('classes') or []))})")

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Step 1: ``options`` is what this run would write into dataset.json's option
        fields (``convert.pipeline._base``).

        Raises:
            OutputFolderError: they differ and ``overwrite`` is False.
        """
        if self.manifest is None:
            return
        changes = option_changes(self.manifest, options)
        if changes:
            self._replace(f"other options: {'; '.join(changes)}")

    def changed(self, patient_id: str, part: Path) -> bool:
        """Whether a patient to convert again changes the dataset: it is not in it, or
        its part file is there but was made from other inputs (module docstring)."""
        patients = (self.manifest or {}).get("patients")
        return part.is_file() or not isinstance(patients, dict) or patient_id not in patients

    def check_inputs(self, patients: int) -> None:
        """Step 2: ``patients`` (see :meth:`changed`) must be converted again (0: none)."""
        if patients:
            self._replace(f"inputs changed: {patients} patients to convert again")

    def check_manifest(self, data: bytes, *, rendered: bool) -> None:
        """Step 3: ``data`` are the bytes of the dataset.json this run would write;
        ``rendered``: this run converted patients again (the old dataset is gone)."""
        if self.manifest is not None and hashlib.sha256(data).hexdigest() != self.fingerprint:
            self._replace("inputs changed: dataset.json would differ", refuse=not rendered)

    def _replace(self, reason: str, *, refuse: bool = True) -> None:
        if self.manifest is None or self.announced:
            return
        if refuse and not self.overwrite:
            raise refuse_existing(self.out, f"{self.describe()}, which this run would "
                                  f"change ({reason})", option="OUT",
                                  consequence=CONSEQUENCE.replace("no longer", "will no longer"))
        announce_replacement(self.out, self.describe(), f"{CONSEQUENCE} ({reason})")
        self.announced = True


def option_changes(manifest: Mapping[str, Any], options: Mapping[str, Any]) -> list[str]:
    """``name old -> new`` for each option that ``manifest`` records differently from
    ``options`` (a shard's number is no option: shards make one dataset)."""
    old, new = _options(manifest, options), _options(options, options)
    changes = []
    for key, value in new.items():
        if _canonical(old.get(key)) != _canonical(value):
            shown = _recipe if key == "recipe" else _short
            changes.append(f"{key} {shown(old.get(key))} -> {shown(value)}")
    return changes


#: converter.args that dataset.json also records at its top level (or that are no option).
_MIRRORED = ("channels", "classes", "split", "seed", "negatives", "shard")


def _options(manifest: Mapping[str, Any], keys: Mapping[str, Any]) -> dict[str, Any]:
    """The option fields of a dataset.json (or of what a run would write), flat: the
    top-level keys of ``keys`` (but the converter's and the data's), detect's version and
    the converter's arguments not recorded at the top level."""
    flat = {k: manifest.get(k) for k in keys if k not in ("converter", *_FROM_DATA)}
    if "negatives_rule" in flat:
        flat["negatives_rule"] = _without(flat["negatives_rule"], "no_lung_field")
    # --hu-jitter's rule is an option, its copies data; absent in either: no jitter
    flat["augmentation"] = _without(manifest.get("augmentation"), "copies")
    converter = manifest.get("converter")
    converter = converter if isinstance(converter, Mapping) else {}
    flat["version"] = converter.get("version")
    args = converter.get("args")
    for key, value in (args.items() if isinstance(args, Mapping) else ()):
        if key not in _MIRRORED:
            flat[key] = value
    return flat


def _without(value: Any, key: str) -> Any:
    return {k: v for k, v in value.items() if k != key} if isinstance(value, Mapping) else value


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else _canonical(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _recipe(value: Any) -> str:
    """A recipe as ``windows lung/mediastinum/wide`` or ``2.5d lung -1/0/1``."""
    if not isinstance(value, Mapping):
        return _short(value)
    names = "/".join(str(w.get("name")) for w in value.get("windows") or []
                     if isinstance(w, Mapping))
    kind = value.get("kind")
    if kind == "2.5d":
        offsets = "/".join(str(o) for o in value.get("slice_offsets") or [])
        step = value.get("slice_step_mm")
        return f"2.5d {names} {offsets}" + ("" if step is None else f" x {_short(step)} mm")
    return f"{kind} {names}"
