"""DICOMweb: a PACS or archive as a source of CT series and a place to store SRs.

``config`` (the service root and request rules), ``auth`` (credentials from the
environment or a private file), ``session`` (timeouts, retries and the checks of every
answer), ``server`` (QIDO-RS, WADO-RS and STOW-RS through dicomweb-client), ``fetch``
(a series' instances to files, several at once).

The submodules are imported by name: ``config`` needs nothing beyond the standard
library (the command line imports it), the others import requests and, when a server
is used, dicomweb-client (the ``dicomweb`` extra).
"""

