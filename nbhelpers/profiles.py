"""Named run profiles: ``smoke`` (tests, minutes), ``default`` (``make reports`` on a 2-core CPU)
and ``full`` (a GPU). A profile maps each notebook to the parameters it overrides; anything it
does not name keeps the value written in the notebook's ``parameters`` cell (the default profile).
"""

from __future__ import annotations

__all__ = ["PROFILES", "profile_parameters"]

PROFILES: dict[str, dict[str, dict[str, object]]] = {
    "smoke": {
        "01_download": {"LIMIT": 800, "GRID_SIZE": 8},
        "02_augment": {"IMAGE_SIZE": 32, "GRID_SIZE": 4},
    },
    "default": {},
    "full": {
        "02_augment": {"IMAGE_SIZE": 128},
    },
}


def profile_parameters(notebook: str, profile: str) -> dict[str, object]:
    """The parameters that ``profile`` sets for ``notebook`` (its stem, e.g. ``"01_download"``)."""
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return {"PROFILE": profile, **PROFILES[profile].get(notebook, {})}
