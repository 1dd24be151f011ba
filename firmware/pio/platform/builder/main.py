"""SCons build script of the local edgeslm platform: one firmware.elf per board, offline.

Everything about the build comes from build/<env>/gen/build.json, which `edgeslm compile` writes
from the board's target (host/edgeslm/targets/): the toolchain prefix, the compiler and linker
flags for the core, the kernel-variant defines, and the firmware folders to compile (runtime,
kernels, the target's arch folder, the board's port). The generated model code and linker script
are beside it. This script decides nothing.
"""
import json
import os
import shutil

from SCons.Script import Default, DefaultEnvironment

env = DefaultEnvironment()
project = env.subst("$PROJECT_DIR")
gen_dir = os.path.join(project, "build", env.subst("$PIOENV"), "gen")
settings_file = os.path.join(gen_dir, "build.json")

if not os.path.isfile(settings_file):
    print("Error: no generated model code in %s.\nRun `edgeslm compile MODEL --board %s` first "
          "(or `edgeslm build`/`edgeslm run`, which do it)." % (gen_dir, env.subst("$PIOENV")))
    env.Exit(1)
with open(settings_file) as f:
    cfg = json.load(f)
if cfg.get("schema") != 1:
    print("Error: %s has schema %r; this builder reads 1. Re-run `edgeslm compile`."
          % (settings_file, cfg.get("schema")))
    env.Exit(1)
if cfg["board"] != env.subst("$PIOENV"):
    print("Error: %s was generated for board %s, not %s. Re-run `edgeslm compile --board %s`."
          % (settings_file, cfg["board"], env.subst("$PIOENV"), env.subst("$PIOENV")))
    env.Exit(1)

prefix = cfg["toolchain_prefix"]
if shutil.which(prefix + "gcc") is None:
    print("Error: %sgcc not found. Install the cross compiler (Debian: apt-get install "
          "gcc-arm-none-eabi libnewlib-arm-none-eabi for Cortex-M, gcc-riscv64-unknown-elf "
          "picolibc-riscv64-unknown-elf for RISC-V)." % prefix)
    env.Exit(1)

env.Replace(
    AR=prefix + "gcc-ar", AS=prefix + "gcc", CC=prefix + "gcc", CXX=prefix + "g++", LINK=prefix + "gcc",
    OBJCOPY=prefix + "objcopy", RANLIB=prefix + "gcc-ranlib", SIZETOOL=prefix + "size",
    PROGNAME="firmware", PROGSUFFIX=".elf",
    SRC_FILTER=["+<%s/>" % d for d in cfg["sources"]] + ["-<%s>" % f for f in cfg.get("exclude", [])],
    LDSCRIPT_PATH=os.path.join(gen_dir, "link.ld"),
)
env.Append(
    ASFLAGS=cfg["cflags"],
    CCFLAGS=cfg["cflags"] + ["-O2", "-g", "-ffunction-sections",
                             "-fdata-sections", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion"],
    CFLAGS=["-std=c11"],
    CPPDEFINES=sorted(cfg["defines"].items()),
    CPPPATH=[os.path.join(project, "firmware", "include"), gen_dir],
    LINKFLAGS=cfg["link_flags"] + ["-Wl,-Map," + os.path.join(env.subst("$BUILD_DIR"), "firmware.map")],
    LIBS=cfg["libs"],
)

env.BuildSources(os.path.join("$BUILD_DIR", "gen"), gen_dir)
program = env.BuildProgram()
Default(program)
