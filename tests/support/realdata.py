"""Where the real patients live: ``../shared/realdata`` beside the checkout (read-only).

Tests that use them skip with a visible reason when the folder is absent (a clone without
the shared folder beside it); CI has it, so there they run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REALDATA_ROOT = Path(__file__).resolve().parents[3] / "shared" / "realdata"
PATIENTS = ("A0002", "B0021", "E0003")


def real_patient(short_id: str) -> Path:
    """The folder of one real patient (``A0002``...), or a visible skip when it is absent."""
    folder = REALDATA_ROOT / f"lung-pet-ct-dx-{short_id}"
    if not folder.is_dir():
        pytest.skip(f"real patient {short_id} absent: {folder} (../shared/realdata) not found")
    return folder
