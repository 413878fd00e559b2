"""Why real photos of women are called men: the whole prediction path once on labelled photos, then the errors
taken apart.

``diagnose_real_photos`` runs ``Predictor`` (decode, detect, align, classify with flip test-time augmentation)
through ``nbhelpers.predict.real_photos.evaluate_photos`` once, keeping each photo's central face: its aligned
chip and its box in the photo. On those it measures image quality (sharpness, brightness, contrast:
``nbhelpers.fairness.error_diagnosis``) and the face's width in the photo; tabulates the misclassified faces
per gender x age group, race and quality band; computes where explanation maps put the evidence for "male" by
face region (``nbhelpers.fairness.face_regions``: dlib's 68 landmarks, Kazemi and Sullivan CVPR 2014) for
Grad-CAM of the diagnosed model (Selvaraju et al., ICCV 2017) and the contributions of a trained B-cos model
(Böhle, Fritz, Schiele, CVPR 2022), on the real faces and on UTKFace test faces matched one to one by gender,
age band and race; and runs the controlled changes of ``nbhelpers.fairness.perturbations`` on the real chips.

Every map explains the class "male" (positive = evidence for male), whatever the model answered; a face is
``called`` what the explained model answers on its chip (flip-averaged, as the predictor does). FairFace's age
groups map to UTKFace's age bands (``nbhelpers.data.datasets.fairface.AGE_BANDS``, "70+" as "60+") and, when
the reference faces carry UTKFace's races, its races to UTKFace's five (``FAIRFACE_TO_UTKFACE_RACE``).
Evaluation only: nothing is trained, tuned or fitted on the photos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from nbhelpers.data.datasets.fairface import AGE_BANDS as FAIRFACE_AGE_BANDS
from nbhelpers.data.datasets.utkface import RACES as UTKFACE_RACES
from nbhelpers.data.manifest import labels_of
from nbhelpers.explain.explainers import create_explainer
from nbhelpers.fairness.error_diagnosis import (QUALITY_COLUMNS, chip_quality, matched_rows, misclassification_table,
                                                quality_bands, quality_comparison, region_comparisons)
from nbhelpers.fairness.face_regions import region_masks
from nbhelpers.fairness.perturbations import perturbation_table, predict_male_probability
from nbhelpers.fairness.region_attribution import attribution_by_region, region_areas
from nbhelpers.models import flip_averaged_probabilities, model_spec
from nbhelpers.predict.predictor import FLIP_TTA, Predictor
from nbhelpers.predict.real_photos import LABELS_NAME, evaluate_photos, read_labels
from nbhelpers.training.result import TrainedModel
from nbhelpers.training.runs import find_run, load_run, trained_checkpoints

__all__ = ["REAL_SOURCE", "REFERENCE_SOURCE", "AREA_EXPLANATION", "FAIRFACE_TO_UTKFACE_RACE", "QUALITY_MEASURES",
           "BANDED_MEASURES", "MATCH_COLUMNS", "RealPhotoDiagnosis", "photos_available", "diagnosis_models",
           "sample_labels", "run_predict_path", "male_evidence", "region_shares", "diagnose_real_photos"]

REAL_SOURCE = "real photo"
REFERENCE_SOURCE = "UTKFace test"
AREA_EXPLANATION = "area (uniform map)"  # region shares of a uniform map: the baseline to read shares against
FAIRFACE_TO_UTKFACE_RACE = {"White": "White", "Black": "Black", "Indian": "Indian", "East Asian": "Asian",
                            "Southeast Asian": "Asian", "Latino Hispanic": "Others", "Latino_Hispanic": "Others",
                            "Middle Eastern": "Others"}
# per-face measures: chip quality, the face box's width in photo pixels and as a share of the photo's width
QUALITY_MEASURES = (*QUALITY_COLUMNS, "face_width_px", "face_width_share")
BANDED_MEASURES = ("sharpness", "brightness", "face_width_px")  # tabulated by tercile band (<measure>_band)
MATCH_COLUMNS = ("gender", "age_band", "race")


@dataclass
class RealPhotoDiagnosis:
    """The diagnosis of one model on labelled real photos.

    ``frame``: one row per photo (labels, ``evaluate_photos`` columns, ``age_band``, ``face_width_px``,
    ``face_width_share``, ``QUALITY_COLUMNS`` and ``<measure>_band``; NaN without a face); ``chips``: uint8
    (M, H, W, 3) central faces of the M photos with one, at ``chip_rows`` (int (M,)) of ``frame``; ``errors``
    (``misclassification_table``), ``quality`` (``quality_comparison``), ``shares`` (per face and explanation:
    region shares, ``p_male``, ``called``, ``matched``), ``regions`` (``region_comparisons``) and ``perturbations``
    (``perturbation_table``) once ``diagnose_real_photos`` filled them."""

    model: str
    frame: pd.DataFrame
    chips: np.ndarray
    chip_rows: np.ndarray
    errors: pd.DataFrame | None = None
    quality: pd.DataFrame | None = None
    shares: pd.DataFrame | None = None
    regions: dict[str, pd.DataFrame] = field(default_factory=dict)
    perturbations: pd.DataFrame | None = None


def photos_available(photos_dir: str | Path) -> bool:
    """True when ``photos_dir`` holds ``labels.csv``; otherwise prints that the diagnosis is skipped."""
    labels = Path(photos_dir) / LABELS_NAME
    if labels.is_file():
        return True
    print(f"real-photo diagnosis skipped: no labelled photos at {labels}")
    return False


def _is_bcos(name: str) -> bool:
    try:
        return bool(model_spec(name).is_bcos)
    except KeyError:
        return False


def diagnosis_models(checkpoint_dir: str | Path, model: str, bcos_model: str = "", device: str | None = None,
                     detect: bool = True) -> tuple[Predictor, TrainedModel | None]:
    """The ``Predictor`` of ``model``'s newest plain run, answering alone (no peer, deep ensemble or probe: the diagnosis
    reads the model's own errors and maps; ``detect=False``: centre crops, for face crops) and a trained B-cos model:
    ``bcos_model`` when it names a B-cos model with a recorded run, else the first recorded B-cos model by name,
    else None.

    Raises ``FileNotFoundError`` (naming the fix) when ``model`` has no recorded run."""
    predictor = Predictor(find_run(checkpoint_dir, model)["checkpoint"], device, detect=detect, peer_ensemble="off",
                          deep_ensemble="off", descriptor_probe="off")
    for name in [bcos_model] * bool(bcos_model) + sorted(trained_checkpoints(checkpoint_dir)):
        entry = find_run(checkpoint_dir, name, required=False) if _is_bcos(name) else None
        if entry:
            return predictor, load_run(entry["checkpoint"], device, entry["run_id"])
    return predictor, None


def sample_labels(labels: pd.DataFrame, count: int, seed: int = 0) -> pd.DataFrame:
    """``count`` rows of a labels table drawn with ``seed``, women and men alternately (as balanced as the table
    allows), in file order; all rows when ``count`` is 0 or at least their number."""
    if count <= 0 or count >= len(labels):
        return labels.reset_index(drop=True)
    shuffled = labels.sample(frac=1.0, random_state=seed)
    rank = shuffled.groupby("gender").cumcount()
    chosen = shuffled.assign(_rank=rank).sort_values("_rank", kind="stable").head(count)
    return chosen.drop(columns="_rank").sort_index().reset_index(drop=True)


class _Recorder:
    """A predictor that passes every result through and keeps it (the chips and boxes ``evaluate_photos``
    does not return), so the prediction path runs once."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor, self.classes, self.results = predictor, predictor.classes, []

    def predict_paths(self, paths, **options):
        for result in self.predictor.predict_paths(paths, **options):
            self.results.append(result)
            yield result


