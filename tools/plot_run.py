"""The same as the installed command `ijckd-plot` (ijckd_jax/cli/plot.py says what it does)."""
import sys

from ijckd_jax.cli.plot import main

if __name__ == '__main__':
    sys.exit(main())
