"""One quick request to the download endpoint before anything is written or fetched.

Without it a machine with no network (or a mistyped ``--endpoint``) waited through
s5cmd's retries (79 to 109 s) and then printed a line of series UIDs ending in a DNS or
connection error. Any HTTP answer, even 403 or 404, means the endpoint is there; no
answer within :data:`PROBE_TIMEOUT_S` seconds, a refused connection or a name that does
not resolve is one line, ``cannot reach ENDPOINT: <reason>``. Proxies from the
environment are honoured, as s5cmd honours them.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

from detect.errors import DownloadError

PROBE_TIMEOUT_S = 5.0


def check_endpoint(endpoint: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """One HEAD request to ``endpoint``.

    Raises:
        DownloadError: ``cannot reach ENDPOINT: <reason>``.
    """
    request = urllib.request.Request(endpoint, method="HEAD")
    opener = urllib.request.build_opener()  # today's proxy settings, not the first call's
    try:
        with opener.open(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # an answer: the endpoint is there (buckets answer 403/404 to a bare HEAD)
    except urllib.error.URLError as exc:
        reason = exc.reason
    except TimeoutError:
        reason = f"no answer within {timeout_s:g} s"
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = exc
    if isinstance(reason, TimeoutError):
        reason = f"no answer within {timeout_s:g} s"
    elif isinstance(reason, OSError) and reason.strerror:
        reason = reason.strerror
    raise DownloadError(
        f"cannot reach {endpoint}: {reason}; check the network (or proxy settings), or pass "
        f"--endpoint with a reachable mirror (nothing was written)"
    )
