"""The same as the installed command `ijckd-predict` (ijckd_jax/cli/predict.py says what it does)."""
import sys

from ijckd_jax.cli.predict import main

if __name__ == '__main__':
    sys.exit(main())
