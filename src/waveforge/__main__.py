import sys

from waveforge.cli import main

sys.exit(main())
