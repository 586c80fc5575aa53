"""The same as the installed command `ijckd-report` (ijckd_jax/cli/report.py says what it does)."""
import sys

from ijckd_jax.cli.report import main

if __name__ == '__main__':
    sys.exit(main())
