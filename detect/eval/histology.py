"""Histology: which letter (A, B, E, G) the model says a found tumour is, and how often it
is right. Two sources are scored separately, so a 4-class detector can be compared with
a tumour detector plus a histology head:

- ``detector``: the record's ``label``, when it is a histology letter. No probabilities;
  a patient's vector is the score-weighted vote share of its detections' letters.
- ``head``: the argmax of the record's ``histology`` probabilities, when records carry
  them. A patient's vector is the mean of its detections' probability vectors.

Levels (``conf`` = operating score threshold, ``iou`` = the FROC hit IoU, both stated in
the result):

- slice: every gt box with a letter vs the letter of the best-scoring detection with
  score >= conf and IoU >= iou on its slice; boxes with no such detection are not scored
  (``covered`` says how many were).
- patient: each patient's letter (dataset.json) vs the argmax of the vector aggregated
  over all its detections with score >= conf; patients with none are not scored.

Metrics: accuracy; balanced accuracy = mean recall over the letters present in the truth;
macro-F1 = mean F1 over letters present in the truth or the predictions (both as
scikit-learn defines them); confusion matrix (rows truth A, B, E, G; columns predicted);
one-vs-rest ROC AUC per letter from the vectors (null with a reason when there are no
vectors or only one of the two groups is present).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detect.boxes import box_iou
from detect.eval.truth import Detection, SplitTruth
from detect.histology import LETTERS

SOURCES = ("detector", "head")


def det_letter(det: Detection, source: str) -> str | None:
    """The letter a detection says, for ``source`` (None: it says none)."""
    if source == "detector":
        label = det.label.strip().upper()
        return label if label in LETTERS else None
    vector = det_vector(det)
    return None if vector is None else LETTERS[int(np.argmax(vector))]


def det_vector(det: Detection) -> np.ndarray | None:
    """The detection's histology probabilities over A, B, E, G (normalised), or None."""
    if not det.histology:
        return None
    vector = np.array([float(det.histology.get(letter, 0.0)) for letter in LETTERS])
    total = vector.sum()
    return vector / total if total > 0 else np.full(len(LETTERS), 1.0 / len(LETTERS))


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties count one half). Needs both groups present."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def _auc(truth: Sequence[str], vectors: np.ndarray | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    labels = np.array(truth)
    for k, letter in enumerate(LETTERS):
        positive = labels == letter
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        if vectors is None:
            out[letter] = {"auc": None, "reason": "no probabilities (letters only)"}
        elif n_pos == 0 or n_neg == 0:
            out[letter] = {"auc": None, "reason": f"needs both groups (n_pos={n_pos}, "
                                                  f"n_neg={n_neg})"}
        else:
            out[letter] = {"auc": roc_auc(positive, vectors[:, k]), "reason": None}
    return out


def confusion(truth: Sequence[str], predicted: Sequence[str],
              weights: Sequence[float] | None = None) -> np.ndarray:
    """4x4 confusion matrix, rows truth A, B, E, G, columns predicted."""
    matrix = np.zeros((len(LETTERS), len(LETTERS)))
    w = np.ones(len(truth)) if weights is None else weights
    for t, p, weight in zip(truth, predicted, w):
        matrix[LETTERS.index(t), LETTERS.index(p)] += weight
    return matrix


def balanced_accuracy(matrix: np.ndarray) -> float:
    """Mean recall over letters present in the truth (NaN when none is)."""
    support = matrix.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float((np.diag(matrix)[present] / support[present]).mean())


def macro_f1(matrix: np.ndarray) -> float:
    """Mean F1 over letters present in the truth or the predictions."""
    tp = np.diag(matrix)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return float("nan")
    f1 = 2 * tp / np.where(present, support + predicted, 1.0)
    return float(f1[present].mean())


