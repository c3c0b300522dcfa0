"""evaluate: the metric functions on hand-computed cases, the tables, and stages paint + evaluate end to end."""
import json
import math
from types import SimpleNamespace
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import stage_command

from semguide_core import evaluate as E
from semguide_core.config import AgentParams
from semguide_core.metrics import psnr
from semguide_core.tables import write_table

TINY_ACTOR = AgentParams(actor_width=4, actor_blocks=[1], actor_hidden=8)  # an untrained actor that paints fast

REPO = Path(__file__).resolve().parents[1]


def square(side, rows, cols):
    m = torch.zeros(1, side, side)
    m[0, rows, cols] = 1
    return m


# ---------------------------------------------------------------------------------------------- metrics
def test_accuracy_and_iou_on_hand_computed_masks():
    truth = square(4, slice(0, 2), slice(0, 2))                  # 4 px
    predicted = torch.zeros(1, 4, 4)
    predicted[0, 0, 0:3] = 0.9                                     # 2 of the true pixels + 1 extra
    predicted[0, 1, 0] = 0.7                                       # a 3rd true pixel
    predicted[0, 3, 3] = 0.6                                       # another extra
    predicted[0, 1, 1] = 0.4                                       # below 0.5: not detected
    assert E.foreground_accuracy(predicted, truth).item() == pytest.approx(3 / 4)
    assert E.mask_iou(predicted, truth).item() == pytest.approx(3 / 6)
    # nothing detected, nothing to detect: perfect; something detected where nothing is: zero accuracy
    assert E.foreground_accuracy(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)).item() == 1
    assert E.foreground_accuracy(predicted, torch.zeros(1, 4, 4)).item() == 0


def test_foreground_l2_is_the_frobenius_norm_of_the_masked_difference():
    target = torch.full((1, 3, 4, 4), 0.5)
    canvas = torch.zeros(1, 3, 4, 4)
    mask = square(4, slice(0, 2), slice(0, 2))[None]              # [1, 1, 4, 4], 4 px
    # 4 px x 3 channels x 0.5^2 = 3 -> sqrt(3)
    assert E.masked_l2(target, canvas, mask).item() == pytest.approx(math.sqrt(3))
    # at twice the side the region has 4 times the pixels: the norm doubles (the paper's 128 px convention)
    assert E.masked_l2(target, canvas, mask, side=8).item() == pytest.approx(2 * math.sqrt(3), rel=1e-4)
    assert E.masked_l2(target, canvas, torch.ones_like(mask)).item() == pytest.approx(math.sqrt(12))
    # per-pixel RMSE does not depend on the side or the area
    assert E.foreground_rmse(target, canvas, mask).item() == pytest.approx(0.5)
    canvas[0, 0, 0, 0] = 0.5                                        # one value right: 11 of 12 errors are 0.5
    assert E.foreground_rmse(target, canvas, mask).item() == pytest.approx(math.sqrt(11 * 0.25 / 12))


def test_psnr_and_painting_progress():
    target = torch.full((1, 3, 2, 2), 0.5)
    assert psnr(target, target - 0.1).item() == pytest.approx(20.0)
    mask = torch.zeros(1, 1, 2, 2)
    mask[0, 0, 0] = 1                                               # top row is foreground
    frames = torch.zeros(1, 3, 3, 2, 2)
    frames[0, 1, :, 0] = 0.25                                       # half the foreground error gone
    frames[0, 2, :, 0] = 0.5                                        # all of it gone
    frames[0, 2, :, 1] = 0.5                                        # and the background too, at the end
    assert E.progress(target, frames, mask)[0].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert E.progress(target, frames, 1 - mask)[0].tolist() == pytest.approx([0.0, 0.0, 1.0])


def test_matched_images_are_those_both_agents_paint_most_alike():
    # gaps |a - b| / mean: 0.049, 0.182, 0.105, 0 -> the half with the smallest: images 3 and 0
    order, gap = E.matched_images(torch.tensor([1.0, 1.0, 1.0, 2.0]), torch.tensor([1.05, 1.2, 0.9, 2.0]), 0.5)
    assert order.tolist() == [3, 0] and gap.tolist() == pytest.approx([0.0, 0.05 / 1.025])
    assert E.matched_images(torch.ones(5), torch.ones(5), 0.25)[0].tolist() == [0, 1]  # ceil(1.25), ties: first


