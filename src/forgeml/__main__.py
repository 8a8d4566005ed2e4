"""``python -m forgeml`` runs the command line."""

from forgeml.cli import main

main()
