"""The console script. `contextd-mcp stdio` is the IDE's hot path: it reaches the bridge
without importing argparse or anything else the other commands need."""

from __future__ import annotations

import sys


def main() -> int:
    if sys.argv[1:] == ["stdio"]:
        from contextd_mcp.transports.bridge import data_paths, run_bridge

        return run_bridge(data_paths(None))
    from contextd_mcp.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
