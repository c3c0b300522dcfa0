"""Boxes and masks, Psi's heads and loss, model and weights files, the resumable training loop."""
import math
import subprocess
import sys
from functools import partial

import pytest
import torch
import torchvision

from semguide_core.errors import ModelFileError
from semguide_core.align import crop
from semguide_core.semantics.boxes import bbox_iou, bbox_to_mask, mask_iou, mask_to_bbox, paste_boxes
from semguide_core.semantics.efficientnet import B0_STAGES, EfficientNet
from semguide_core.semantics.expert import Expert, load_imagenet_weights
from semguide_core.semantics.model_files import load_model, run_batched, save_model
from semguide_core.semantics.psi import Psi, PsiPredictor, load_psi, psi_loss
from semguide_core.semantics.segmenter import find_pretrained, pretrained_segmenter
from semguide_core.runtime import Checkpoint
from semguide_core.semantics.training import Schedule, fit, jitter_colours, zoom_boxes, zoom_images


# ------------------------------------------------------------------------------------------ boxes
def test_mask_to_bbox_and_back():
    masks = torch.zeros(2, 10, 20)
    masks[0, 2:5, 3:7] = 1  # rows 2..4, columns 3..6
    box = mask_to_bbox(masks)
    assert torch.allclose(box[0], torch.tensor([3 / 20, 2 / 10, 4 / 20, 3 / 10]))
    assert torch.equal(box[1], torch.tensor([0.0, 0.0, 1.0, 1.0]))  # empty mask: whole image
    assert torch.equal(bbox_to_mask(box[:1], 10, 20), masks[:1])


def test_bbox_iou_and_mask_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.2, 0.2]])
    b = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.5, 0.5, 0.2, 0.2]])
    assert torch.allclose(bbox_iou(a, b), torch.tensor([0.0625 / 0.4375, 0.0]))
    p, t = torch.zeros(2, 4, 4), torch.zeros(2, 4, 4)
    p[0, :2] = 1      # 8 pixels
    t[0, :, :2] = 1   # 8 pixels, 4 shared -> 4 / 12
    assert torch.allclose(mask_iou(p, t), torch.tensor([1 / 3, 1.0]))  # two empty masks agree


def test_paste_puts_a_crop_back_into_its_box():
    images = torch.rand(1, 3, 16, 16)
    box = torch.tensor([[4 / 16, 2 / 16, 8 / 16, 8 / 16]])  # columns 4..11, rows 2..9
    cropped = crop(images, box, (8, 8))
    pasted = paste_boxes(cropped, box, 16, 16)
    assert torch.allclose(pasted[:, :, 2:10, 4:12], images[:, :, 2:10, 4:12], atol=1e-6)
    pasted[:, :, 2:10, 4:12] = 0
    assert pasted.abs().max() < 1e-5  # nothing outside the box (up to float rounding at its edge)


# -------------------------------------------------------------------------------------------- Psi
def test_psi_heads_shapes_and_ranges():
    psi = Psi([8, 16, 32])
    for h, w in [(64, 64), (40, 56)]:
        logits, boxes = psi(torch.rand(3, 3, h, w))
        assert logits.shape == (3, 2, h, w) and boxes.shape == (3, 4)
        assert boxes.min() >= 0 and boxes.max() <= 1
    masks, boxes = run_batched(PsiPredictor(psi).eval(), torch.rand(5, 3, 32, 32), batch_size=2)
    assert masks.shape == (5, 1, 32, 32) and 0 <= masks.min() and masks.max() <= 1
    assert (boxes[:, 0] + boxes[:, 2] <= 1 + 1e-6).all() and (boxes[:, 1] + boxes[:, 3] <= 1 + 1e-6).all()


def test_psi_loss_by_hand():
    logits = torch.zeros(2, 2, 4, 4)  # p = 1/2 everywhere: cross-entropy ln 2
    masks = torch.ones(2, 1, 4, 4)
    target = torch.full((2, 4), 0.5)
    loss, l_fg, l_bbox = psi_loss(logits, target, masks, target, bbox_weight=3.0, beta=0.05)
    assert math.isclose(l_fg.item(), math.log(2), rel_tol=1e-6) and l_bbox.item() == 0
    # |error| 0.5 >= beta: Smooth L1 = 0.5 - beta / 2 = 0.475
    loss, l_fg, l_bbox = psi_loss(logits, target + 0.5, masks, target, bbox_weight=3.0, beta=0.05)
    assert math.isclose(l_bbox.item(), 0.475, rel_tol=1e-6)
    assert math.isclose(loss.item(), math.log(2) + 3 * 0.475, rel_tol=1e-6)
    logits[:, 1] = 10.0  # confident foreground on a foreground mask: near-zero cross-entropy
    assert psi_loss(logits, target, masks, target, 1.0, 0.05)[1] < 1e-3


