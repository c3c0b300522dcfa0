"""Neural alignment Omega: Eq. 11 / Eq. 21 and the differentiable crop."""
import torch

from semguide_core import align


def test_crop_of_integer_bbox_equals_slicing():
    image = torch.rand(2, 4, 16, 20)
    x, y, w, h = 3, 5, 8, 6  # pixels
    bbox = torch.tensor([[x / 20, y / 16, w / 20, h / 16]]).expand(2, 4)
    out = align.crop(image, bbox, size=(h, w))
    assert torch.allclose(out, image[:, :, y:y + h, x:x + w], atol=1e-5)


def test_default_crop_is_canvas_sized_and_full_bbox_is_identity():
    image = torch.rand(1, 3, 12, 12)
    assert torch.allclose(align.crop(image, torch.tensor([[0.0, 0.0, 1.0, 1.0]])), image, atol=1e-5)
    assert align.crop(image, torch.tensor([[0.25, 0.25, 0.5, 0.5]])).shape == (1, 3, 12, 12)


def test_eq11_and_eq21_describe_the_same_zoom():
    bbox = torch.tensor([[0.2, 0.1, 0.5, 0.4]])
    H, W = 40, 60
    x, y, w, h = bbox[0].tolist()                 # Eq. 11: input pixel -> output pixel, x_out = W / w_b (x_in - x_b)
    A = torch.tensor([[1 / w, 0.0, -W * x / w], [0.0, 1 / h, -H * y / h]])
    theta = align.bbox_to_theta(bbox)[0]          # output normalised -> input normalised
    x_in, y_in = 30.0, 12.0                       # a pixel coordinate inside the box
    x_out, y_out = (A @ torch.tensor([x_in, y_in, 1.0])).tolist()
    assert 0 <= x_out <= W and 0 <= y_out <= H
    u = torch.tensor([2 * x_out / W - 1, 2 * y_out / H - 1, 1.0])
    back = theta @ u
    assert torch.allclose(back, torch.tensor([2 * x_in / W - 1, 2 * y_in / H - 1]), atol=1e-5)
    # the box's corners map to the corners of the output
    corner = A @ torch.tensor([0.2 * W, 0.1 * H, 1.0])
    assert torch.allclose(corner, torch.zeros(2), atol=1e-4)


def test_crop_is_differentiable():
    image = torch.rand(1, 3, 8, 8, requires_grad=True)
    align.crop(image, torch.tensor([[0.25, 0.25, 0.5, 0.5]])).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
