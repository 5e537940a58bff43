import sys

from contextd_mcp.cli import main

sys.exit(main())