def _face_columns(frame: pd.DataFrame, results: list, chip_rows: np.ndarray, chips: np.ndarray) -> pd.DataFrame:
    """``frame`` with the central face's width (px and share of the photo's width), quality and bands."""
    frame = frame.copy()
    for column in QUALITY_MEASURES:
        frame[column] = np.nan
    for row in chip_rows:
        left, _, right, _ = results[row].central_face().box
        width = right - left
        frame.loc[row, ["face_width_px", "face_width_share"]] = [width, width / results[row].image_size[0]]
    if len(chip_rows):
        frame.loc[chip_rows, list(QUALITY_COLUMNS)] = chip_quality(chips).to_numpy()
    for measure in BANDED_MEASURES:
        frame[f"{measure}_band"] = quality_bands(frame[measure])
    if "age_group" in frame:
        bands = {**FAIRFACE_AGE_BANDS, "70+": "60+"}
        frame["age_band"] = frame["age_group"].map(lambda group: bands.get(str(group).strip(), "unknown"))
    return frame


def run_predict_path(predictor: Predictor, labels: pd.DataFrame, photos_dir: str | Path,
                     progress: bool = False) -> RealPhotoDiagnosis:
    """The whole prediction path once on the labelled photos (``evaluate_photos``, no peer), keeping the
    central faces' chips and boxes; ``frame`` gets the face and quality columns (``RealPhotoDiagnosis``)."""
    recorder = _Recorder(predictor)
    frame = evaluate_photos(recorder, labels, photos_dir, None, progress)
    faces = [result.central_face() for result in recorder.results]
    chip_rows = np.array([row for row, face in enumerate(faces) if face is not None and face.chip is not None],
                         dtype=np.int64)
    size = predictor.chip_size
    chips = (np.stack([faces[row].chip for row in chip_rows]) if len(chip_rows)
             else np.zeros((0, size, size, 3), np.uint8))
    frame = _face_columns(frame, recorder.results, chip_rows, chips)
    return RealPhotoDiagnosis(predictor.trained.name, frame, chips, chip_rows)


