"""Hugging Face hub names without a network: fail in seconds, not after a minute of retries.

``from_pretrained("org/name")`` with no network retries the hub for about a minute before it
fails. A name is looked up on the hub only when the hub can be reached; otherwise (or when
``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` is set) :func:`resolve_model` turns the name
into its folder in the local Hugging Face cache, and a name that is not there fails at once with
:func:`offline_error`'s message. (``from_pretrained(name, local_files_only=True)`` is not
enough: transformers 5.24 still looks up ``adapter_config.json`` on the hub, with retries.)
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

__all__ = ["hub_is_offline", "hub_reachable", "local_files_only", "offline_error",
           "resolve_model"]

_TRUE = ("1", "on", "yes", "true")


def hub_is_offline() -> bool:
    """Whether the user asked for offline mode (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``).

    Examples
    --------
    >>> isinstance(hub_is_offline(), bool)
    True
    """
    return any(os.environ.get(v, "").strip().lower() in _TRUE
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub (``$HF_ENDPOINT``) opens within ``timeout`` seconds.

    The name lookup runs in a thread too: without DNS it can block longer than any socket
    timeout.
    """
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    ok = threading.Event()

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.set()
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return ok.is_set()


def local_files_only() -> bool:
    """True when only the local Hugging Face cache may be read (offline mode or no hub)."""
    return hub_is_offline() or not hub_reachable()


def offline_error(what: str, name: str, exc: BaseException) -> OSError:
    """The error for a hub name that is not in the local cache while the hub is out of reach."""
    why = ("HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set" if hub_is_offline()
           else "the Hugging Face hub cannot be reached")
    return OSError(
        f"{what}={name!r} is not a local folder and is not in the Hugging Face cache, and {why}. "
        "Pass the path of a folder written by save_pretrained (or of the model's files), or "
        f"download it once with network access. ({type(exc).__name__}: {exc})"
    )


def resolve_model(name: str, what: str) -> str:
    """``name`` itself when it is a folder or the hub is in reach, else its cached snapshot.

    Raises
    ------
    OSError
        From :func:`offline_error`, at once, when the hub cannot be used and the name is not
        in the local Hugging Face cache.
    """
    if os.path.isdir(os.path.expanduser(name)) or not local_files_only():
        return name
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception as exc:  # LocalEntryNotFoundError, a malformed repo id, ...
        raise offline_error(what, name, exc) from exc
