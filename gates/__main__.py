"""`python -m gates`: the command line (see gates/cli.py)."""

from .cli import main

raise SystemExit(main())
