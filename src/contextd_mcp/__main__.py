import sys

from contextd_mcp.entry import main

sys.exit(main())
