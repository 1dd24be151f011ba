"""Verification tier 2 on the emulated boards: every kernel built for each board with that board's
own flags and ISA variant (the DSP branch on the M4F and M7, soft-float on the M3), run under QEMU
on generated vectors, against its golden function at tolerance zero.

The vectors are emitted as exact C literals into one source file; the firmware runs each case and
writes its output bytes to UART0 (QEMU `-serial file:`), then returns, which ends QEMU through
semihosting. The portable branches are also checked natively (tests/test_kernels_native.py)."""

import shutil
import subprocess

import numpy as np
import pytest

from edgeslm.lower import cdata
from edgeslm.lower.boards import load_board
from edgeslm.lower.native import FIRMWARE, kernel_sources
from edgeslm.quant import quantize_matrix
from edgeslm.quant.golden import _Matmul, attention, esl_expf, quantize_i8, rope, rope_tables, softmax, swiglu
from edgeslm.reference import rmsnorm

F = np.float32
LINK = """ENTRY(Reset_Handler)
MEMORY { code (rx) : ORIGIN = 0x0, LENGTH = 4M  ram (rwx) : ORIGIN = 0x20000000, LENGTH = 4M }
_estack = ORIGIN(ram) + LENGTH(ram);
SECTIONS {
  .text : { KEEP(*(.isr_vector)) *(.text*) *(.rodata*) . = ALIGN(8); } > code
  .ARM.exidx : { *(.ARM.exidx*) } > code
  .data : ALIGN(8) { _sdata = .; *(.data*) . = ALIGN(8); _edata = .; } > ram AT > code
  _sidata = LOADADDR(.data);
  .bss (NOLOAD) : ALIGN(8) { _sbss = .; *(.bss*) *(COMMON) . = ALIGN(8); _ebss = .; } > ram
}
"""


