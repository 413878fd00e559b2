"""A small generated stand-in for the UTKFace archive, for running the notebooks where the real one is absent.

``make_utkface_archive`` writes a ``.tar.gz`` laid out like the real ``UTKFace.tar.gz``: one top folder
``UTKFace/`` of 200x200 JPEG files named ``{age}_{gender}_{race}_{YYYYMMDDHHMMSSmmm}.jpg.chip.jpg``
(gender 0 male, 1 female; race 0-4). No real photo is used: each image is a drawn cartoon face (a
skin-toned ellipse with eyes, nose and mouth, hair and shoulders) on a random smooth background, so
every file has its own bytes and its own difference hash (the manifest's duplicate checks keep them
all). Hair length and lip colour follow the gender label in most images (not all), so tiny models can
learn something, but not everything. Ages, races and genders are balanced so every age band and every
race x gender group has members.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["FIXTURE_FACES", "FAIRFACE_AGES", "FAIRFACE_RACES", "CELEBA_ATTRIBUTES", "make_utkface_archive",
           "make_fairface_folder", "make_celeba_folder",
           "synthetic_face"]

FIXTURE_FACES = 600  # files in the default archive (fewer than the smoke profile's LIMIT of 800)
SIZE = 200
# FairFace's label values (Kärkkäinen and Joo, WACV 2021): nine age groups and seven race groups
FAIRFACE_AGES = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
FAIRFACE_AGE_RANGES = ((1, 2), (3, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 90))
FAIRFACE_RACES = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern")
FAIRFACE_SKIN = (0, 1, 4, 2, 2, 3, 4)
CELEBA_ATTRIBUTES = ("Eyeglasses", "Male", "Pale_Skin", "Smiling", "Wearing_Lipstick", "Young")  # a subset of its 40  # the SKIN tone (by UTKFace race code) drawn for each FairFace race
# (low, high) ages of each UTKFace age band (nbhelpers.data.datasets.utkface.AGE_BANDS), within 1-90
AGE_RANGES = ((1, 2), (3, 9), (10, 19), (20, 39), (40, 59), (60, 90))
# a base skin tone per UTKFace race code (White, Black, Asian, Indian, Others)
SKIN = ((236, 200, 175), (120, 80, 55), (230, 195, 150), (175, 125, 90), (200, 155, 120))
HAIR = ((30, 25, 20), (90, 60, 35), (200, 170, 100), (150, 70, 35), (60, 45, 35))
GREY_HAIR = (175, 175, 175)
TYPICAL = 0.8  # share of images whose hair and lips follow their gender label


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], spread: int) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in colour)


def synthetic_face(rng: np.random.Generator, gender: int, race: int, age: int) -> Image.Image:
    """A 200x200 cartoon face; ``gender`` 1 (female) leans to long hair and red lips, 0 (male) to short hair."""
    low = rng.integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
    background = np.asarray(Image.fromarray(low).resize((SIZE, SIZE), Image.Resampling.BICUBIC), dtype=np.int16)
    background = background + rng.normal(0, 6, size=background.shape).astype(np.int16)
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)

    feminine = bool(gender == 1) == bool(rng.random() < TYPICAL)
    scale = 0.85 if age < 10 else 1.0
    cx, cy = 100 + int(rng.integers(-10, 11)), 102 + int(rng.integers(-8, 9))
    half_w = int(rng.integers(40, 50) * scale)
    half_h = int(half_w * rng.uniform(1.2, 1.35))
    skin = _jitter(rng, SKIN[race], 18)
    hair = GREY_HAIR if age >= 60 and rng.random() < 0.7 else HAIR[int(rng.integers(len(HAIR)))]
    hair = _jitter(rng, hair, 12)
    clothes = tuple(int(v) for v in rng.integers(0, 256, 3))

    draw.ellipse((cx - 95, cy + half_h - 10, cx + 95, cy + half_h + 120), fill=clothes)  # shoulders
    draw.rectangle((cx - half_w // 3, cy + half_h - 25, cx + half_w // 3, cy + half_h + 15), fill=skin)  # neck
    if feminine:  # long hair, falling behind the face to the shoulders
        draw.ellipse((cx - half_w - 16, cy - half_h - 14, cx + half_w + 16, cy + half_h + 10), fill=hair)
        draw.rectangle((cx - half_w - 16, cy, cx + half_w + 16, cy + half_h + 45), fill=hair)
    draw.ellipse((cx - half_w, cy - half_h, cx + half_w, cy + half_h), fill=skin)
    if not feminine:  # short hair: a cap over the top of the head
        draw.chord((cx - half_w - 3, cy - half_h - 8, cx + half_w + 3, cy + int(half_h * 0.1)), 180, 360, fill=hair)
    else:  # a fringe
        draw.chord((cx - half_w, cy - half_h - 2, cx + half_w, cy - int(half_h * 0.3)), 180, 360, fill=hair)

    eye_y, eye_dx = cy - int(half_h * 0.12), int(half_w * 0.42)
    eye_w, eye_h = max(5, half_w // 6), max(3, half_w // 10)
    iris = _jitter(rng, (60, 45, 30), 30)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        draw.ellipse((ex - eye_w, eye_y - eye_h, ex + eye_w, eye_y + eye_h), fill=(245, 245, 245))
        draw.ellipse((ex - eye_h, eye_y - eye_h, ex + eye_h, eye_y + eye_h), fill=iris)
        draw.line((ex - eye_w, eye_y - eye_h - 6, ex + eye_w, eye_y - eye_h - 7), fill=hair, width=3)  # brow
    shade = tuple(int(c * 0.75) for c in skin)
    draw.line((cx, eye_y + 6, cx - 4, cy + int(half_h * 0.3), cx + 3, cy + int(half_h * 0.32)), fill=shade, width=2)
    mouth_y, mouth_w = cy + int(half_h * 0.55), int(half_w * rng.uniform(0.3, 0.45))
    lips = _jitter(rng, (190, 40, 60), 20) if feminine else tuple(int(c * 0.6) for c in skin)
    draw.ellipse((cx - mouth_w, mouth_y - 4, cx + mouth_w, mouth_y + 4), fill=lips)
    if not feminine and age >= 20 and rng.random() < 0.3:  # stubble
        draw.chord((cx - half_w + 6, cy + int(half_h * 0.2), cx + half_w - 6, cy + half_h), 0, 180,
                   outline=tuple(int(c * 0.8) for c in hair), width=6)
    return image.filter(ImageFilter.GaussianBlur(0.8))


def make_utkface_archive(path: Path, count: int = FIXTURE_FACES, seed: int = 0) -> Path:
    """Write ``count`` synthetic faces as a UTKFace-style ``.tar.gz`` at ``path``; return ``path``.

    Labels cycle over gender x race x age band, so any ``count`` >= 60 covers every group; ages are
    drawn within each band (1-90). Everything (names, pixels, archive bytes) depends only on ``seed``.
    """
    from nbhelpers.data.images import difference_hash

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = datetime(2017, 1, 1, 9, 0, 0)
    seen_bytes, seen_hashes, members = set(), set(), []
    for index in range(count):
        gender, race, band = index % 2, (index // 2) % 5, (index // 10) % len(AGE_RANGES)
        age = int(rng.integers(AGE_RANGES[band][0], AGE_RANGES[band][1] + 1))
        while True:  # redraw on the (unlikely) event of a duplicate, so that every file is kept
            image = synthetic_face(rng, gender, race, age)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            content = buffer.getvalue()
            dhash = difference_hash(Image.open(io.BytesIO(content)).convert("RGB"))  # as the manifest decodes it
            if content not in seen_bytes and dhash not in seen_hashes:
                break
        seen_bytes.add(content)
        seen_hashes.add(dhash)
        stamp = start + timedelta(seconds=int(index) * 37, milliseconds=int(rng.integers(1000)))
        stamp_text = stamp.strftime("%Y%m%d%H%M%S") + f"{stamp.microsecond // 1000:03d}"
        members.append((f"{age}_{gender}_{race}_{stamp_text}.jpg.chip.jpg", content))

    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w") as bundle:
        folder = tarfile.TarInfo("UTKFace")
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, 1_484_000_000
        bundle.addfile(folder)
        for name, content in members:
            info = tarfile.TarInfo(f"UTKFace/{name}")
            info.size, info.mode, info.mtime = len(content), 0o644, 1_484_000_000
            bundle.addfile(info, io.BytesIO(content))
    return path


def make_fairface_folder(root: Path, count: int = FIXTURE_FACES, seed: int = 0, size: int = 224) -> Path:
    """Write ``count`` synthetic faces laid out like the FairFace release at ``root``; return ``root``.

    FairFace (padding 0.25 release): ``train/N.jpg`` and ``val/N.jpg`` (224x224 JPEG), with
    ``fairface_label_train.csv`` and ``fairface_label_val.csv`` holding ``file,age,gender,race,service_test``
    (gender ``Male``/``Female``; FairFace's nine age groups and seven races). Every fifth face goes to val.
    Labels cycle over gender x race x age group, so every group has members; everything depends only on ``seed``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows: dict[str, list[str]] = {"train": [], "val": []}
    for index in range(count):
        gender, race, band = index % 2, (index // 2) % len(FAIRFACE_RACES), (index // 14) % len(FAIRFACE_AGES)
        age = int(rng.integers(FAIRFACE_AGE_RANGES[band][0], FAIRFACE_AGE_RANGES[band][1] + 1))
        image = synthetic_face(rng, gender, FAIRFACE_SKIN[race], age).resize((size, size), Image.Resampling.BICUBIC)
        part = "val" if index % 5 == 4 else "train"
        name = f"{part}/{len(rows[part]) + 1}.jpg"
        (root / part).mkdir(parents=True, exist_ok=True)
        image.save(root / name, format="JPEG", quality=90)
        rows[part].append(f"{name},{FAIRFACE_AGES[band]},{('Male', 'Female')[gender]},{FAIRFACE_RACES[race]},True")
    for part, lines in rows.items():
        header = "file,age,gender,race,service_test\n"
        (root / f"fairface_label_{part}.csv").write_text(header + "\n".join(lines) + "\n")
    return root


def make_celeba_folder(root: Path, count: int = FIXTURE_FACES, seed: int = 0) -> Path:
    """Write ``count`` synthetic faces laid out like CelebA's aligned release at ``root``; return ``root``.

    ``img_align_celeba/000001.jpg`` ... (178x218 JPEG), ``list_attr_celeba.txt`` (the count, the attribute
    names, then one row of -1/1 per image; ``CELEBA_ATTRIBUTES``, ``Male`` the gender) and
    ``list_eval_partition.txt`` (0 train, 1 val, 2 test: 8, 1 and 1 of every 10 faces).
    """
    root = Path(root)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    attributes, partition = [], []
    for index in range(count):
        gender, race, band = index % 2, (index // 2) % len(SKIN), (index // 10) % len(AGE_RANGES)
        age = int(rng.integers(AGE_RANGES[band][0], AGE_RANGES[band][1] + 1))
        name = f"{index + 1:06d}.jpg"
        image = synthetic_face(rng, 1 - gender, race, age).resize((178, 218), Image.Resampling.BICUBIC)
        image.save(root / "img_align_celeba" / name, format="JPEG", quality=90)
        values = {"Male": gender == 1, "Young": age < 40, "Pale_Skin": race == 0, "Smiling": rng.random() < 0.5,
                  "Eyeglasses": rng.random() < 0.1, "Wearing_Lipstick": gender == 0 and rng.random() < 0.6}
        attributes.append(f"{name} " + " ".join("1" if values[column] else "-1" for column in CELEBA_ATTRIBUTES))
        partition.append(f"{name} {(0, 0, 0, 0, 0, 0, 0, 0, 1, 2)[index % 10]}")
    header = f"{count}\n{' '.join(CELEBA_ATTRIBUTES)}\n"
    (root / "list_attr_celeba.txt").write_text(header + "\n".join(attributes) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return root
