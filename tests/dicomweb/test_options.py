"""DICOMweb options: the service root, credentials (environment, a private file, never the
command line), UIDs and patient IDs, each bad one a ConfigError that shows no secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from detect.dicomweb.auth import load_credentials
from detect.dicomweb.config import ServerConfig, check_uid, redacted
from detect.errors import ConfigError

SECRET = "s3cr3t-Value"


def test_a_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig(f"https://alice:{SECRET}@pacs.example.org/dicom-web")
    assert SECRET not in str(caught.value) and "alice" not in str(caught.value)
    assert "https://pacs.example.org/dicom-web" in str(caught.value)
    assert redacted(f"http://bob:{SECRET}@h:8042/x") == "http://h:8042/x"


@pytest.mark.parametrize("url", ["ftp://h/dicom-web", "https:///dicom-web", "http://h/x?y=1",
                                 "http://h:port/x", "http://h/ x", "/local/folder"])
def test_a_url_that_is_not_a_service_root_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="service root"):
        ServerConfig(url)


def test_the_service_root_loses_its_trailing_slash() -> None:
    assert ServerConfig("http://127.0.0.1:8042/dicom-web/").url == "http://127.0.0.1:8042/dicom-web"


@pytest.mark.parametrize("uid", ["../etc", "1.2.abc", "", "1." + "2" * 70, "1.2/3"])
def test_uids_are_checked_before_they_reach_a_url(uid: str) -> None:
    with pytest.raises(ConfigError, match="DICOM UID"):
        check_uid("--study", uid)


def test_patient_ids_with_qido_wildcards_are_refused() -> None:
    from detect.predict.dicomweb import DicomwebSelection

    server = ServerConfig("http://127.0.0.1:8042/dicom-web")
    for bad in ("Lung_Dx-*", "A?", "", "x\\y"):
        with pytest.raises(ConfigError, match="--patient"):
            DicomwebSelection(server, patients=(bad,))
    with pytest.raises(ConfigError, match="--study, --series or --patient"):
        DicomwebSelection(server)


def test_credentials_from_the_environment() -> None:
    basic = load_credentials(None, {"DETECT_DICOMWEB_USER": "alice",
                                    "DETECT_DICOMWEB_PASSWORD": SECRET})
    assert (basic.kind, basic.user, basic.source) == ("basic", "alice", "the environment")
    assert SECRET not in repr(basic)
    bearer = load_credentials(None, {"DETECT_DICOMWEB_TOKEN": SECRET})
    assert bearer.kind == "bearer" and SECRET not in repr(bearer) + repr(bearer.auth())
    assert load_credentials(None, {}).kind == "none"
    for values in ({"DETECT_DICOMWEB_USER": "alice"},
                   {"DETECT_DICOMWEB_TOKEN": SECRET, "DETECT_DICOMWEB_USER": "alice",
                    "DETECT_DICOMWEB_PASSWORD": SECRET}):
        with pytest.raises(ConfigError) as caught:
            load_credentials(None, values)
        assert SECRET not in str(caught.value)


def test_an_auth_file_must_be_private_and_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "auth.env"
    path.write_text(f"# detect\nexport DETECT_DICOMWEB_TOKEN='{SECRET}'\n")
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_credentials(path)
    os.chmod(path, 0o600)
    token = load_credentials(path)
    assert (token.kind, token.secret) == ("bearer", SECRET)
    assert token.source == f"--auth-file {path}"
    path.write_text(f"password: {SECRET}\n")
    with pytest.raises(ConfigError) as caught:
        load_credentials(path)
    assert "line 1" in str(caught.value) and SECRET not in str(caught.value)
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_credentials(tmp_path)
    with pytest.raises(ConfigError, match="No such file"):
        load_credentials(tmp_path / "absent")