def test_coarse_structure_and_detail():
    image = torch.rand(2, 3, 16, 16)
    coarse, detail = E.coarse_and_detail(image, 2.0)
    assert torch.allclose(coarse + detail, image)
    assert detail.abs().mean() < image.abs().mean() and coarse.std() < image.std()  # blur smooths
    flat, none = E.coarse_and_detail(torch.full((1, 3, 8, 8), 0.3), 1.0)
    assert torch.allclose(flat, torch.full_like(flat, 0.3)) and none.abs().max() < 1e-6
    # an object of two halves, 0.3 and 0.7: its flat mean colour has none of its coarse structure, the black
    # canvas less than none, the object itself all; a canvas off by a constant 0.1 has all of its detail
    target, mask = torch.full((1, 3, 8, 8), 0.3), torch.ones(1, 1, 8, 8)
    target[..., 4:] = 0.7
    frames = torch.stack([torch.zeros_like(target), torch.full_like(target, 0.5), target, target + 0.1], 1)
    coarse_progress, detail_progress = E.sequence_progress(target, frames, mask, 1.0)
    assert coarse_progress[0, 0] < 0 and coarse_progress[0, 1:3].tolist() == pytest.approx([0.0, 1.0], abs=1e-6)
    assert detail_progress[0, 1:].tolist() == pytest.approx([0.0, 1.0, 1.0], abs=1e-5)


def test_a_top_down_painter_scores_above_a_bottom_up_one():
    torch.manual_seed(0)
    target = torch.rand(3, 3, 16, 16)
    coarse, detail = E.coarse_and_detail(target, 2.0)
    top_down = torch.stack([coarse, target], 1)                        # structure first, then everything
    bottom_up = torch.stack([detail, target], 1)                       # details first
    truth = torch.ones(3, 1, 16, 16)
    p = SimpleNamespace(matched_share=1.0, sequence_strokes=10, coarse_sigma=2.0 / 16)
    scores = E.score_sequences(target, {"a": top_down, "b": bottom_up}, [10, 20], truth, 16, p)
    assert scores["images"] == 3 and scores["l2_gap"] == 0    # both end on the target
    assert scores["a"]["coarse_end"] == pytest.approx(100) and scores["a"]["detail_end"] == pytest.approx(100)
    assert scores["a"]["top_down_index"] > 0 > scores["b"]["top_down_index"]


def test_tables_and_markdown(tmp_path):
    one = {"seg_accuracy": 50.0, "seg_iou": 25.0, "fg_l2": 8.4, "fg_rmse": 0.1, "l2": 20.0, "psnr": 18.0,
           "fg_progress": {"10": 0.3, "20": 0.6}, "bg_progress": {"10": 0.1, "20": 0.2}}
    sequence = {"coarse_early": 60.0, "detail_early": 20.0, "coarse_end": 90.0, "detail_end": 70.0,
                "top_down_index": 40.0}
    frames = E.tables({"baseline": one, "semantic": {**one, "fg_l2": 7.8}}, {"seg_accuracy": 90.0, "seg_iou": 80.0},
                      {"images": 5, "l2_gap": 3.0, "baseline": sequence, "semantic": {**sequence, "top_down_index": math.nan}}, 20)
    assert list(frames["table1_segmentation"]["method"])[-1].startswith("target")
    assert frames["table2_foreground_l2"].iloc[1, 1] == 7.8
    assert frames["painting_order"].shape == (4, 2 + 2)
    assert frames["painting_sequence"].columns[3] == "coarse structure after 20 strokes (%)"
    assert frames["painting_sequence"]["matched images"].tolist() == [5, 5]
    write_table(frames["painting_order"], tmp_path / "order", "Order")
    markdown = (tmp_path / "order.md").read_text().splitlines()
    assert markdown[0] == "### Order" and markdown[2].startswith("| method | region | 10 strokes (%)")
    assert markdown[4].split("|")[3].strip() == "30"
    assert pd.read_csv(tmp_path / "order.csv").shape == (4, 4)
    write_table(frames["painting_sequence"], tmp_path / "sequence", "Sequence")
    assert (tmp_path / "sequence.md").read_text().splitlines()[-1].split("|")[-2].strip() == "-"  # NaN shown as -