def classification_metrics(
    truth: Sequence[str], predicted: Sequence[str], vectors: np.ndarray | None
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, confusion, per-letter counts and AUC."""
    matrix = confusion(truth, predicted)
    n = len(truth)
    per_letter = {}
    for k, letter in enumerate(LETTERS):
        support, hits = int(matrix[k].sum()), int(matrix[k, k])
        per_letter[letter] = {"n": support, "correct": hits,
                              "recall": hits / support if support else None}
    return {
        "n": n,
        "accuracy": float(np.trace(matrix) / n) if n else None,
        "balanced_accuracy": _finite(balanced_accuracy(matrix)),
        "macro_f1": _finite(macro_f1(matrix)),
        "confusion": {"rows_truth": list(LETTERS), "cols_predicted": list(LETTERS),
                      "matrix": matrix.astype(int).tolist()},
        "per_letter": per_letter,
        "auc": _auc(truth, vectors),
    }


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def _slice_pairs(truth: SplitTruth, by_image: Mapping[int, Sequence[Detection]], source: str,
                 conf: float, iou: float) -> tuple[list[str], list[str], list[Any], int]:
    true, pred, vectors, total = [], [], [], 0
    for image_id, image in truth.images.items():
        dets = [d for d in by_image.get(image_id, ())
                if d.score >= conf and det_letter(d, source) is not None]
        boxes = np.array([d.xyxy for d in dets], dtype=float).reshape(-1, 4)
        for box in image.boxes:
            if box.letter is None:
                continue
            total += 1
            ious = box_iou(np.array([box.xyxy], dtype=float), boxes)[0]
            candidates = [j for j in range(len(dets)) if ious[j] >= iou]
            if not candidates:
                continue
            best = max(candidates, key=lambda j: (dets[j].score, -j))
            true.append(box.letter)
            pred.append(det_letter(dets[best], source) or "")
            vectors.append(det_vector(dets[best]) if source == "head" else None)
    return true, pred, vectors, total


def patient_vectors(truth: SplitTruth, by_image: Mapping[int, Sequence[Detection]],
                    source: str, conf: float) -> dict[str, np.ndarray]:
    """Aggregated A/B/E/G vector of each patient with a detection >= conf (module doc)."""
    sums: dict[str, np.ndarray] = {}
    weights: dict[str, float] = {}
    for image_id, image in truth.images.items():
        for det in by_image.get(image_id, ()):
            letter = det_letter(det, source)
            if det.score < conf or letter is None:
                continue
            if source == "head":
                vector, weight = det_vector(det), 1.0
            else:
                vector = np.eye(len(LETTERS))[LETTERS.index(letter)] * det.score
                weight = det.score
            pid = image.patient_id
            sums[pid] = sums.get(pid, np.zeros(len(LETTERS))) + vector
            weights[pid] = weights.get(pid, 0.0) + weight
    return {pid: sums[pid] / weights[pid] for pid in sums if weights[pid] > 0}


def histology_source(truth: SplitTruth, by_image: Mapping[int, Sequence[Detection]],
                     source: str, conf: float, iou: float) -> dict[str, Any]:
    """Slice- and patient-level histology metrics of one source (module docstring)."""
    dets = [d for ds in by_image.values() for d in ds]
    if not any(det_letter(d, source) for d in dets):
        reason = ("no prediction carries histology probabilities" if source == "head"
                  else "no prediction label is a histology letter (A, B, E, G)")
        return {"available": False, "reason": reason}
    true, pred, vectors, total = _slice_pairs(truth, by_image, source, conf, iou)
    slice_level = classification_metrics(
        true, pred, np.array(vectors) if source == "head" and vectors else None)
    slice_level["covered"] = {"scored": len(true), "total": total}
    aggregated = patient_vectors(truth, by_image, source, conf)
    scored = [p for p in truth.patients if p in aggregated and truth.patient_letters[p]]
    letters = [truth.patient_letters[p] or "" for p in scored]
    matrix = np.array([aggregated[p] for p in scored]).reshape(-1, len(LETTERS))
    guesses = [LETTERS[int(np.argmax(v))] for v in matrix]
    patient_level = classification_metrics(letters, guesses, matrix if scored else None)
    patient_level["covered"] = {
        "scored": len(scored),
        "total": sum(1 for p in truth.patients if truth.patient_letters[p]),
    }
    patient_level["predictions"] = {p: g for p, g in zip(scored, guesses)}
    return {"available": True, "conf": conf, "iou": iou,
            "slice": slice_level, "patient": patient_level}
