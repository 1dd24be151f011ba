"""GAP9 silicon's build (issue 11, item 2b): the PMSIS back end of the cluster interface
(firmware/arch/riscv_pulp/pmsis/, firmware/ports/gap9_pmsis/) and the GAP SDK make project that
`edgeslm build --board gap9` writes (edgeslm.lower.gap_sdk). GreenWaves' GAP SDK is not public and
not installed here, so nothing of it is linked or run: these tests check what can be checked without
it. The compile check against GreenWaves' public pmsis_api headers runs where they are given
(EDGESLM_PMSIS_API=<a pmsis_api checkout>); CI has no copy (no network) and skips it."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeslm.errors import EdgeslmError
from edgeslm.lower.boards import load_board
from edgeslm.lower.codegen import build_settings
from edgeslm.lower.compile import compile_model
from edgeslm.lower.gap_sdk import build_gap_sdk
from edgeslm.lower.plan import plan
from edgeslm.quant.schemes import get_scheme

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"


def _makefile_vars(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "+=" in line and not line.startswith("#"):
            k, v = line.split("+=", 1)
            out.setdefault(k.strip(), []).extend(v.split())
    return out


def test_pmsis_build_settings(stories):
    b = load_board("gap9")
    p = plan(stories[0].config, get_scheme("q8"), b)
    s = build_settings(p)
    assert s["sources"] == ["runtime", "kernels", "arch/riscv_pulp/pmsis", "ports/gap9_pmsis"]
    assert s["exclude"] == ["runtime/main.c"]          # the port's main.c is the entry (pmsis_kickoff)
    d = s["defines"]
    assert d["ESL_CLUSTER_PMSIS"] == 1 and d["ESL_CLUSTER_CORES"] == 8
    assert d["ESL_CL_SCRATCH_BYTES"] == p.l1_scratch_bytes and d["ESL_CL_TILES_AT"] == p.cluster.tiles_at
    assert d["ESL_CL_SLOT0_BYTES"] == p.cluster.slot_bytes[0]
    assert d["ESL_CL_WORKER_STACK_BYTES"] == 2048 and d["ESL_CL_CONTROLLER_STACK_BYTES"] == 4096
    assert not {"ESL_CL_DMA_SETUP_CYCLES", "ESL_CLINT_BASE"} & set(d)      # the QEMU back end's only
    assert {"-ffp-contract=off", "-fno-math-errno"} <= set(s["cflags"])
    # L1 holds what the PMSIS back end allocates and the stacks of the cluster task
    l1 = next(r for r in b.memory if r.name == "l1").length_bytes
    c = b.cluster
    assert 8 * (c["worker_stack_bytes"] + p.l1_scratch_bytes) + c["controller_stack_bytes"] + \
        c["l1_reserved_bytes"] <= l1


def test_build_writes_the_gap_sdk_project_and_says_how_to_build_it(stories, tmp_path):
    board = load_board("gap9")
    model, tok = stories
    compile_model(model, tok, board, get_scheme("q8"), 64, tmp_path)
    with pytest.raises(EdgeslmError, match="GAP SDK") as e:
        build_gap_sdk(board, ROOT, tmp_path, env={"PATH": os.environ["PATH"]})
    mk = tmp_path / "gap_sdk" / "Makefile"
    assert str(mk) in str(e.value) and "RULES_DIR" in e.value.hint and f"make -C {mk.parent} all" in e.value.hint
    text = mk.read_text()
    v = _makefile_vars(text)
    # the sources: every C file of the runtime but its main.c, of the kernels, of the PMSIS back end
    # and port, and the generated ones; nothing of the QEMU back end (listed here independently)
    expect = {str(f) for d in ("runtime", "kernels", "arch/riscv_pulp/pmsis", "ports/gap9_pmsis")
              for f in (FIRMWARE / d).rglob("*.c")} - {str(FIRMWARE / "runtime" / "main.c")}
    expect |= {str(f) for f in (tmp_path / "gen").glob("*.c")}
    assert set(v["APP_SRCS"]) == expect and len(v["APP_SRCS"]) == len(expect)
    assert all(Path(f).is_file() for f in v["APP_SRCS"])
    assert {"-ffp-contract=off", "-fno-math-errno", f"-I{FIRMWARE / 'include'}", f"-I{tmp_path / 'gen'}",
            "-DESL_CLUSTER_PMSIS=1", "-DESL_CLUSTER_CORES=8"} <= set(v["APP_CFLAGS"])
    assert "-lm" in v["APP_LDFLAGS"]
    assert text.rstrip().endswith("include $(RULES_DIR)/pmsis_rules.mk")
    assert not list(mk.parent.glob(".*.tmp"))          # written whole


def test_build_runs_the_sdks_make_and_finds_the_image(stories, tmp_path):
    """The plumbing only, with a stand-in for the SDK's rules (the real ones are not public): make
    runs in the project with the SDK's environment, its failure is reported with the log's end, and
    the image is found where the SDK's rules leave it (BUILD/<chip>/<toolchain>/<APP>)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    board = load_board("gap9")
    model, tok = stories
    compile_model(model, tok, board, get_scheme("q8"), 64, tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "pmsis_rules.mk").write_text(
        "all:\n\t@test -n \"$(APP_SRCS)\" && mkdir -p BUILD/GAP9_V2/GCC_RISCV_FREERTOS && "
        "echo $(words $(APP_SRCS)) > BUILD/GAP9_V2/GCC_RISCV_FREERTOS/$(APP)\n")
    env = {"PATH": os.environ["PATH"], "RULES_DIR": str(rules)}
    image = build_gap_sdk(board, ROOT, tmp_path, env=env)
    assert image == tmp_path / "gap_sdk" / "BUILD" / "GAP9_V2" / "GCC_RISCV_FREERTOS" / "edgeslm"
    assert int(image.read_text()) == len(_makefile_vars((tmp_path / "gap_sdk" / "Makefile").read_text())["APP_SRCS"])
    (rules / "pmsis_rules.mk").write_text("all:\n\t@echo the compiler says no; exit 3\n")
    with pytest.raises(EdgeslmError, match="the compiler says no") as e:
        build_gap_sdk(board, ROOT, tmp_path, env=env)
    assert "GAP SDK build for gap9 failed" in str(e.value)


