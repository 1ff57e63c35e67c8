import sys

from selectivity.cli import main

sys.exit(main())
