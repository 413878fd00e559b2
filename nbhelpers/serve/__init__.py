"""The HTTP API of a trained run (``python -m nbhelpers.serve --checkpoint model.pt``): ``POST /predict`` with
one image, ``GET /health``, OpenAPI docs at ``/docs``. Needs the ``api`` extra (FastAPI, uvicorn).

Every name below is importable from this package; it is imported from its module on first use.
"""

from nbhelpers.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, """
    app: create_app photo_json explanation_png DEFAULT_MAX_UPLOAD_BYTES UPLOAD_NAME
    limits: UploadLimit BodyTooLarge send_json_error
    cli: build_parser supported_explainers main
""")