def test_cli_build_for_gap9_without_the_sdk(tmp_path):
    from test_emulator import edgeslm
    env_rules = os.environ.pop("RULES_DIR", None)
    try:
        r = edgeslm("build", "--board", "gap9", "--max-seq", "64")
    finally:
        if env_rules is not None:
            os.environ["RULES_DIR"] = env_rules
    err = " ".join(r.stderr.decode().split())
    assert r.returncode != 0
    assert "GAP SDK" in err and "build/gap9/gap_sdk/Makefile" in err and "RULES_DIR" in err
    assert "Traceback" not in err


PMSIS_API = os.environ.get("EDGESLM_PMSIS_API")


@pytest.mark.skipif(not PMSIS_API, reason="EDGESLM_PMSIS_API (a checkout of GreenWaves' pmsis_api) not given")
@pytest.mark.parametrize("quant", ["q8", "i8"])
def test_every_source_compiles_against_the_public_pmsis_api(stories, tmp_path, quant):
    """Every file of the make project, with its flags, compiled for RV32 against pmsis_api's headers
    (tests/pmsis_api_shim/pmsis.h adds what the API leaves to an SDK). Every warning must be one the
    shim causes on purpose: an API function declared `static inline` whose body is the SDK's."""
    include = Path(PMSIS_API) / "include"
    assert (include / "pmsis" / "cluster" / "dma" / "cl_dma.h").is_file(), f"{include} is not pmsis_api's"
    board = load_board("gap9")
    model, tok = stories
    calib = None
    if quant == "i8":
        from edgeslm.quant.calibrate import PromptsDataReader, calibrate
        calib = calibrate(model, PromptsDataReader(model, tok, ["Lily and Ben"], 40), "percentile")
    compile_model(model, tok, board, get_scheme(quant), 64, tmp_path, calib=calib)
    with pytest.raises(EdgeslmError):
        build_gap_sdk(board, ROOT, tmp_path, env={"PATH": os.environ["PATH"]})
    v = _makefile_vars((tmp_path / "gap_sdk" / "Makefile").read_text())
    for src in v["APP_SRCS"]:
        r = subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv32imfc", "-mabi=ilp32f", "--specs=picolibc.specs",
                            "-Wall", "-Wextra", *v["APP_CFLAGS"], f"-I{ROOT / 'tests' / 'pmsis_api_shim'}",
                            f"-I{include}", "-c", "-o", str(tmp_path / "o.o"), src],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        other = [ln for ln in r.stderr.splitlines() if "warning:" in ln and "never defined" not in ln]
        assert not other, "\n".join(other)
