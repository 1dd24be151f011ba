"""Packaging: a wheel built from this checkout, installed outside it, finds its firmware sources,
templates and boards as package data and builds and runs firmware in its own working copy
($EDGESLM_HOME), with tokens equal to golden; --version names every format's version."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import shared
from reliability_helpers import assert_none_left, new_tag, tagged_env

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installed_outside_the_checkout_builds_and_runs(tmp_path):
    dist, site, home, work = (tmp_path / d for d in ("dist", "site", "home", "work"))
    work.mkdir()
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(dist), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = dist.glob("edgeslm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for member in ("edgeslm/_data/platformio.ini", "edgeslm/_data/boards/mps2_an386.json",
                   "edgeslm/_data/templates/esl_model.c.j2", "edgeslm/_data/firmware/runtime/serve.c",
                   "edgeslm/_data/firmware/pio/platform/builder/main.py",
                   "edgeslm/_data/firmware/pio/packages/tool-scons/.piopm",
                   "edgeslm/targets/cortex_m_costs.json"):
        assert member in names, member
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    tag = new_tag()
    env = {**tagged_env(tag), "PYTHONPATH": str(site), "EDGESLM_HOME": str(home),
           "EDGESLM_MODELS": str(shared("stories260K.bin").parent)}

    def edgeslm(*args):
        return subprocess.run([sys.executable, "-m", "edgeslm", *args], capture_output=True, text=True, cwd=work,
                              env=env, timeout=600)
    r = edgeslm("--version")
    text = "".join(r.stdout.split())                # argparse wraps it at the terminal's width
    assert r.returncode == 0 and f"installed:{site}" in text, r.stdout + r.stderr
    for words in ("serialprotocol4", "boardschema2", "calibrationformat1", "recordschema1"):
        assert words in text
    r = edgeslm("run", "--emulate", "-n", "4", "--prompt", "")
    assert_none_left(tag)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "all 4 tokens equal the golden model's" in r.stderr
    assert (home / "project" / "build" / "pio" / "mps2_an386" / "firmware.elf").is_file()
    assert not (ROOT / "build" / "mps2_an386").samefile(home / "project" / "build" / "mps2_an386")
    assert os.listdir(work) == []                   # nothing written where the user stands
