"""Moved copies of images, for the invariance term (elbo.assignment_agreement; docs/gmvae.md,
section 10).

A digit moved a pixel or two is the same digit. ``shift_images`` moves each image of a batch by its own
whole number of pixels, filling the uncovered border with zeros, on whichever backend holds the batch,
with one gather and no loop over images.
"""
from __future__ import annotations

import autograd_lite as ag
from autograd_lite import Tensor

__all__ = ["shift_images", "draw_shifts"]


def draw_shifts(generator, n: int, max_shift: int):
    """n pairs (dy, dx) of whole numbers, each uniform in -max_shift..max_shift, drawn from ``generator``
    (an autograd_lite Generator) on its backend: an int64 array of shape (n, 2)."""
    xp = generator.backend.xp
    u = generator.uniform((n, 2), dtype="float64")
    steps = xp.floor(u * (2 * max_shift + 1))
    return xp.astype(xp.clip(steps, 0, 2 * max_shift), xp.int64) - max_shift


def shift_images(images: Tensor, shifts, image_shape: tuple) -> Tensor:
    """Each image moved by its shift: images a Tensor (B, D) or (B, *image_shape), D = prod(image_shape),
    image_shape (C, H, W); shifts (B, 2) whole numbers (dy, dx) on the images' backend, down and right
    positive. Returns a Tensor of the input's shape; a pixel moved out of the image is dropped, a pixel
    moved in is 0.

    Output pixel (b, c, h, w) reads input pixel (b, c, h - dy_b, w - dx_b) when that lies inside the
    image: one ``take`` on the flattened batch, times a mask of zeros where it does not. The move is
    linear in the images and stays in the graph, so a gradient check through it holds (in training the
    images are data and no gradient flows back to them).
    """
    backend = images.backend
    xp, device = backend.xp, backend.device
    C, H, W = (int(n) for n in image_shape)
    B = images.shape[0]
    rows = xp.arange(H, device=device)[None, :] - shifts[:, 0:1]      # (B, H): the row each row reads
    cols = xp.arange(W, device=device)[None, :] - shifts[:, 1:2]      # (B, W)
    inside = xp.astype((rows >= 0) & (rows < H), images.dtype)[:, None, :, None] \
        * xp.astype((cols >= 0) & (cols < W), images.dtype)[:, None, None, :]          # (B, 1, H, W)
    rows, cols = xp.clip(rows, 0, H - 1), xp.clip(cols, 0, W - 1)
    b = xp.reshape(xp.arange(B, device=device), (B, 1, 1, 1))
    c = xp.reshape(xp.arange(C, device=device), (1, C, 1, 1))
    index = ((b * C + c) * H + rows[:, None, :, None]) * W + cols[:, None, None, :]   # (B, C, H, W)
    moved = ag.take(ag.reshape(images, (B * C * H * W,)), xp.reshape(index, (-1,)))
    return ag.reshape(ag.reshape(moved, (B, C, H, W)) * Tensor(inside, backend), images.shape)
