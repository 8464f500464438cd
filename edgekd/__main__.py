"""`python -m edgekd` is the `edgekd` command."""
import sys

from edgekd.cli import main

sys.exit(main())
