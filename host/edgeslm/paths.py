"""Where edgeslm's own files are, and where it builds.

    DATA       firmware/, templates/, boards/, labgrid/, platformio.ini
    project()  the PlatformIO project that builds firmware (and holds build/)

From a checkout (host/edgeslm beside firmware/ and platformio.ini) both are the checkout itself.
Installed from a wheel, the same files travel as package data (edgeslm/_data), and the project is a
working copy of them under $EDGESLM_HOME (default ~/.local/share/edgeslm), made on the first build
and made again when the installed edgeslm changes: PlatformIO writes into its project, and an
installed package must not be written to.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import __version__

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parents[1]


def _is_checkout(root: Path) -> bool:
    return (root / "firmware" / "runtime").is_dir() and (root / "platformio.ini").is_file()


IN_CHECKOUT = _is_checkout(_CHECKOUT)
DATA = _CHECKOUT if IN_CHECKOUT else _PACKAGE / "_data"
FIRMWARE = DATA / "firmware"
TEMPLATES = DATA / "templates"
BOARDS = DATA / "boards"
LABGRID = DATA / "labgrid"

# what a PlatformIO project needs of DATA (platformio.ini names them)
_PROJECT_PARTS = ("platformio.ini", "firmware", "boards")


def project() -> Path:
    """The project directory: the checkout, or the installed package's working copy (its path;
    `ensure_project` fills it)."""
    if IN_CHECKOUT:
        return _CHECKOUT
    return Path(os.environ.get("EDGESLM_HOME", Path.home() / ".local" / "share" / "edgeslm")) / "project"


def ensure_project() -> Path:
    """The project, ready for PlatformIO: in an installed edgeslm, its working copy of the package
    data, (re)made when missing or from another version. Its build/ is left alone."""
    root = project()
    if IN_CHECKOUT:
        return root
    stamp = root / ".edgeslm-version"
    if stamp.is_file() and stamp.read_text() == __version__ and all((root / p).exists() for p in _PROJECT_PARTS):
        return root
    root.mkdir(parents=True, exist_ok=True)
    for part in _PROJECT_PARTS:
        src, dst = DATA / part, root / part
        if dst.is_dir():
            shutil.rmtree(dst)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)
    stamp.write_text(__version__)
    return root
