"""`python -m causvid_perf.cli ...`: the same as the `causvid-perf` command."""

import sys

from causvid_perf.cli.main import main

sys.exit(main())
