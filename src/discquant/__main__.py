"""``python -m discquant``: the same command line as ``discquant`` (for a checkout on
``PYTHONPATH`` or a virtual environment whose scripts folder is not on ``PATH``)."""

from discquant.cli import main

main()
