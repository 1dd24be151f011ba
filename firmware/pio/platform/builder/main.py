"""SCons build script of the local edgeslm platform: one firmware.elf per board, offline.

Compiler flags come from the board's edgeslm section (core, FPU); the sources are the portable
runtime (firmware/src), the board's port (firmware/ports/<port>) and the generated model code
(build/<env>/gen, written by `edgeslm compile`).
"""
import os
import shutil

from SCons.Script import Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()
esl = board.get("edgeslm")
project = env.subst("$PROJECT_DIR")
gen_dir = os.path.join(project, "build", env.subst("$PIOENV"), "gen")

if not os.path.isfile(os.path.join(gen_dir, "esl_config.h")):
    print("Error: no generated model code in %s.\nRun `edgeslm compile MODEL --board %s` first "
          "(or `edgeslm build`/`edgeslm run`, which do it)." % (gen_dir, env.subst("$PIOENV")))
    env.Exit(1)
if shutil.which("arm-none-eabi-gcc") is None:
    print("Error: arm-none-eabi-gcc not found. Install it: apt-get install gcc-arm-none-eabi "
          "libnewlib-arm-none-eabi")
    env.Exit(1)

# The kernel variant: the board's default, or EDGESLM_KERNELS (edgeslm build --kernels) to compare.
variant = os.environ.get("EDGESLM_KERNELS") or esl.get("kernel_variant", "portable")
if variant not in esl.get("kernel_variants", ["portable"]):
    print("Error: kernel variant '%s' is not offered by board %s (it offers: %s)"
          % (variant, env.subst("$PIOENV"), ", ".join(esl.get("kernel_variants", ["portable"]))))
    env.Exit(1)

feat = esl.get("features", {})
mflags = ["-mcpu=%s" % board.get("build.cpu"), "-mthumb"]
if feat.get("fpu"):
    mflags += ["-mfpu=%s" % feat["fpu"], "-mfloat-abi=%s" % feat.get("float_abi", "hard")]
else:
    mflags += ["-mfloat-abi=soft"]

env.Replace(
    AR="arm-none-eabi-gcc-ar", AS="arm-none-eabi-gcc", CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++", LINK="arm-none-eabi-gcc", OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-gcc-ranlib", SIZETOOL="arm-none-eabi-size", PROGNAME="firmware",
    PROGSUFFIX=".elf",
    SRC_FILTER=["+<src/>", "+<ports/%s/>" % esl["port"]],
    LDSCRIPT_PATH=os.path.join(gen_dir, "link.ld"),
)
env.Append(
    ASFLAGS=mflags,
    CCFLAGS=mflags + ["-O2", "-g", "-ffp-contract=off", "-fno-math-errno", "-ffunction-sections",
                      "-fdata-sections", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion"],
    CFLAGS=["-std=c11"],
    CPPDEFINES=["ESL_TARGET", ("ESL_KERNELS_DSP", 1 if variant == "dsp" else 0)],
    CPPPATH=[os.path.join(project, "firmware", "include"), gen_dir],
    LINKFLAGS=mflags + ["-nostartfiles", "--specs=nosys.specs", "-Wl,--gc-sections",
                        "-Wl,-Map," + os.path.join(env.subst("$BUILD_DIR"), "firmware.map")],
    LIBS=["m", "c", "gcc"],
)

env.BuildSources(os.path.join("$BUILD_DIR", "gen"), gen_dir)
program = env.BuildProgram()
Default(program)
