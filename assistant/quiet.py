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


def _keep_output(disable: bool = False):
    """Stands in for llama-cpp-python's suppress_stdout_stderr (see silence_llama)."""
    import contextlib

    return contextlib.nullcontext()


def silence_llama(verbose: bool | None = None) -> None:
    """Route llama.cpp's C log to nowhere unless verbose; call before loading a model.

    It also stops llama-cpp-python's own way of keeping quiet, `suppress_stdout_stderr`,
    which points the whole process's file descriptors 1 and 2 at /dev/null while a model
    loads. The model loads in a background thread while retrieval runs, so whatever the
    main thread printed meanwhile was lost: a quick abstention, an error message, a
    benchmark's figure. With the C log discarded here there is nothing left for it to hide."""
    global _silent_callback
    if verbose if verbose is not None else _state["verbose"]:
        return
    import ctypes

    import llama_cpp
    import llama_cpp._internals
    import llama_cpp.llama
    import llama_cpp.llama_chat_format

    for module in (llama_cpp._internals, llama_cpp.llama, llama_cpp.llama_chat_format):
        if hasattr(module, "suppress_stdout_stderr"):
            module.suppress_stdout_stderr = _keep_output

    if _silent_callback is None:

        @llama_cpp.llama_log_callback
        def _discard(level, text, user_data):  # noqa: ANN001 - ctypes signature
            return None

        _silent_callback = _discard
    llama_cpp.llama_log_set(_silent_callback, ctypes.c_void_p(0))
