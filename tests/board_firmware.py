"""What the tests that build their own firmware for an emulated board share (the kernel check and
the fault-report firmware): the firmware build's compile flags and a one-code-region, one-RAM-region
linker script from the board's memory map."""

# The firmware build's compile flags (firmware/pio/platform/builder/main.py), beside the target's.
FIRMWARE_CFLAGS = ["-O2", "-g", "-ffp-contract=off", "-fno-math-errno", "-ffunction-sections", "-fdata-sections",
                   "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-std=c11"]

_LINK = """ENTRY(Reset_Handler)
MEMORY
{{
    code (rx) : ORIGIN = {code.origin:#x}, LENGTH = {code.length_bytes}
    ram (rwx) : ORIGIN = {ram.origin:#x}, LENGTH = {ram.length_bytes}
}}
_estack = ORIGIN(ram) + LENGTH(ram);
SECTIONS
{{
    .text : {{ KEEP(*(.isr_vector)) *(.text*) *(.rodata*) . = ALIGN(8); }} > code
    .ARM.exidx : {{ *(.ARM.exidx*) }} > code
    .data : ALIGN(8) {{ _sdata = .; *(.data*) . = ALIGN(8); _edata = .; }} > ram AT > code
    _sidata = LOADADDR(.data);
    .bss (NOLOAD) : ALIGN(8) {{ _sbss = .; *(.bss*) *(COMMON) . = ALIGN(8); _ebss = .; }} > ram
}}
"""


def link_script(board) -> str:
    """The board's first code region and first RAM region hold everything."""
    return _LINK.format(code=board.regions_for("code")[0], ram=board.regions_for("ram")[0])
