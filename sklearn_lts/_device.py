"""One meaning of ``device`` across the library."""

from __future__ import annotations

__all__ = ["resolve_device"]


def resolve_device(device: str | None = "auto") -> str:
    """The torch device a ``device`` parameter names.

    ``None`` and ``"auto"`` pick the best available accelerator: CUDA, else Apple's MPS, else
    the CPU. Any other string (``"cpu"``, ``"cuda:1"``, ``"mps"``) is used as it is.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device("auto") in ("cuda", "mps", "cpu")
    True
    """
    if device not in (None, "auto"):
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"
