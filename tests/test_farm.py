"""The board farm on labgrid (issue 16): one environment per emulated board in labgrid/, generated
from the board files and kept equal to what `edgeslm labgrid` writes; labgrid reads them. The bench
that runs through labgrid's QEMUDriver is in tests/test_emulator.py (TestMps2An386)."""

from pathlib import Path

import pytest

from edgeslm.farm import QEMU_MACHINES, committed_env_path, default_elf_path, labgrid_env
from edgeslm.lower.boards import list_boards, load_board

labgrid = pytest.importorskip("labgrid", reason="labgrid is not installed (pip install -e '.[dev]')")

QEMU_BOARDS = [b for b in list_boards() if (load_board(b).emulator or {}).get("machine") in QEMU_MACHINES]


def test_every_board_with_a_known_qemu_machine_has_an_environment():
    assert {"mps2_an386", "mps3_an547", "microbit"} <= set(QEMU_BOARDS)
    committed = {p.stem for p in committed_env_path("x").parent.glob("*.yaml")}
    assert set(QEMU_BOARDS) <= committed


@pytest.mark.parametrize("board_id", QEMU_BOARDS)
def test_committed_environment_is_what_edgeslm_writes_and_labgrid_reads_it(board_id):
    path = committed_env_path(board_id)
    board = load_board(board_id)
    assert path.read_text() == labgrid_env(board, default_elf_path(board_id, path.parent)), \
        f"regenerate: edgeslm labgrid --board {board_id}"
    env = labgrid.Environment(str(path))
    target = env.get_target("main")
    from labgrid.driver import QEMUDriver
    drv = target.get_driver(QEMUDriver, activate=False)     # labgrid validates the attributes
    assert drv.machine == board.emulator["machine"] and drv.kernel == "firmware"
    assert f"shift={board.emulator['icount_shift']}" in drv.extra_args
    assert Path(env.config.get_image_path("firmware")).resolve() == \
        (Path(__file__).resolve().parents[1] / "build" / "pio" / board_id / "firmware.elf")
    env.cleanup()