# ------------------------------------------------------------------------------ model / weights files
def test_model_file_round_trip(tmp_path):
    psi = Psi([8, 16])
    save_model(tmp_path / "psi.pt", psi, {"widths": [8, 16]})
    again = load_psi(tmp_path / "psi.pt")
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(psi.eval()(x)[0].softmax(1)[:, 1:], again(x)[0])
    with pytest.raises(ModelFileError, match="nothing.pt: Psi model not found"):
        load_psi(tmp_path / "nothing.pt")
    with pytest.raises(ModelFileError, match="psi.pt"):
        load_model(tmp_path / "psi.pt", lambda widths: Psi([4, 8]), "Psi model")  # shapes differ


@pytest.mark.parametrize("width, depth, stochastic_depth", [(1.0, 1.0, 0.2), (0.5, 0.5, 0.3), (0.25, 0.4, 0.0)])
def test_efficientnet_is_torchvisions_layer_for_layer(width, depth, stochastic_depth):
    """Same seed, same weights under the same names (and module metadata: a model file saves to the same
    bytes); same outputs and gradients, in training (dropout and stochastic depth drawing the same numbers)
    and in evaluation."""
    from torchvision.models.efficientnet import EfficientNet as Reference, MBConvConfig

    stage = partial(MBConvConfig, width_mult=width, depth_mult=depth)
    torch.manual_seed(3)
    reference = Reference([stage(*s) for s in B0_STAGES], 0.2, stochastic_depth_prob=stochastic_depth, num_classes=7)
    torch.manual_seed(3)
    ours = EfficientNet(7, width, depth, 0.2, stochastic_depth)
    expected, got = reference.state_dict(), ours.state_dict()
    assert list(got) == list(expected) and got._metadata == expected._metadata
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    x = torch.rand(3, 3, 64, 64)
    for model in (reference, ours):
        torch.manual_seed(5)
        model.train()(x).square().sum().backward()
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(reference.parameters(), ours.parameters()))
    assert torch.equal(reference.eval()(x), ours.eval()(x))


