"""The same as the installed command `ijckd-teachers` (ijckd_jax/cli/teachers.py says what it does)."""
import sys

from ijckd_jax.cli.teachers import main

if __name__ == '__main__':
    sys.exit(main())
