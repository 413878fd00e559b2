"""Localisation metrics of explanation maps: the pointing game, the grid pointing game and the face focus.

Pointing game (our two-class variant): 2 x 2 mosaics of correctly classified faces, two of each class
in random cells; the model sees the whole mosaic (twice the input size; every registered model pools
adaptively, so it accepts it) and the score of a class's map is the share of its positive attribution
that falls in that class's cells. Chance is 0.5, a perfect explanation scores 1.

Grid pointing game, the localisation metric of the B-cos papers (Böhle, Fritz, Schiele, "B-cos
Networks", CVPR 2022; "B-cos Alignment for Inherently Interpretable CNNs and Vision Transformers",
TPAMI 2024; Arya et al., "B-cosification", NeurIPS 2024): an n x n grid of images of different
classes, the class of one cell explained on the whole grid, scored by the share of positive attribution
inside that cell. With two classes: ONE correctly classified face of the target class in a random cell,
the other n * n - 1 cells correctly classified faces of the other class; half the grids target each
class. Chance is 1 / n^2 (0.25 for 2 x 2), a perfect explanation scores 1. Both games tile model inputs
(normalisation and the B-cos encoding act per pixel, so tiling commutes with them).

Face focus: the share of positive attribution inside the inner face (eyes, nose, mouth) rather than
on hair, ears, background or clothing. UTKFace's "aligned & cropped" faces put the features at fixed
relative positions, so ``FACE_BOX`` is a fixed box, left 0.17, top 0.17, right 0.80, bottom 0.85,
calibrated with OpenCV's Haar eye and smile cascades (per image the box spanning both eyes and the
mouth, the rule of ``detect_face_boxes``). ``benchmarks/calibrate_face_box.py`` reproduces it: on
every 10th file of the archive (2,371 faces) the cascades find both eyes and the mouth in 1,932
(81.5 %); the median box of those detections alone (fallbacks excluded) is 0.175, 0.175, 0.79, 0.845,
inter-quartile ranges 0.03-0.035 wide. That is within 2 px of 200 of ``FACE_BOX`` on every edge; the
constant is kept, as at the 40 and 64 px model inputs both boxes give the same mask. A uniform map
scores the box's area, 0.43. ``detect_face_boxes`` repeats the detection per image, falling back to
``FACE_BOX``; ``return_found=True`` also returns which faces were real detections.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import numpy as np
import torch

__all__ = ["FACE_BOX", "Mosaics", "make_mosaics", "pointing_game_score", "TargetGrids", "make_target_grids",
           "grid_pointing_game_score", "face_box_mask", "face_focus", "detect_face_boxes"]

# left, top, right, bottom (relative); reproduced by benchmarks/calibrate_face_box.py (see the module docstring)
FACE_BOX: tuple[float, float, float, float] = (0.17, 0.17, 0.80, 0.85)


class Mosaics(NamedTuple):
    """``images`` (M, C, 2H, 2W); ``layout`` (M, 2, 2) class of each cell; ``sources`` (M, 2, 2) image indices."""

    images: torch.Tensor
    layout: torch.Tensor
    sources: torch.Tensor


class TargetGrids(NamedTuple):
    """``images`` (M, C, nH, nW); ``target_cell`` (M,) flat index (row * n + column) of the one target-class
    face; ``target_class`` (M,); ``sources`` (M, n, n) image indices (all int64)."""

    images: torch.Tensor
    target_cell: torch.Tensor
    target_class: torch.Tensor
    sources: torch.Tensor


def _usable_pools(images: torch.Tensor, labels: torch.Tensor | np.ndarray, predicted: torch.Tensor | np.ndarray | None,
                  classes: Sequence[int]) -> list[np.ndarray]:
    """Indices of the (correctly classified, if ``predicted`` is given) images of each class."""
    labels = torch.as_tensor(np.asarray(labels)).long().cpu()
    if labels.shape != (images.shape[0],):
        raise ValueError(f"need one label per image ({images.shape[0]}), got shape {tuple(labels.shape)}")
    usable = torch.ones_like(labels, dtype=torch.bool)
    if predicted is not None:
        usable = torch.as_tensor(np.asarray(predicted)).long().cpu() == labels
    return [torch.nonzero(usable & (labels == label)).flatten().numpy() for label in classes]


def _tile(images: torch.Tensor, sources: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Tile ``images`` (N, C, H, W) by ``sources`` (M, n, n) indices into (M, C, nH, nW); also the sources tensor."""
    sources_t = torch.from_numpy(sources)
    count, rows, columns = sources.shape
    tiles = images[sources_t.flatten().to(images.device)].unflatten(0, (count, rows, columns))  # (M, n, n, C, H, W)
    return tiles.permute(0, 3, 1, 4, 2, 5).flatten(4, 5).flatten(2, 3).contiguous(), sources_t


