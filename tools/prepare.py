"""The same as the installed command `ijckd-prepare` (ijckd_jax/cli/prepare.py says what it does)."""
import sys

from ijckd_jax.cli.prepare import main

if __name__ == '__main__':
    sys.exit(main())
