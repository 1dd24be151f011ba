"""Shared fixtures: the real models from ../shared/models (see its README for the facts we test)."""

from pathlib import Path

import pytest

from edgeslm.model import load_model, load_tokenizer

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def shared(name: str) -> Path:
    p = MODELS / name
    if not p.is_file():
        pytest.fail(f"{p} is missing: the tests need ../shared/models beside the project")
    return p


@pytest.fixture(scope="session")
def stories():
    m = load_model(shared("stories260K.bin"))
    return m, load_tokenizer(shared("tok512.bin"), m)


@pytest.fixture(scope="session")
def aidreams():
    m = load_model(shared("aidreams260K/aidreams260K.bin"))
    return m, load_tokenizer(shared("aidreams260K/tok512.bin"), m)