def make_mosaics(images: torch.Tensor, labels: torch.Tensor | np.ndarray, count: int, seed: int = 0,
                 predicted: torch.Tensor | np.ndarray | None = None, classes: Sequence[int] = (0, 1)) -> Mosaics:
    """``count`` 2 x 2 mosaics of ``images`` (N, C, H, W), each with two faces of each of the two ``classes``.

    Cells are shuffled per mosaic; faces within a mosaic are distinct. Pass the model's ``predicted``
    classes to draw only correctly classified faces (as the pointing game requires). ValueError for
    other than two classes, a label count unlike the image count, or fewer than two usable faces of a class.
    """
    if len(classes) != 2:
        raise ValueError(f"the 2 x 2 mosaic holds two faces of each of two classes, got classes {classes}")
    pools = _usable_pools(images, labels, predicted, classes)
    for label, pool in zip(classes, pools):
        if len(pool) < 2:
            raise ValueError(f"need at least two (correctly classified) faces of class {label}, found {len(pool)}")
    rng = np.random.default_rng(seed)
    layout = np.empty((count, 2, 2), dtype=np.int64)
    sources = np.empty((count, 2, 2), dtype=np.int64)
    for index in range(count):
        cells = rng.permutation([classes[0], classes[0], classes[1], classes[1]])
        picks = {label: list(rng.choice(pool, size=2, replace=False)) for label, pool in zip(classes, pools)}
        layout[index] = cells.reshape(2, 2)
        sources[index] = np.array([picks[label].pop() for label in cells]).reshape(2, 2)
    mosaics, sources_t = _tile(images, sources)
    return Mosaics(mosaics, torch.from_numpy(layout), sources_t)


def _check_grid(grid: int) -> int:
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
        raise ValueError(f"grid must be an integer >= 2 (cells per side), got {grid!r}")
    return int(grid)


