"""``detect download``: Lung-PET-CT-Dx (or another IDC collection) from Imaging Data
Commons' public buckets.

``config`` (options), ``names`` (index values checked before they become paths),
``index`` (selection from the offline IDC index), ``manifest`` (OUT/idc-manifest.json),
``check`` (files on disk against the manifest), ``fetch`` (the s5cmd runner), ``run``
(the whole download).
"""

from detect.download.check import SeriesCount, count_all
from detect.download.config import DownloadConfig, parse_list
from detect.download.fetch import FetchProgress, FetchResult, find_s5cmd
from detect.download.index import RefusedSeries, Selection, SeriesEntry, select_series
from detect.download.manifest import MANIFEST_NAME, read_manifest
from detect.download.run import DownloadResult, download

__all__ = [
    "MANIFEST_NAME",
    "DownloadConfig",
    "DownloadResult",
    "FetchProgress",
    "FetchResult",
    "RefusedSeries",
    "Selection",
    "SeriesCount",
    "SeriesEntry",
    "count_all",
    "download",
    "find_s5cmd",
    "parse_list",
    "read_manifest",
    "select_series",
]