# ---------------------------------------------------------------------------------- stages end to end
def make_inputs(root: Path, side=32, n=6, models=True):
    """A tiny prepared dataset, Psi masks, GBP maps, and (models) two agents and a segmenter under root."""
    from semguide_core.agent.inference import PaintingAgent, agent_file
    from semguide_core.agent.networks import Actor, actor_arch
    from semguide_core.data.prepared import INDEX_COLUMNS, PreparedDataset, write_prepared
    from semguide_core.data.synth import write_scenes
    from semguide_core.semantics.expert import Expert
    from semguide_core.semantics.model_files import save_model
    from semguide_core.semantics.segmenter import Segmenter, config_of

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, side, side, 3), dtype=np.uint8)
    masks = np.zeros((n, side, side), np.uint8)
    masks[:, 8:20, 4:14] = 1
    masks[:, 22:28, 20:30] = 1                        # two instances per image
    instances = masks * 1
    instances[:, 22:28, 20:30] = 2
    index = pd.DataFrame({"idx": range(n), "split": ["train", "train"] + ["test"] * (n - 2), "label": 0,
                          "label_name": "x", "source": "x", "has_mask": True, "bbox_x": 0.1, "bbox_y": 0.2,
                          "bbox_w": 0.8, "bbox_h": 0.7, "n_instances": 2})[INDEX_COLUMNS]
    # the last image has no true mask (as Stanford Cars): evaluate takes stage extract_masks' mask instead
    index.loc[n - 1, ["has_mask", "source"]] = [False, "cars/last.jpg"]
    (root / "artifacts/extracted_masks").mkdir(parents=True)
    index[["idx", "split", "source"]].to_csv(root / "artifacts/extracted_masks/index.csv", index=False)
    np.save(root / "artifacts/extracted_masks/masks.npy", masks)
    shipped, instances = masks.copy(), instances.copy()
    shipped[n - 1] = instances[n - 1] = 0
    write_prepared(root / "artifacts/prepared", PreparedDataset(index, images, shipped, instances, np.zeros_like(masks)))
    for name, maps in (("psi", masks * 0.9), ("gbp", rng.random((n, side, side)))):
        (root / f"artifacts/{name}").mkdir(parents=True)
        np.save(root / f"artifacts/{name}/{'masks' if name == 'psi' else 'maps'}.npy", maps.astype(np.float16))
    if not models:
        return images, masks
    (root / "models").mkdir()
    for name, kind, semantic in (("baseline", "baseline", False), ("semantic", "semantic", True)):
        arch = actor_arch(TINY_ACTOR, semantic, n_background=5 if kind == "baseline" else 2)
        agent = PaintingAgent(name, kind, 5 if kind == "baseline" else 2, 2, semantic, Actor(**arch))
        torch.save(agent_file(agent, arch, side), root / f"models/agent_{name}.pt")
    segmenter = Segmenter("mobilenet_v3_large", resolution=32)
    save_model(root / "models/segmenter.pt", segmenter, config_of(segmenter))
    expert = {"n_classes": 2, "width_mult": 0.25, "depth_mult": 0.25, "resolution": 32}
    save_model(root / "models/expert.pt", Expert(**expert), expert)
    write_scenes(root / "data/sample-scenes", seed=0, count=30)  # 2 frames per sequence: 1 test, 1 train
    return images, masks


PAINT_EVALUATE_PARAMS = ("canvas: 32\ndevice: cpu\nprepare:\n  test_fraction: 0.5\n"
                         "paint:\n  strokes: 10\n  frame_counts: [5, 10]\n  batch_size: 3\n  scenes: 2\n"
                         "evaluate:\n  l2_side: 64\n  figure_images: 2\n  sequence_strokes: 5\n")