def male_evidence(trained: TrainedModel, chips: np.ndarray, method: str,
                  batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Maps of the evidence for "male" and p(male) of uint8 chips (N, H, W, 3): float32 (N, size, size) at the
    model's input size (``create_explainer(method)`` with target "male"; positive = for male) and float (N,)
    flip-averaged p(male) as the predictor computes it. Raises ``ValueError`` when the method does not apply."""
    male = list(trained.spec.classes).index("male")
    maps, probabilities = [], []
    with create_explainer(method, trained.model) as explainer:
        for start in range(0, len(chips), batch_size):
            inputs = trained.preprocess(chips[start:start + batch_size])
            attribution = explainer(inputs, male)
            flipped = flip_averaged_probabilities(trained.model, inputs, FLIP_TTA, attribution.probabilities)
            maps.append(attribution.maps.float().cpu().numpy())
            probabilities.append(flipped[:, male].float().cpu().numpy())
    size = trained.spec.input_size
    return (np.concatenate(maps) if maps else np.zeros((0, size, size), np.float32),
            np.concatenate(probabilities) if probabilities else np.zeros(0))


def region_shares(explanations: Sequence[tuple[str, TrainedModel, str]],
                  sources: dict[str, tuple[np.ndarray, Sequence[str]]], landmark_source: str = "auto",
                  batch_size: int = 32) -> pd.DataFrame:
    """Per face, source and explanation: the share of the evidence for "male" in each region (``REGIONS``
    columns, fractions summing to 1), ``positive_total``, ``p_male`` and ``called``; plus the rows of
    ``AREA_EXPLANATION`` (each region's share of the chip).

    ``explanations``: (label, trained model, explainer name); ``sources``: name -> (uint8 chips (N, H, W, 3),
    N genders). Columns also: explanation, source, gender, face (position in its source)."""
    tables = []
    for source, (chips, genders) in sources.items():
        if not len(chips):
            continue
        masks = [region_masks(chip, landmark_source) for chip in chips]
        base = pd.DataFrame({"source": source, "gender": list(genders), "face": np.arange(len(chips))})
        tables.append(pd.concat([base.assign(explanation=AREA_EXPLANATION, called=""), region_areas(masks)], axis=1))
        for label, trained, method in explanations:
            maps, p_male = male_evidence(trained, chips, method, batch_size)
            shares = attribution_by_region(maps, masks)
            called = np.where(p_male > 0.5, "male", "female")
            tables.append(pd.concat([base.assign(explanation=label, called=called, p_male=p_male), shares], axis=1))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _reference(diagnosis: RealPhotoDiagnosis, faces: np.ndarray, frame: pd.DataFrame,
               seed: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Reference faces matched one to one to the real faces on the ``MATCH_COLUMNS`` both frames have: their
    chips, genders, and per real face whether it got a partner (bool (M,))."""
    real = diagnosis.frame.iloc[diagnosis.chip_rows].reset_index(drop=True)
    reference = frame.reset_index(drop=True)
    if "race" in real and "race" in reference and set(reference["race"].dropna()) <= {*UTKFACE_RACES, "unknown"}:
        real["race"] = real["race"].map(lambda race: FAIRFACE_TO_UTKFACE_RACE.get(str(race).strip(), "unknown"))
    columns = [column for column in MATCH_COLUMNS if column in real and column in reference]
    positions = matched_rows(real, reference, columns, seed)
    kept = positions[positions >= 0]
    return faces[kept], reference["gender"].iloc[kept].tolist(), positions >= 0


def diagnose_real_photos(photos_dir: str | Path, checkpoint_dir: str | Path, model: str, bcos_model: str,
                         reference_faces: np.ndarray, reference_frame: pd.DataFrame, count: int = 0,
                         bootstrap: int = 1000, seed: int = 0, landmark_source: str = "auto",
                         detect: bool = True, progress: bool = False) -> RealPhotoDiagnosis | None:
    """The whole diagnosis (module docstring), or None (with a printed note) when ``photos_dir`` has no
    ``labels.csv``.

    ``model``: the diagnosed run's model name; ``bcos_model``: the B-cos model to explain (see
    ``diagnosis_models``); ``reference_faces``: uint8 (N, H, W, 3) UTKFace test faces with their manifest rows
    ``reference_frame`` (gender, age_band, race); ``count``: photos drawn (0: all); ``landmark_source`` as
    ``region_masks``; ``detect=False`` classifies centre crops (photos that are face crops). Raises
    ``FileNotFoundError`` when ``model`` has no recorded run."""
    if not photos_available(photos_dir):
        return None
    predictor, bcos = diagnosis_models(checkpoint_dir, model, bcos_model, detect=detect)
    labels = sample_labels(read_labels(Path(photos_dir) / LABELS_NAME), count, seed)
    diagnosis = run_predict_path(predictor, labels, photos_dir, progress)
    frame = diagnosis.frame
    groups = [column for column in ("age_group", "race") if column in frame]
    diagnosis.errors = misclassification_table(frame, [*groups, *(f"{name}_band" for name in BANDED_MEASURES)],
                                               bootstrap, seed)
    diagnosis.quality = quality_comparison(frame, QUALITY_MEASURES)
    genders = frame["gender"].iloc[diagnosis.chip_rows].tolist()
    explanations = [(f"{diagnosis.model} gradcam", predictor.trained, "gradcam")]
    explanations += [(f"{bcos.name} bcos", bcos, "bcos")] if bcos is not None else []
    *reference, partnered = _reference(diagnosis, reference_faces, reference_frame, seed)
    sources = {REAL_SOURCE: (diagnosis.chips, genders), REFERENCE_SOURCE: tuple(reference)}
    diagnosis.shares = region_shares(explanations, sources, landmark_source)
    if len(diagnosis.shares):  # the real faces without a reference partner stay out of the real-vs-reference gaps
        real = (diagnosis.shares["source"] == REAL_SOURCE).to_numpy()
        diagnosis.shares["matched"] = True
        diagnosis.shares.loc[real, "matched"] = partnered[diagnosis.shares.loc[real, "face"].to_numpy()]
    if len(diagnosis.shares):
        diagnosis.regions = region_comparisons(diagnosis.shares, REFERENCE_SOURCE, bootstrap, seed)
    if len(diagnosis.chips):
        predict = predict_male_probability(predictor.trained.model, predictor.trained.preprocess,
                                           flip_tta=predictor.flip_tta)
        real = frame.iloc[diagnosis.chip_rows]
        diagnosis.perturbations = perturbation_table(predict, diagnosis.chips, labels_of(real), genders,
                                                     bootstrap=bootstrap)
    return diagnosis
