# Two entry points on a fresh machine:
#   make demo   stories260K, quantized q8, generating on an emulated Cortex-M4 (QEMU), every token
#               checked against the golden model
#   make test   the whole test suite
#   make fuzz   (optional) libFuzzer over the firmware's request path for FUZZ_SECONDS (600)
# Both create .venv and install what is missing (Python packages from PyPI; the cross compiler,
# newlib and QEMU from Debian's packages, with sudo when not root).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PKGS := gcc make gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm clang-14 libclang-rt-14-dev \
	gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc

.PHONY: demo test fuzz setup system-deps clean

$(BIN)/edgeslm: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/edgeslm system-deps

system-deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		echo "installing Debian packages:$$missing"; \
		$$sudo apt-get update -q && $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi

demo: setup
	$(BIN)/edgeslm run --emulate --board mps2_an386 --quant q8 --prompt "Once upon a time" --steps 200

test: setup
	$(BIN)/python -m pytest tests

FUZZ_SECONDS ?= 600
fuzz: setup      # libFuzzer (ASan + UBSan) over the firmware's request path; make fuzz FUZZ_SECONDS=N
	$(BIN)/python tests/fuzz/fuzz.py --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) build .pytest_cache
