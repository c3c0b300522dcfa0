"""The typed params loader: every bad key, type or value is named on one line."""
import pytest

from semguide_core.config import Params, load_params
from semguide_core.errors import ConfigError
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_the_repository_params_load_and_equal_the_defaults():
    """params.yaml and config.py's defaults say the same: `semguide bench` and a params file that leaves a
    key out get what the pipeline trains."""
    params = load_params(REPO / "params.yaml")
    assert params == Params()


def test_defaults_fill_missing_keys_and_ints_become_floats(tmp_path):
    params = load_params(write(tmp_path, "eta: 3\nrenderer:\n  steps: 7\n"))
    assert params.eta == 3.0 and isinstance(params.eta, float)
    assert params.renderer.steps == 7 and params.renderer.batch_size == Params().renderer.batch_size


@pytest.mark.parametrize("text, message", [
    ("colour: 1\n", "unknown key colour"),
    ("renderer:\n  stepz: 3\n", "unknown key renderer.stepz"),
    ("renderer:\n  steps: 2.5\n", "renderer.steps = 2.5: must be an integer"),
    ("renderer:\n  steps: true\n", "renderer.steps = True: must be an integer"),
    ("eta: fast\n", "eta = 'fast': must be a number"),
    ("eta: -1\n", "eta = -1: must be >= 0.0"),
    ("canvas: 0\n", "canvas = 0: must be >= 16"),
    ("canvas: 4096\n", "canvas = 4096: must be <= 1024"),
    ("strokes:\n  n_train: -5\n", "strokes.n_train = -5: must be >= 1"),
    ("renderer:\n  loss: huber\n", "renderer.loss = 'huber': must be one of bce, mse"),
    ("renderer:\n  fc_widths: [64, 0]\n", "renderer.fc_widths = [64, 0]: must be >= 1"),
    ("renderer:\n  fc_widths: 64\n", "renderer.fc_widths = 64: must be a list"),
    ("renderer: 3\n", "renderer must be a mapping"),
    ("dataset: imagenet\n", "dataset = 'imagenet': must be one of"),
    ("nu: .nan\n", "nu = nan: must be a finite number"),
    ("eta: .inf\n", "eta = inf: must be a finite number"),
    ("renderer:\n  lr: .nan\n", "renderer.lr = nan: must be a finite number"),
    ("renderer:\n  lr_decay_at: [0.5, .nan]\n", "must be a finite number"),
    ("canvas: 17\n", "canvas = 17 must be divisible by 2 ** renderer.upsample_blocks"),
    ("canvas: 20\nrenderer:\n  upsample_blocks: 3\n", "canvas = 20 must be divisible by 2 ** renderer.upsample_blocks = 8"),
])
def test_bad_values_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_params(write(tmp_path, text))
    assert message in str(err.value) and "params.yaml" in str(err.value) and "\n" not in str(err.value)


def test_numbers_as_people_type_them(tmp_path):
    params = load_params(write(tmp_path, "renderer:\n  lr: 1e-4\nagent:\n  lr_decay_at: [5e-1, 0.8]\n"))
    assert params.renderer.lr == 1e-4 and params.agent.lr_decay_at == [0.5, 0.8]


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML \(line 2, column 5: mapping values are not allowed"):
        load_params(write(tmp_path, "eta: 2\n  nu: 3\n"))


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="nothere.yaml: file not found"):
        load_params(tmp_path / "nothere.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(write(tmp_path, "eta: [1,\n"))


def test_directory_and_binary_files_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="is a directory, not a params file"):
        load_params(tmp_path)
    binary = tmp_path / "params.yaml"
    binary.write_bytes(b"\xff\xfe\x00eta")
    with pytest.raises(ConfigError, match="params.yaml: not a UTF-8 text file"):
        load_params(binary)


def test_cuda_without_cuda_is_refused_before_any_work(tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device = cuda but CUDA is not available"):
        load_params(write(tmp_path, "device: cuda\n"))
    assert load_params(write(tmp_path, "device: auto\n")).device == "auto"
