"""Keep the user's terminal for the assistant's own output.

llama.cpp writes its loader and cache messages (e.g. ``llama_kv_cache_iswa: using
full-size SWA cache``) straight to stderr from C, and libraries emit Python warnings
about things the user cannot act on. Both stay hidden unless asked for with
``--verbose`` or ``ASSISTANT_VERBOSE=1``.
"""

from __future__ import annotations

import logging
import warnings

_NOISY_LOGGERS = ("chromadb", "httpx", "httpcore", "sentence_transformers", "transformers", "urllib3", "llama-cpp-python")
_state = {"verbose": False}
_silent_callback = None  # kept alive: llama.cpp holds a raw pointer to it


def quiet_terminal(verbose: bool = False) -> None:
    """Hide (or, verbose, show) library warnings and logs for the rest of the process."""
    _state["verbose"] = verbose
    if verbose:
        warnings.resetwarnings()
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        return
    warnings.filterwarnings("ignore")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def silence_llama(verbose: bool | None = None) -> None:
    """Route llama.cpp's C log to nowhere unless verbose; call before loading a model."""
    global _silent_callback
    if verbose if verbose is not None else _state["verbose"]:
        return
    import ctypes

    import llama_cpp

    if _silent_callback is None:

        @llama_cpp.llama_log_callback
        def _discard(level, text, user_data):  # noqa: ANN001 - ctypes signature
            return None

        _silent_callback = _discard
    llama_cpp.llama_log_set(_silent_callback, ctypes.c_void_p(0))
