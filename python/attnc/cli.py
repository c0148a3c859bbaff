"""The `attnc` command of an installed package: runs the attnc tool shipped inside it."""
import os
import sys
from pathlib import Path


def main():
    tool = Path(__file__).resolve().parent / "bin" / "attnc"
    if not tool.is_file():
        sys.exit(f"attnc: no compiler at {tool} (this attnc package was not built with CMake; "
                 "use build/bin/attnc from a checkout)")
    os.execv(str(tool), [str(tool)] + sys.argv[1:])


if __name__ == "__main__":
    main()
