"""Which OSErrors are OUT's fault (one line) and which are not (issue 21, item 10)."""

from __future__ import annotations

import errno
import os

import pytest

from detect.errors import OutputFolderError
from detect.io.write_errors import output_errors, write_problem


def _error(code: int, path: object) -> OSError:
    return OSError(code, os.strerror(code), path)


def test_a_full_or_read_only_disk_is_out_s_fault_wherever_it_strikes(tmp_path):
    out = tmp_path / "out"
    for code, hint in ((errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only"),
                       (errno.EDQUOT, "quota")):
        assert hint in (write_problem(_error(code, out / "images" / "a.png"), out) or "")
        assert hint in (write_problem(_error(code, None), out) or "")


def test_permission_is_out_s_fault_only_inside_out(tmp_path):
    out = tmp_path / "out"
    assert "permission denied" in (write_problem(_error(errno.EACCES, out / "x.json"), out)
                                   or "")
    assert write_problem(_error(errno.EACCES, tmp_path / "scans" / "1.dcm"), out) is None
    assert write_problem(_error(errno.EIO, tmp_path / "scans" / "1.dcm"), out) is None
    assert "elsewhere" in (write_problem(_error(errno.EIO, out / "x.json"), out) or "")


def test_output_errors_turns_only_out_s_faults_into_one_line(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputFolderError, match="No space left on device"), output_errors(out):
        raise _error(errno.ENOSPC, out / "a.png")
    with pytest.raises(PermissionError), output_errors(out):  # an input: as it was
        raise _error(errno.EACCES, tmp_path / "scans" / "1.dcm")
    path = os.fsdecode(os.fsencode(str(out)) + b"/caf\xe9.png")  # not UTF-8: still a line
    with pytest.raises(OutputFolderError, match="caf"), output_errors(out):
        raise _error(errno.ENOSPC, path)
