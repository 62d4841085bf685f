"""``python -m tracereplay`` runs the command line."""

from tracereplay.cli.main import main

main()
