"""The stage entry point: denormals flushed (CPU speed), errors as one line and exit status 1."""
import pytest
import torch

from semguide_core.errors import ConfigError
from semguide_core.runtime import run_stage

TINY = 1e-40  # a float32 denormal: representable, but below the smallest normal number (1.18e-38)


def test_a_stage_runs_with_denormals_flushed_to_zero():
    seen = {}

    def main():
        seen["product"] = (torch.tensor(TINY, dtype=torch.float32) * 1.0).item()

    torch.set_flush_denormal(False)
    assert torch.tensor(TINY, dtype=torch.float32).item() != 0  # denormals exist when not flushed
    try:
        run_stage(main)
    finally:
        torch.set_flush_denormal(False)
    assert seen["product"] == 0.0


def test_a_stage_error_is_one_line_and_exit_status_1(capsys):
    def main():
        raise ConfigError("params.yaml: renderer.steps = -1 is below 1")

    with pytest.raises(SystemExit) as exit_info:
        run_stage(main)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: params.yaml: renderer.steps = -1 is below 1\n"