def make_target_grids(images: torch.Tensor, labels: torch.Tensor | np.ndarray, count: int, grid: int = 2,
                      seed: int = 0, predicted: torch.Tensor | np.ndarray | None = None,
                      classes: Sequence[int] = (0, 1)) -> TargetGrids:
    """``count`` grid x grid grids of ``images`` (N, C, H, W) for the grid pointing game (localisation metric).

    Grid ``i`` targets ``classes[i % 2]`` (half the grids each): one face of that class in a random cell,
    distinct faces of the other class in the other ``grid * grid - 1`` cells. Pass the model's
    ``predicted`` classes to draw only correctly classified faces, as the metric requires. ValueError for
    ``grid`` < 2, images not 4-D, a negative ``count``, other than two classes, a label count unlike the image count, or
    too few usable faces of a class (one per targeted class, ``grid * grid - 1`` of the other).
    """
    grid = _check_grid(grid)
    cells = grid * grid
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    if len(classes) != 2:
        raise ValueError(f"the grid pointing game takes two classes, got classes {classes}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    pools = _usable_pools(images, labels, predicted, classes)
    targeted = [side for side in (0, 1) if side < count]  # grid i targets classes[i % 2]
    for side, (label, pool) in enumerate(zip(classes, pools)):
        needed = max(1 if side in targeted else 0, cells - 1 if 1 - side in targeted else 0)
        if len(pool) < needed:
            raise ValueError(f"a {grid} x {grid} grid needs at least {needed} (correctly classified) faces of class "
                             f"{label}, found {len(pool)}")
    rng = np.random.default_rng(seed)
    target_side = np.arange(count) % 2
    target_cell = rng.integers(0, cells, size=count)
    sources = np.empty((count, cells), dtype=np.int64)
    for index, (side, cell) in enumerate(zip(target_side, target_cell)):
        sources[index, np.arange(cells) != cell] = rng.choice(pools[1 - side], size=cells - 1, replace=False)
        sources[index, cell] = rng.choice(pools[side])
    tiled, sources_t = _tile(images, sources.reshape(count, grid, grid))
    return TargetGrids(tiled, torch.from_numpy(target_cell.astype(np.int64)),
                       torch.as_tensor(np.asarray(classes, dtype=np.int64)[target_side]), sources_t)


def _cell_sums(positive: torch.Tensor, grid: int = 2) -> torch.Tensor:
    count, height, width = positive.shape
    if height % grid or width % grid:
        raise ValueError(f"a {grid} x {grid} grid map needs height and width divisible by {grid}, got {height} x {width}")
    return positive.reshape(count, grid, height // grid, grid, width // grid).sum(dim=(2, 4))  # (M, n, n)


def _share(inside: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    return torch.where(total > 0, inside / total.clamp(min=1e-300), torch.full_like(total, float("nan")))


def pointing_game_score(maps: torch.Tensor, layout: torch.Tensor, target_class: int | torch.Tensor) -> torch.Tensor:
    """Share of the positive attribution of each mosaic's map that lies in the cells of ``target_class``.

    ``maps`` (M, 2H, 2W) or one (2H, 2W) map, ``layout`` (M, 2, 2) or (2, 2), ``target_class`` one class
    or one per mosaic. NaN where a map has no positive attribution.
    """
    single = maps.dim() == 2
    maps, layout = (maps[None], layout[None]) if single else (maps, layout)
    positive = maps.detach().double().clamp(min=0)
    sums = _cell_sums(positive)
    target = torch.as_tensor(target_class, device=sums.device).long().reshape(-1, 1, 1)
    inside = (sums * (layout.to(sums.device) == target)).sum(dim=(1, 2))
    score = _share(inside, sums.sum(dim=(1, 2)))
    return score[0] if single else score


def grid_pointing_game_score(maps: torch.Tensor, target_cells: int | torch.Tensor | np.ndarray,
                             grid: int = 2) -> torch.Tensor:
    """Grid pointing game: share of each map's positive attribution inside its target cell, float64 (M,).

    ``maps`` (M, nH, nW) explanations of the target class on whole grids (or one (nH, nW) map, giving a
    0-d result), ``target_cells`` flat cell indices row * n + column, one per map (or one for all).
    Chance 1 / n^2; NaN where a map has no positive attribution. ValueError for ``grid`` < 2, maps not
    2- or 3-D, sides not divisible by ``grid``, a cell count unlike the map count, or cells outside the grid.
    """
    grid = _check_grid(grid)
    if maps.dim() not in (2, 3):
        raise ValueError(f"expected maps of shape (M, nH, nW) or (nH, nW), got {tuple(maps.shape)}")
    single = maps.dim() == 2
    sums = _cell_sums(maps.detach().double().clamp(min=0)[None] if single else maps.detach().double().clamp(min=0),
                      grid).flatten(1)  # (M, n * n)
    cells = torch.as_tensor(np.asarray(target_cells.cpu() if isinstance(target_cells, torch.Tensor) else target_cells),
                            dtype=torch.long).reshape(-1).to(sums.device)
    if cells.numel() == 1:
        cells = cells.expand(len(sums))
    if cells.shape != (len(sums),):
        raise ValueError(f"need one target cell per map ({len(sums)}), got {cells.numel()}")
    if bool(((cells < 0) | (cells >= grid * grid)).any()):
        raise ValueError(f"target cells must lie in 0..{grid * grid - 1} for a {grid} x {grid} grid, got {cells.tolist()}")
    score = _share(sums.gather(1, cells[:, None]).squeeze(1), sums.sum(dim=1))
    return score[0] if single else score


def face_box_mask(height: int, width: int, box: Sequence[float] = FACE_BOX) -> torch.Tensor:
    """Boolean (H, W) mask of the pixels whose centres lie in the relative ``box`` (left, top, right, bottom)."""
    left, top, right, bottom = box
    if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
        raise ValueError(f"box must be (left, top, right, bottom) with 0 <= left < right <= 1 and likewise, not {box}")
    rows = (torch.arange(height) + 0.5) / height
    columns = (torch.arange(width) + 0.5) / width
    return ((rows >= top) & (rows < bottom))[:, None] & ((columns >= left) & (columns < right))[None, :]


def face_focus(maps: torch.Tensor, boxes: Sequence[float] | torch.Tensor | np.ndarray = FACE_BOX) -> torch.Tensor:
    """Share of each map's positive attribution inside the inner-face box, (N,); NaN for maps with none.

    ``boxes``: one relative box for all maps, or one per map (N, 4), e.g. from ``detect_face_boxes``.
    """
    count, height, width = maps.shape
    boxes_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes_array) not in (1, count):
        raise ValueError(f"need one box or one per map ({count}), got {len(boxes_array)}")
    masks = torch.stack([face_box_mask(height, width, tuple(box)) for box in boxes_array]).to(maps.device)
    positive = maps.detach().double().clamp(min=0)
    total = positive.sum(dim=(1, 2))
    inside = (positive * masks).sum(dim=(1, 2))
    return torch.where(total > 0, inside / total.clamp(min=1e-300), torch.full_like(total, float("nan")))


def _detect_one(gray: np.ndarray, eye_detector, mouth_detector) -> tuple[float, float, float, float] | None:
    height, width = gray.shape
    eyes = eye_detector.detectMultiScale(gray[: int(0.55 * height)], 1.1, 6, minSize=(width // 12, width // 12),
                                         maxSize=(width * 3 // 10, width * 3 // 10))
    left = [eye for eye in eyes if eye[0] + eye[2] / 2 < width / 2]
    right = [eye for eye in eyes if eye[0] + eye[2] / 2 >= width / 2]
    mouths = mouth_detector.detectMultiScale(gray[height // 2:], 1.1, 20, minSize=(width // 5, width // 10))
    if not (left and right and len(mouths)):
        return None
    left_eye, right_eye = (max(group, key=lambda box: box[2] * box[3]) for group in (left, right))
    mouth = max(mouths, key=lambda box: box[2] * box[3])
    mouth_top = mouth[1] + height // 2
    return (min(left_eye[0], mouth[0]) / width, min(left_eye[1], right_eye[1]) / height,
            max(right_eye[0] + right_eye[2], mouth[0] + mouth[2]) / width, (mouth_top + mouth[3]) / height)


def detect_face_boxes(images: np.ndarray, fallback: Sequence[float] = FACE_BOX,
                      return_found: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Per-image inner-face boxes (N, 4) from OpenCV's Haar eye and smile cascades on uint8 (N, H, W, 3) faces.

    The box spans both eyes and the mouth (the same rule that calibrated ``FACE_BOX``). Detection needs
    about 100 px or more: use the original faces, not 48 px model inputs. Faces without two eyes and a
    mouth get ``fallback``, with one warning giving their number. With ``return_found=True`` the result
    is ``(boxes, found)``, ``found`` a boolean (N,) mask of the real detections, and nothing is warned.
    """
    import cv2

    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    eye_detector = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
    mouth_detector = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_smile.xml")
    boxes, found = [], []
    for image in images:
        box = _detect_one(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY), eye_detector, mouth_detector)
        found.append(box is not None)
        boxes.append(fallback if box is None else box)
    boxes_array, found_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(found, dtype=bool)
    if return_found:
        return boxes_array, found_array
    missed = int((~found_array).sum())
    if missed:
        warnings.warn(f"no eyes and mouth found in {missed} of {len(images)} faces; used the fixed box {tuple(fallback)}",
                      stacklevel=2)
    return boxes_array