def test_painting_with_the_semantic_agent_imports_neither_torchvision_nor_dvclive():
    """`semguide paint`'s start-up: torchvision (1.3 s: it imports torch._dynamo) and DVCLive (0.4 s) are
    for the training stages only."""
    code = ("import sys, semguide_core.cli, semguide_core.paint, semguide_core.semantics.expert, "
            "semguide_core.semantics.psi; print(sorted({'torchvision', 'dvclive'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_expert_loads_a_local_efficientnet_b0_state_dict(tmp_path):
    reference = torchvision.models.efficientnet_b0(weights=None)  # 1000 ImageNet classes
    torch.save(reference.state_dict(), tmp_path / "b0.pth")
    expert = Expert(n_classes=7)
    load_imagenet_weights(expert, tmp_path / "b0.pth")
    assert torch.equal(expert.net.features[0][0].weight, reference.features[0][0].weight)
    assert expert.net.classifier[1].out_features == 7
    with pytest.raises(ModelFileError, match="b0.pth.*do not match"):
        load_imagenet_weights(Expert(n_classes=7, width_mult=0.5), tmp_path / "b0.pth")
    with pytest.raises(ModelFileError, match="missing.pth: .*not found"):
        load_imagenet_weights(expert, tmp_path / "missing.pth")


def test_segmenter_loads_a_local_voc_state_dict_and_maps_bird_and_car(tmp_path):
    voc = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True)  # like torchvision's file
    torch.save(voc.state_dict(), tmp_path / "voc.pth")
    segmenter = pretrained_segmenter("mobilenet_v3_large", tmp_path / "voc.pth", ["bird", "car"], 64)
    assert segmenter.foreground == [3, 7]
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        probs = segmenter.logits(x).softmax(1)
        assert torch.allclose(segmenter(x), torch.nn.functional.interpolate(
            probs[:, [3]] + probs[:, [7]], size=(40, 40), mode="bilinear"), atol=1e-6)
    torch.save({"classifier.4.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(ModelFileError, match="wrong.pth.*do not match"):
        pretrained_segmenter("mobilenet_v3_large", tmp_path / "wrong.pth", ["bird"], 64)


# ---------------------------------------------------------------------------------- training loop
def _toy_run(tmp_path, steps, fail_at=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    def sample(generator):
        return torch.randn(8, 3, generator=generator)
    def loss_fn(m, x):
        if fail_at is not None and loss_fn.calls == fail_at:
            raise KeyboardInterrupt  # a kill in the middle of training
        loss_fn.calls += 1
        loss = (m(x) - x.sum(1, keepdim=True)).pow(2).mean()
        return loss, {"loss": loss.item()}
    loss_fn.calls = 0
    schedule = Schedule(steps=steps, lr=0.05, checkpoint_every=3, seed=1, log_every=2)
    fit(model, loss_fn, sample, schedule, Checkpoint(tmp_path / "ckpt.pt", "run-1"), tmp_path / "live", "toy")
    return model, loss_fn.calls


def test_training_resumes_after_a_kill_and_matches_an_uninterrupted_run(tmp_path):
    straight, _ = _toy_run(tmp_path / "a", 8)
    with pytest.raises(KeyboardInterrupt):
        _toy_run(tmp_path / "b", 8, fail_at=7)
    assert (tmp_path / "b" / "ckpt.pt").is_file()
    resumed, calls = _toy_run(tmp_path / "b", 8)
    assert calls == 2  # steps 6 and 7 only
    assert torch.allclose(resumed.weight, straight.weight)
    _, calls = _toy_run(tmp_path / "b", 8)
    assert calls == 0  # finished and checkpointed: a rerun (e.g. after a failure writing outputs) skips training


def test_find_pretrained_looks_in_torchvision_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert find_pretrained("mobilenet_v3_large", "auto") is None  # nothing cached: train instead
    cached = tmp_path / "checkpoints" / "deeplabv3_mobilenet_v3_large-fc3c493d.pth"
    cached.parent.mkdir()
    cached.write_bytes(b"")
    assert find_pretrained("mobilenet_v3_large", "auto") == cached
    assert find_pretrained("resnet101", "auto") is None
    assert find_pretrained("resnet101", "none") is None
    with pytest.raises(ModelFileError, match="nowhere.pth: segmenter weights file not found"):
        find_pretrained("resnet101", "nowhere.pth")


def test_zoomed_masks_have_the_zoomed_box():
    """Psi's augmentation moves the image, the mask and the box together: the box of the zoomed mask is the
    zoomed box (to a pixel), and zoom 1 with no shift changes nothing."""
    masks = torch.zeros(3, 1, 32, 32)
    masks[:, :, 8:20, 4:16] = 1                                  # box (4/32, 8/32, 12/32, 12/32)
    boxes = torch.tensor([[4 / 32, 8 / 32, 12 / 32, 12 / 32]]).repeat(3, 1)
    scale = torch.tensor([1.0, 1.25, 0.75])
    offset = torch.tensor([[0.0, 0.0], [0.1, -0.05], [-0.2, 0.25]])
    zoomed = (zoom_images(masks, scale, offset, "zeros") > 0.5).float()
    assert torch.equal(zoomed[0], masks[0])
    expected = zoom_boxes(boxes, scale, offset)
    assert torch.allclose(mask_to_bbox(zoomed[:, 0]), expected, atol=1 / 32 + 1e-6)
    # by hand: scale 1.25 about the centre, then +0.1 in x: x0 = 0.5 + 1.25 (4/32 - 0.5) + 0.1 = 0.13125
    assert expected[1].tolist() == pytest.approx([0.13125, 0.5 + 1.25 * (8 / 32 - 0.5) - 0.05, 0.46875, 0.46875])


def test_zoomed_boxes_are_clipped_to_the_image():
    box = zoom_boxes(torch.tensor([[0.6, 0.6, 0.3, 0.3]]), torch.tensor([1.0]), torch.tensor([[0.25, -0.7]]))
    assert box[0].tolist() == pytest.approx([0.85, 0.0, 0.15, 0.2])


def test_colour_jitter_stays_in_range_and_zero_strength_is_identity():
    images = torch.rand(4, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(jitter_colours(gen, images, 0.0), images)
    jittered = jitter_colours(gen, images, 0.5)
    assert 0 <= jittered.min() and jittered.max() <= 1 and not torch.equal(jittered, images)
