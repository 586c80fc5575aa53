"""The same as the installed command `ijckd-convert` (ijckd_jax/cli/convert.py says what it does)."""
import sys

from ijckd_jax.cli.convert import main

if __name__ == '__main__':
    sys.exit(main())