class Vectors:
    """Cases as C: inputs as exact literals, one call each, outputs written to the UART in order."""

    def __init__(self):
        self.decls, self.calls, self.expected, self.names = [], [], [], []
        self.n = 0

    def arr(self, a: np.ndarray, ctype: str | None = None) -> str:
        self.n += 1
        name = f"v{self.n}"
        a = np.ascontiguousarray(a).reshape(-1)
        if a.dtype == F:
            self.decls.append(f"static float {name}[{a.size}] = {{ {cdata.f32_body(a)} }};")
        else:
            ctype = ctype or {np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t"}[a.dtype]
            self.decls.append(f"static {ctype} {name}[{a.size}] = {{ {cdata.int_body(a)} }};")
        return name

    def out(self, name: str, c_call: str, want: np.ndarray, ctype: str = "float") -> None:
        self.n += 1
        o = f"o{self.n}"
        want = np.ascontiguousarray(want).reshape(-1)
        self.decls.append(f"static {ctype} {o}[{want.size}];")
        self.calls.append(f"    {c_call.format(out=o)};\n    esl_port_write((const uint8_t *){o}, sizeof {o});")
        self.expected.append(want.tobytes())
        self.names.append(name)

    def weight(self, qt) -> str:
        data = self.arr(qt.packed())
        scales = self.arr(qt.scales) if qt.bits != 32 else "NULL"
        self.n += 1
        w = f"w{self.n}"
        rows, cols = qt.shape
        self.decls.append(f"static const esl_weight_t {w} = {{ {data}, {scales}, {rows}u, {cols}u, "
                          f"{qt.group_size}u, {qt.n_groups}u, {qt.bits}u }};")
        return w

    def source(self) -> str:
        return ("#include <stddef.h>\n#include \"esl_kernels.h\"\n#include \"esl_port.h\"\n\n"
                "static uint64_t scratch[1024];\n" + "\n".join(self.decls) +
                "\n\nint main(void)\n{\n    esl_port_init();\n" + "\n".join(self.calls) + "\n    return 0;\n}\n")


def build_vectors() -> Vectors:
    rng = np.random.default_rng(4321)
    v = Vectors()
    for bits, rows, cols, gs in [(8, 64, 64, 32), (8, 64, 172, 32), (8, 17, 33, 16), (8, 5, 7, 4),
                                 (4, 64, 172, 32), (4, 17, 33, 16), (32, 17, 33, 0)]:
        qt = quantize_matrix(rng.normal(size=(rows, cols)).astype(F), bits, gs or 32)
        x = rng.normal(size=cols).astype(F)
        w, xs = v.weight(qt), v.arr(x)
        fn = {8: "esl_matmul_w8f({out}, &%s, %s, scratch)", 4: "esl_matmul_w4f({out}, &%s, %s, scratch)",
              32: "esl_matmul_f32({out}, &%s, %s)"}[bits] % (w, xs)
        v.out(f"matmul bits={bits} {rows}x{cols} gs={gs}", fn, _Matmul(qt)(x))
    x = np.concatenate([rng.uniform(-100, 100, 200), rng.normal(size=200), [0.0, 88.0, -87.0, 1e-30]]).astype(F)
    xa = v.arr(x)
    v.out("expf", f"for (uint32_t i = 0; i < {x.size}u; i++) {{out}}[i] = esl_expf({xa}[i])", esl_expf(x))
    n = 172
    x, wn = (rng.normal(size=n) * 3).astype(F), rng.normal(size=n).astype(F)
    v.out("rmsnorm", f"esl_rmsnorm_f32({{out}}, {v.arr(x)}, {v.arr(wn)}, {n}u, 0x1.4f8b58p-17f)",
          rmsnorm(x, wn, F(1e-5)))
    x = (rng.normal(size=40) * 5).astype(F)
    x[:8] = 0
    q, s = quantize_i8(x, 16)
    xa = v.arr(x)
    v.out("quantize_i8 q", f"esl_quantize_i8({{out}}, (float *)scratch, {xa}, 40u, 16u)", q, "int8_t")
    v.out("quantize_i8 scales", f"esl_quantize_i8((int8_t *)scratch + 64, {{out}}, {xa}, 40u, 16u)", s)
    x = (rng.normal(size=100) * 6).astype(F)
    xa = v.arr(x)
    v.out("softmax", f"for (uint32_t i = 0; i < 100u; i++) {{out}}[i] = {xa}[i];\n    esl_softmax_f32({{out}}, 100u)",
          softmax(x))
    a, b = (rng.normal(size=n) * 4).astype(F), rng.normal(size=n).astype(F)
    aa, ba = v.arr(a), v.arr(b)
    v.out("swiglu", f"for (uint32_t i = 0; i < {n}u; i++) {{out}}[i] = {aa}[i];\n    esl_swiglu_f32({{out}}, {ba}, {n}u)",
          swiglu(a, b))
    cos, sin = rope_tables(8, 100, 10000.0)
    r = rng.normal(size=(6, 8)).astype(F)
    ra, ca, sa = v.arr(r), v.arr(cos[77]), v.arr(sin[77])
    v.out("rope", f"for (uint32_t i = 0; i < 48u; i++) {{out}}[i] = {ra}[i];\n    esl_rope_f32({{out}}, {ca}, {sa}, 6u, 8u)",
          rope(r, cos[77], sin[77]))
    table = quantize_matrix(rng.normal(size=(20, 70)).astype(F), 8, 32)
    v.out("embed_w8f", f"esl_embed_w8f({{out}}, &{v.weight(table)}, 13u)",
          table.values[13].astype(F) * np.repeat(table.scales[13], 32)[:70])
    heads, kvh, hs, seq, pos = 8, 4, 8, 64, 37
    inv = F(1.0 / np.sqrt(hs))
    qv = rng.normal(size=(heads, hs)).astype(F)
    kf, vf = (rng.normal(size=(seq, kvh, hs)).astype(F) for _ in range(2))
    model = ("static esl_model_t m{n} = {{ .n_heads = {h}u, .n_kv_heads = {k}u, .head_size = {hs}u, "
             ".kv_dim = {kd}u, .max_seq = {s}u, .inv_sqrt_head_size = {inv}, .kv = {{ {kv} }} }};")
    qa = v.arr(qv)
    v.n += 1
    v.decls.append(model.format(n=v.n, h=heads, k=kvh, hs=hs, kd=kvh * hs, s=seq, inv=cdata.f32(inv),
                                kv=f".key_f32 = {v.arr(kf)}, .value_f32 = {v.arr(vf)}, .kv_bits = 32"))
    m = [d for d in v.decls if d.startswith("static esl_model_t")][-1].split()[2]
    v.out("attention_f32", f"esl_attention_f32({{out}}, {qa}, &{m}, 0u, {pos}u, scratch)",
          attention(qv, kf[:pos + 1], vf[:pos + 1], None, None, inv))
    quant = [quantize_i8(t.reshape(-1), hs) for t in kf]
    kq, ks = np.stack([a for a, _ in quant]).reshape(seq, kvh, hs), np.stack([s for _, s in quant])
    quant = [quantize_i8(t.reshape(-1), hs) for t in vf]
    vq, vs = np.stack([a for a, _ in quant]).reshape(seq, kvh, hs), np.stack([s for _, s in quant])
    v.n += 1
    v.decls.append(model.format(n=v.n, h=heads, k=kvh, hs=hs, kd=kvh * hs, s=seq, inv=cdata.f32(inv),
                                kv=f".key_i8 = {v.arr(kq)}, .value_i8 = {v.arr(vq)}, .key_scale = {v.arr(ks)}, "
                                   f".value_scale = {v.arr(vs)}, .kv_bits = 8"))
    m = [d for d in v.decls if d.startswith("static esl_model_t")][-1].split()[2]
    v.out("attention_kv8", f"esl_attention_kv8({{out}}, {qa}, &{m}, 0u, {pos}u, scratch)",
          attention(qv, kq[:pos + 1], vq[:pos + 1], ks[:pos + 1], vs[:pos + 1], inv))
    return v


@pytest.fixture(scope="module")
def vectors():
    return build_vectors()


@pytest.mark.parametrize("board_id", ["mps2_an386", "mps2_an500", "mps2_an385"])
def test_every_kernel_on_the_board_equals_golden(board_id, vectors, tmp_path):
    board = load_board(board_id)
    target, variant = board.target, board.kernel_variant
    cc = target.toolchain_prefix + "gcc"
    for tool in (cc, board.emulator["binary"]):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (.ci/run installs it: apt-get install gcc-arm-none-eabi "
                        "libnewlib-arm-none-eabi qemu-system-arm)")
    (tmp_path / "cases.c").write_text(vectors.source())
    (tmp_path / "link.ld").write_text(LINK)
    elf = tmp_path / "kernels.elf"
    flags = target.flags(board.core)
    defines = [f"-D{k}={v}" for k, v in {"ESL_TARGET": 1, **target.defines(variant)}.items()]
    srcs = kernel_sources() + sorted((FIRMWARE / "arch" / target.arch_dir).glob("*.c")) + \
        sorted((FIRMWARE / "ports" / board.port).glob("*.c")) + [tmp_path / "cases.c"]
    subprocess.run([cc, *flags, *defines, "-std=c11", "-O2", "-ffp-contract=off", "-fno-math-errno",
                    "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", f"-I{FIRMWARE / 'include'}",
                    *map(str, srcs), *target.link_flags, f"-T{tmp_path / 'link.ld'}", "-o", str(elf),
                    *[f"-l{lib}" for lib in target.libs]], check=True, capture_output=True)
    dis = subprocess.run([target.toolchain_prefix + "objdump", "-d", str(elf)], capture_output=True,
                         text=True, check=True).stdout
    assert ("smlad" in dis) == (variant == "dsp"), "the DSP branch must be what runs, and only there"
    out = tmp_path / "uart.bin"
    emu = board.emulator
    proc = subprocess.Popen([emu["binary"], "-M", emu["machine"], "-display", "none", "-monitor", "none",
                             "-serial", f"file:{out}", "-kernel", str(elf),
                             "-semihosting-config", "enable=on,target=native",
                             "-icount", f"shift={emu.get('icount_shift', 7)},sleep=off"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        log, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        pytest.fail(f"{board_id}: the kernel firmware did not finish within 60 s")
    assert proc.returncode == 0, f"{board_id}: QEMU exited {proc.returncode} (firmware fault?): {log[-400:]!r}"
    got = out.read_bytes()
    assert len(got) == sum(map(len, vectors.expected)), f"{board_id}: {len(got)} output bytes"
    at = 0
    for name, want in zip(vectors.names, vectors.expected):
        g = got[at:at + len(want)]
        at += len(want)
        if g != want:
            dt = np.int8 if name == "quantize_i8 q" else F
            a, b = np.frombuffer(g, dt), np.frombuffer(want, dt)
            i = int(np.nonzero(a.view(np.uint8 if dt == np.int8 else np.uint32) !=
                               b.view(np.uint8 if dt == np.int8 else np.uint32))[0][0])
            raise AssertionError(f"{board_id} ({variant}): {name}: {int((a != b).sum())} mismatches, "
                                 f"first at {i}: C {a[i]!r}, golden {b[i]!r}")
