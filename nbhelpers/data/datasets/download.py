"""Downloads for users who are online: Kaggle through opendatasets, CelebA and ImageNet ResNet weights
through torchvision.

Offline, each fails at once (a short connection probe, no long time-outs) with a message saying
what to download by hand and where to put it.
"""

from __future__ import annotations

import socket
from pathlib import Path

__all__ = ["DownloadError", "KAGGLE_DATASETS", "is_reachable", "download_kaggle", "download_celeba",
           "torchvision_weights_file", "torchvision_weights"]

KAGGLE_DATASETS = {
    "utkface": "https://www.kaggle.com/datasets/jangedoo/utkface-new",
    "fairface": "https://www.kaggle.com/datasets/aibloy/fairface",
    "celeba": "https://www.kaggle.com/datasets/jessicali9530/celeba-dataset",
}


class DownloadError(RuntimeError):
    """A dataset could not be downloaded; the message says what to fetch by hand and where to put it."""


def is_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def download_kaggle(dataset: str, data_dir: str | Path = "data/raw") -> Path:
    """Download a Kaggle dataset (``utkface``, ``fairface``, ``celeba`` or a URL) with opendatasets."""
    url = KAGGLE_DATASETS.get(dataset, dataset)
    data_dir = Path(data_dir)
    if not is_reachable("www.kaggle.com"):
        raise DownloadError(
            f"cannot reach www.kaggle.com: download {url} by hand (Kaggle account needed), unpack it into "
            f"{data_dir.resolve()} and point the notebook's DATA_PATH parameter at it")
    import opendatasets

    opendatasets.download(url, data_dir=str(data_dir))
    return data_dir / url.rstrip("/").split("/")[-1]


def download_celeba(root: str | Path = "data/raw") -> Path:
    """Download CelebA with torchvision (Google Drive); return the folder holding its files."""
    root = Path(root)
    if not is_reachable("drive.google.com"):
        raise DownloadError(
            "cannot reach drive.google.com: download img_align_celeba.zip, list_attr_celeba.txt and "
            f"list_eval_partition.txt from the CelebA site, put them in {(root / 'celeba').resolve()} "
            "(unzip the images there) and set DATA_PATH to that folder")
    from torchvision.datasets import CelebA

    CelebA(str(root), split="all", target_type="attr", download=True)
    return root / "celeba"


def torchvision_weights_file(architecture: str) -> tuple[str, Path]:
    """URL and torch-hub cache path of torchvision's ImageNet weights for ``architecture``."""
    import torch
    import torchvision

    weights = torchvision.models.get_model_weights(architecture).IMAGENET1K_V1
    return weights.url, Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]


def torchvision_weights(architecture: str) -> Path:
    """Path of torchvision's ImageNet weights for ``architecture``: from the torch-hub cache, else downloaded."""
    url, path = torchvision_weights_file(architecture)
    if path.is_file():
        return path
    if not is_reachable("download.pytorch.org"):
        raise DownloadError(f"no ImageNet weights for {architecture} offline: put {path.name} from {url} into "
                            f"{path.parent} or pass pretrained=<local file>")
    import torch

    torch.hub.load_state_dict_from_url(url, progress=False)
    return path
