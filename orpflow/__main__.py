import sys

from orpflow.cli import main

sys.exit(main())
