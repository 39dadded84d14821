"""`python -m dcgan` is the `dcgan` command."""
import sys

from .cli import main

sys.exit(main())
