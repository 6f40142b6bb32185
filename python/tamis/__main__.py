"""``python -m tamis`` runs the command line."""

from tamis.cli import main

main()
