"""The parity check of ``detect export``: the exported model must find what PyTorch finds.

Both models run through detect's own :class:`~detect.models.base.Detector` adapters
(the ones ``detect predict`` uses), on the same images: phantom chest slices rendered at
the model's image size with the model's channel recipe (a tumour on every slice, so a
trained model has something to find), plus one of them cropped to 3:4, which exercises
the letterbox (YOLO) and the dynamic input size (Faster R-CNN).

Two comparisons:

- Detections, down to ``PARITY_CONF = 0.001`` (the threshold ``detect eval`` scores at, so
  every box that counts toward mAP is checked). Per image, each PyTorch detection is paired
  with the exported detection of the same class whose corners differ least; a pair agrees
  when every corner is within ``box_tol_px`` and the scores within ``score_tol``.
- YOLO with NMS only: the raw head output (B, 4 + classes, anchors), anchor by anchor,
  before NMS (an NMS-free head's output is already its top-k: compared as detections).
  It tests every anchor even when a weakly trained model has few detections.

Tolerances (defaults) and why:

- ``box_tol_px = 1.0`` px (input image px for detections, letterboxed input px for the
  head). ONNX Runtime's Resize and RoiAlign kernels are not bit-identical to torchvision's:
  on the phantom check Faster R-CNN corners drift by ~0.05 px at 64 px (YOLO: < 1e-4 px).
  1 px is the resolution of what detect writes (VOC XML corners are integers), so a
  smaller drift cannot change an output, while a wrong letterbox, resize or box decoding
  is off by several px.
- ``score_tol = 1e-3``. Float32 re-association gives ~1e-7 differences in scores; 1e-3 is
  far above that noise and far below any threshold a user sets (the CSVs report 4
  decimals); a wrong normalisation or activation is off by much more.
- Borderline detections: one whose score lies within ``score_tol`` of the threshold (or
  of the lowest score of a list that hit the model's cap of detections per image) may be
  in one list only: there the threshold, not the export, decides.
- NMS ties: two overlapping boxes of one class (IoU above the model's NMS IoU) whose
  scores are within ``score_tol`` (saturated scores of 1.0 are exactly equal): which one
  NMS keeps is decided by float noise, so an unmatched detection with such a partner in
  the other list is counted as a tie, not a failure. Likewise a box found by both with
  another class, when its class scores for the two classes are within ``score_tol``
  (YOLO, which keeps class scores). The YOLO head comparison, before NMS and argmax,
  still holds every anchor to the tolerances.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from detect.boxes import box_iou
from detect.histology import LETTERS
from detect.models.base import Detections, Detector
from detect.recipe import ChannelRecipe

log = logging.getLogger(__name__)

BOX_TOL_PX = 1.0
SCORE_TOL = 1e-3
#: Detections down to this score are compared: detect eval's threshold (module doc).
PARITY_CONF = 0.001
PARITY_SLICES = 3


@dataclass(frozen=True)
class ParityResult:
    """What the parity check compared and found; ``failures`` empty = passed."""

    images: int
    reference: int
    exported: int
    matched: int
    ties: int
    max_box_diff_px: float
    max_score_diff: float
    conf: float
    box_tol_px: float
    score_tol: float
    failures: tuple[str, ...] = ()
    head_values: int = 0
    head_max_box_diff_px: float | None = None
    head_max_score_diff: float | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["failures"] = list(self.failures)
        data["passed"] = self.passed
        return data

    def summary(self) -> str:
        """One line: counts, largest differences, tolerances."""
        head = ""
        if self.head_values:
            head = (
                f"; raw head outputs ({self.head_values} values): max box diff "
                f"{self.head_max_box_diff_px:.4f} px, max score diff "
                f"{self.head_max_score_diff:.2e}"
            )
        ties = f", {self.ties} NMS ties" if self.ties else ""
        return (
            f"{self.matched}/{self.reference} PyTorch detections matched ({self.exported} "
            f"exported{ties}) on {self.images} images at score >= {self.conf}: max box diff "
            f"{self.max_box_diff_px:.4f} px (tol {self.box_tol_px}), max score diff "
            f"{self.max_score_diff:.2e} (tol {self.score_tol}){head}"
        )


def _phantom_slice_hu(
    size: int, seed: int, letter: str, offsets: Sequence[int]
) -> dict[int, np.ndarray]:
    from detect.synth.phantom.anatomy import Grid, make_anatomy, make_vessel_tree
    from detect.synth.phantom.lesions import make_lesions
    from detect.synth.phantom.render import ChestPhantom

    rng = np.random.default_rng(seed)
    anatomy = make_anatomy(rng)
    vessels = make_vessel_tree(rng, anatomy)
    lesions = make_lesions(rng, letter, anatomy)
    grid = Grid(size, 2 * anatomy.body_axes_mm[0] / 0.9, (0.0, 5.0))
    phantom = ChestPhantom(anatomy, grid, vessels)
    z, step = lesions[0].centre_mm[2], 3.0  # mm; 2.5d neighbours 3 mm apart
    noise = np.random.default_rng(seed + 1)
    return {k: phantom.render(z + k * step, lesions, noise, step).hu for k in offsets}


def parity_images(recipe: ChannelRecipe, size: int, *, seed: int = 0) -> list[np.ndarray]:
    """``PARITY_SLICES`` phantom slices (size × size px, H × W × 3 uint8 in the recipe's
    channel order), then the first one cropped to 3:4 (rows × columns)."""
    images = []
    for i in range(PARITY_SLICES):
        hu = _phantom_slice_hu(size, seed + 97 * i, LETTERS[i % 4], recipe.neighbours)
        images.append(recipe.render(hu))
    rows = max(32, size * 3 // 4)
    top = (size - rows) // 2
    images.append(np.ascontiguousarray(images[0][top : top + rows]))
    return images


def _floor(det: Detections, conf: float, cap: int) -> float:
    if len(det) >= cap:  # the list was cut at the model's cap: its last score is a threshold
        return max(conf, float(det.scores.min()))
    return conf


def _corner_diff(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    return np.abs(boxes - box[None, :]).max(axis=1) if len(boxes) else np.zeros(0)



@dataclass(frozen=True)
class _Rules:
    conf: float
    cap: int
    box_tol: float
    score_tol: float
    nms_iou: float | None


@dataclass
class _Tally:
    reference: int = 0
    exported: int = 0
    matched: int = 0
    ties: int = 0
    box: float = 0.0
    score: float = 0.0


def _nms_tie(det: Detections, i: int, other: Detections, rules: _Rules) -> bool:
    """``other`` holds a box of the same class overlapping box ``i`` beyond the NMS IoU
    with a score within ``score_tol``: NMS kept a different member of a tied pair."""
    if rules.nms_iou is None or not len(other):
        return False
    tied = (other.classes == det.classes[i]) & (
        np.abs(other.scores - det.scores[i]) <= rules.score_tol)
    return bool(np.any(tied & (box_iou(det.xyxy[i : i + 1], other.xyxy)[0] > rules.nms_iou)))


def _nearest(ref: Detections, i: int, exp: Detections, rows: np.ndarray
             ) -> tuple[int, float, float]:
    """The row of ``exp`` among ``rows`` nearest to reference box ``i``: (row, corner
    difference px, score difference); (-1, inf, inf) when there is none."""
    if not len(rows):
        return -1, math.inf, math.inf
    diffs = _corner_diff(ref.xyxy[i], exp.xyxy[rows])
    k = int(np.argmin(diffs))
    j = int(rows[k])
    return j, float(diffs[k]), abs(float(exp.scores[j]) - float(ref.scores[i]))


def _class_tied(ref: Detections, i: int, exp: Detections, j: int, tol: float) -> bool:
    """Box ``i`` scores the class the exported model chose as high as its own class (a
    near-equal class-score pair; only detectors with class scores can show it)."""
    scores = ref.class_scores
    return scores is not None and abs(
        float(scores[i, int(exp.classes[j])]) - float(ref.scores[i])) <= tol


def _match(ref: Detections, exp: Detections, floor: float, rules: _Rules, tally: _Tally
           ) -> tuple[np.ndarray, list[tuple[int, str]], list[tuple[int, int]]]:
    """Greedy matching by score; returns the used exported rows, the unmatched reference
    rows with what their nearest candidate was, and the matched (reference, exported)
    row pairs."""
    used = np.zeros(len(exp), bool)
    missing = []
    pairs = []
    for i in (int(k) for k in np.argsort(-ref.scores, kind="stable")):
        if ref.scores[i] < floor:
            continue
        j, diff, score_diff = _nearest(ref, i, exp, np.flatnonzero(
            ~used & (exp.classes == ref.classes[i])))
        if diff <= rules.box_tol and score_diff <= rules.score_tol:
            used[j] = True
            pairs.append((i, j))
            tally.matched += 1
            tally.box, tally.score = max(tally.box, diff), max(tally.score, score_diff)
            continue
        k, other_diff, other_score = _nearest(ref, i, exp, np.flatnonzero(
            ~used & (exp.classes != ref.classes[i])))
        if (other_diff <= rules.box_tol and other_score <= rules.score_tol
                and _class_tied(ref, i, exp, k, rules.score_tol)):
            used[k] = True
            tally.ties += 1
            continue
        nearest = f"{diff:.3f} px" if j >= 0 else "none of its class"
        missing.append((i, f"nearest {nearest}, score diff {score_diff:.2e}"))
    return used, missing, pairs


def _compare_image(index: str, ref: Detections, exp: Detections, rules: _Rules,
                   tally: _Tally) -> list[str]:
    floor = max(_floor(ref, rules.conf, rules.cap), _floor(exp, rules.conf, rules.cap))
    required = floor + rules.score_tol
    tally.reference += int((ref.scores >= floor).sum())
    tally.exported += int((exp.scores >= floor).sum())
    used, missing, _ = _match(ref, exp, floor, rules, tally)
    failures = []
    for i, nearest in missing:
        if ref.scores[i] < required:
            continue  # borderline: the threshold decides
        if _nms_tie(ref, i, exp, rules):
            tally.ties += 1
            continue
        failures.append(
            f"image {index}: PyTorch box {np.round(ref.xyxy[i], 2).tolist()} class "
            f"{int(ref.classes[i])} score {float(ref.scores[i]):.4f} has no exported match "
            f"({nearest})"
        )
    for j in np.flatnonzero(~used & (exp.scores >= required)):
        if _nms_tie(exp, int(j), ref, rules):
            tally.ties += 1
            continue
        failures.append(f"image {index}: exported box {np.round(exp.xyxy[j], 2).tolist()} "
                        f"score {float(exp.scores[j]):.4f} has no PyTorch match")
    return failures


def compare_detections(
    reference: Sequence[Detections],
    exported: Sequence[Detections],
    *,
    conf: float = PARITY_CONF,
    cap: int = 300,
    nms_iou: float | None = None,
    box_tol_px: float = BOX_TOL_PX,
    score_tol: float = SCORE_TOL,
    names: Sequence[str] | None = None,
) -> ParityResult:
    """Match exported detections to the reference ones, image by image (module doc).

    ``cap`` is the model's maximum number of detections per image; ``nms_iou`` its NMS
    IoU (None: no NMS ties are excused); ``names`` describe the images in failures.
    """
    if len(reference) != len(exported):
        raise ValueError(f"{len(reference)} reference images but {len(exported)} exported")
    rules = _Rules(conf, cap, box_tol_px, score_tol, nms_iou)
    tally, failures = _Tally(), []
    for index, (ref, exp) in enumerate(zip(reference, exported)):
        name = f"{index} ({names[index]})" if names else str(index)
        failures += _compare_image(name, ref, exp, rules, tally)
    return ParityResult(
        images=len(reference), reference=tally.reference, exported=tally.exported,
        matched=tally.matched, ties=tally.ties, max_box_diff_px=tally.box,
        max_score_diff=tally.score, conf=conf, box_tol_px=box_tol_px, score_tol=score_tol,
        failures=tuple(failures),
    )


def matched_pairs(
    reference: Detections,
    exported: Detections,
    *,
    conf: float = PARITY_CONF,
    box_tol_px: float = BOX_TOL_PX,
    score_tol: float = SCORE_TOL,
) -> list[tuple[int, int]]:
    """The (reference row, exported row) pairs of one image that the parity rules match:
    same class, corners within ``box_tol_px``, scores within ``score_tol``. Pairs by box,
    never by list position, so equal scores in another order pair the same way."""
    rules = _Rules(conf, len(reference) + len(exported) + 1, box_tol_px, score_tol, None)
    return _match(reference, exported, conf, rules, _Tally())[2]


def compare_heads(
    reference: np.ndarray, exported: np.ndarray, *, box_tol_px: float = BOX_TOL_PX,
    score_tol: float = SCORE_TOL,
) -> tuple[float, float, list[str]]:
    """Compare two YOLO head outputs (B, 4 + nc, anchors) anchor by anchor: the largest box
    difference (px of the letterboxed input), the largest score difference, failures."""
    if reference.shape != exported.shape:
        return math.inf, math.inf, [
            f"raw head output shapes differ: PyTorch {reference.shape}, exported {exported.shape}"
        ]
    box = float(np.abs(reference[:, :4] - exported[:, :4]).max(initial=0.0))
    score = float(np.abs(reference[:, 4:] - exported[:, 4:]).max(initial=0.0))
    failures = []
    if not box <= box_tol_px:
        failures.append(f"raw head boxes differ by up to {box:.4f} px (tol {box_tol_px})")
    if not score <= score_tol:
        failures.append(f"raw head scores differ by up to {score:.2e} (tol {score_tol})")
    return box, score, failures


def _heads(reference: Detector, exported: Detector, images: list[np.ndarray]
           ) -> tuple[np.ndarray, np.ndarray] | None:
    ref_head, exp_head = getattr(reference, "head", None), getattr(exported, "head", None)
    if ref_head is None or exp_head is None:
        return None
    return np.asarray(ref_head(images)[0]), np.asarray(exp_head(images)[0])


def check_parity(
    reference: Detector,
    exported: Detector,
    images: Sequence[np.ndarray],
    *,
    cap: int,
    nms_iou: float | None,
    conf: float = PARITY_CONF,
    compare_head: bool = False,
) -> ParityResult:
    """Run both detectors on ``images`` and compare their detections
    (:func:`compare_detections`) and, with ``compare_head`` (a family whose head output is
    per anchor, before NMS: YOLO), their raw head outputs (:func:`compare_heads`), which a
    weakly trained model's few detections would not test."""
    batch = list(images)
    result = compare_detections(
        reference.predict(batch, conf), exported.predict(batch, conf), conf=conf, cap=cap,
        nms_iou=nms_iou, names=[f"{im.shape[0]} x {im.shape[1]} px" for im in batch],
    )
    heads = _heads(reference, exported, batch) if compare_head else None
    if heads is not None:
        box, score, failures = compare_heads(*heads)
        result = replace(
            result, failures=(*result.failures, *failures), head_values=int(heads[0].size),
            head_max_box_diff_px=box, head_max_score_diff=score,
        )
    log.info("parity: %s", result.summary())
    return result