@pytest.mark.slow
def test_paint_and_evaluate_stages_end_to_end(tmp_path, monkeypatch, capsys):
    (tmp_path / "params.yaml").write_text(PAINT_EVALUATE_PARAMS)
    images, masks = make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    for stage in ("paint", "evaluate"):  # in this process (saves the imports); run_stage exits only on error
        monkeypatch.setattr(sys, "argv", stage_command(stage))  # the paths dvc.yaml passes
        runpy.run_path(str(REPO / f"stages/{stage}.py"), run_name="__main__")
    semantic = tmp_path / "artifacts/paint/semantic"
    assert np.load(semantic / "canvases.npy").shape == (4, 32, 32, 3)
    assert np.load(semantic / "frames.npy").shape == (4, 2, 32, 32, 3)
    region = np.load(semantic / "region.npy")
    assert region.shape == (4, 10) and set(np.unique(region)) <= {0, 1, 2} and (region > 0).any()
    assert (np.load(tmp_path / "artifacts/paint/baseline/region.npy") == -1).all()
    scores = json.loads((tmp_path / "metrics/eval.json").read_text())
    assert scores["images"] == 4
    # Table 2 by hand from the saved canvases; the image without a true mask counts with its extracted mask
    canvases = torch.from_numpy(np.load(tmp_path / "artifacts/paint/baseline/canvases.npy")).permute(0, 3, 1, 2) / 255
    targets = torch.from_numpy(images[2:]).permute(0, 3, 1, 2) / 255
    truth = torch.from_numpy(masks[2:, None]).float()
    expected = E.masked_l2(targets, canvases, truth, side=64).mean().item()
    assert scores["baseline"]["fg_l2"] == pytest.approx(expected, rel=1e-4)
    for name in ("baseline", "semantic"):
        assert 0 <= scores[name]["seg_accuracy"] <= 100 and scores[name]["fg_l2"] > 0
    for stem in ("table1_segmentation", "table2_foreground_l2", "whole_image", "painting_order", "painting_sequence"):
        assert (tmp_path / f"metrics/{stem}.md").read_text().startswith("###")
    for figure in ("compare", "compare_scenes", "sequence", "segmentation"):
        assert (tmp_path / f"figures/{figure}.png").stat().st_size > 0
    # the sample-scenes pass: several vehicles per image, each an instance Eq. 16 can pick
    assert scores["scenes"]["images"] == 2 and scores["scenes"]["semantic"]["l2"] > 0
    assert np.load(tmp_path / "artifacts/paint/scenes/instances.npy").max() >= 2
    # Sec. 7.2: the images both agents paint equally well, each agent's progress after 5 of 10 strokes
    sequence = scores["painting_sequence"]
    assert sequence["images"] == len(sequence["matched"]) == 1 and set(sequence["matched"]) <= set(range(4))
    assert math.isfinite(sequence["semantic"]["coarse_early"]) and sequence["semantic"]["coarse_early"] <= 100
    assert sequence["l2_gap"] >= 0

    # a progress read after a stroke count that stage paint did not keep: one line naming the key
    (tmp_path / "params.yaml").write_text(PAINT_EVALUATE_PARAMS.replace("sequence_strokes: 5", "sequence_strokes: 7"))
    monkeypatch.setattr(sys, "argv", stage_command("evaluate"))
    with pytest.raises(SystemExit) as status:
        runpy.run_path(str(REPO / "stages/evaluate.py"), run_name="__main__")
    assert status.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: params.yaml: evaluate.sequence_strokes = 7")


@pytest.mark.slow
def test_a_dataset_of_datasets_dvc_yaml_is_prepared_painted_and_evaluated_in_its_own_folders(tmp_path, monkeypatch):
    """datasets/dvc.yaml's stages as written, for its sample-scenes item: prepare reads the dataset its
    cmd names (not the `dataset` param), paint makes no pass over other scenes, evaluate names the dataset."""
    (tmp_path / "params.yaml").write_text(PAINT_EVALUATE_PARAMS + "dataset: sample-birds\n")
    make_inputs(tmp_path)  # the agents and the segmenter; its sample-scenes data is what prepare reads
    for name in ("agent_baseline.pt", "agent_semantic.pt"):
        (tmp_path / "models/scenes").mkdir(exist_ok=True)
        (tmp_path / "models" / name).rename(tmp_path / "models/scenes" / name)
    monkeypatch.chdir(tmp_path)
    for stage in ("prepare", "paint", "evaluate"):
        monkeypatch.setattr(sys, "argv", stage_command(f"datasets/dvc.yaml:{stage}@scenes"))
        if stage == "paint":  # Psi's masks and the GBP maps of the prepared scenes (stages train_psi, gbp)
            n = len(pd.read_csv("artifacts/scenes/prepared/index.csv"))
            for name, file in (("psi", "masks.npy"), ("gbp", "maps.npy")):
                Path(f"artifacts/scenes/{name}").mkdir(parents=True)
                np.save(f"artifacts/scenes/{name}/{file}", np.full((n, 32, 32), 0.5, np.float16))
        runpy.run_path(str(REPO / f"stages/{stage}.py"), run_name="__main__")
    assert json.loads(Path("metrics/scenes/data.json").read_text())["dataset"] == "sample-scenes"
    assert sorted(p.name for p in Path("artifacts/scenes/paint").iterdir()) == ["baseline", "semantic"]
    scores = json.loads(Path("metrics/scenes/eval.json").read_text())
    assert scores["dataset"] == "sample-scenes" and "scenes" not in scores and scores["images"] == 15
    for figure in ("compare", "sequence", "segmentation"):
        assert Path(f"figures/scenes/{figure}.png").stat().st_size > 0
    assert Path("metrics/scenes/table1_segmentation.md").read_text().startswith("###")


def test_evaluate_without_paintings_is_a_one_line_error_and_writes_nothing(tmp_path, monkeypatch, capsys):
    (tmp_path / "params.yaml").write_text("canvas: 32\ndevice: cpu\n")
    make_inputs(tmp_path, models=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", stage_command("evaluate"))
    with pytest.raises(SystemExit) as status:
        runpy.run_path(str(REPO / "stages/evaluate.py"), run_name="__main__")
    error = capsys.readouterr().err.strip()
    assert status.value.code == 1
    assert error.startswith("error: artifacts/paint/baseline") and "\n" not in error
    assert not (tmp_path / "metrics").exists()
