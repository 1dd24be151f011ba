"""Known pretrained models: found beside the project in ../shared/models, or downloaded and checked.

Downloads go to ~/.cache/edgeslm (or $EDGESLM_CACHE) and are verified against a pinned sha256;
a file that does not match is deleted, never used.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import EdgeslmError

_HF = "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/"


@dataclass(frozen=True)
class KnownFile:
    relpath: str      # path under a models directory
    sha256: str
    url: str


KNOWN = {
    "stories260K.bin": KnownFile("stories260K.bin",
        "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696", _HF + "stories260K.bin"),
    "tok512.bin": KnownFile("tok512.bin",
        "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312", _HF + "tok512.bin"),
}
DEFAULT_MODEL, DEFAULT_TOKENIZER = "stories260K.bin", "tok512.bin"


def search_dirs() -> list[Path]:
    """Where models are looked for: $EDGESLM_MODELS, ../shared/models beside the project, the cache."""
    dirs = []
    if os.environ.get("EDGESLM_MODELS"):
        dirs.append(Path(os.environ["EDGESLM_MODELS"]))
    if paths.IN_CHECKOUT:
        dirs.append(paths.DATA.parent / "shared" / "models")
    dirs.append(Path.cwd().parent / "shared" / "models")
    dirs.append(cache_dir())
    return dirs


def cache_dir() -> Path:
    return Path(os.environ.get("EDGESLM_CACHE", Path.home() / ".cache" / "edgeslm"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate(name: str, download: bool = True) -> Path:
    """The path of a known model file: found locally, else downloaded (and checksummed)."""
    known = KNOWN[name]
    for d in search_dirs():
        p = d / known.relpath
        if p.is_file():
            return p
    if not download:
        raise EdgeslmError(f"{name} not found in {', '.join(map(str, search_dirs()))}")
    dest = cache_dir() / known.relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    print(f"downloading {known.url} -> {dest}", file=sys.stderr)
    try:
        urllib.request.urlretrieve(known.url, tmp)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise EdgeslmError(f"cannot download {name}: {e}",
                           f"put {name} in one of {', '.join(map(str, search_dirs()[:-1]))} "
                           "or set EDGESLM_MODELS to its folder") from None
    got = _sha256(tmp)
    if got != known.sha256:
        tmp.unlink(missing_ok=True)
        raise EdgeslmError(f"downloaded {name} has sha256 {got}, expected {known.sha256}",
                           "the download is corrupt or the file changed upstream; try again")
    tmp.replace(dest)
    return dest
