"""`python -m tigon ...`: the tigon command-line tool shipped beside the op library."""
import os
import subprocess
import sys

from ._library import library_dir


def main() -> int:
    tool = library_dir() / "tigon"
    if not tool.exists():
        print(f"tigon: the command-line tool is missing from {tool.parent}", file=sys.stderr)
        return 2
    return subprocess.call([str(tool), *sys.argv[1:]], env=os.environ)


if __name__ == "__main__":
    sys.exit(main())
