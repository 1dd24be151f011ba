"""PlatformIO calls `python scons.py ...`; hand over to SCons from PyPI (pinned in pyproject)."""
import sys

from SCons.Script import main

sys.exit(main())
