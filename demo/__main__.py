"""`python -m demo [--small] [--output_dir=demo_out]`: see demo/run.py."""
import sys

from demo.run import main

sys.exit(main())
