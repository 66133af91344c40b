"""``python -m tinycnn ...`` runs the ``tinycnn`` command (tinycnn.cli)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
