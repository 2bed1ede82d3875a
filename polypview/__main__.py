import sys

from polypview.cli import main

sys.exit(main())
