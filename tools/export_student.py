"""The same as the installed command `ijckd-export` (ijckd_jax/cli/export.py says what it does)."""
import sys

from ijckd_jax.cli.export import main

if __name__ == '__main__':
    sys.exit(main())
