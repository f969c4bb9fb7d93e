"""``python -m detect.cli``: the same as the ``detect`` command."""

from detect.cli.main import main

main()
