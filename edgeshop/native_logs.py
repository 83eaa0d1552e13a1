"""Keep the C++ libraries' start-up chatter out of the commands' output.

TensorFlow, absl, CUDA probing and LiteRT write INFO lines straight to file descriptor 2
("Created TensorFlow Lite XNNPACK delegate for CPU", "failed call to cuInit", absl's
"All log messages before absl::InitializeLog()"), which neither Python's logging nor
TF_CPP_MIN_LOG_LEVEL reaches for LiteRT. The commands hide them unless -v/--verbose:
``hidden_chatter()`` captures fd 2 around the calls that print them and writes back every
line that is not such chatter, so real errors still show.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator

# fd 2 is the process's: two threads redirecting it at once would restore each other's capture
_FD2 = threading.RLock()
VERBOSE_ENV = "EDGESHOP_VERBOSE"  # "0": hide the chatter (the commands without -v); else show it

_ABSL = r"\d{4} [0-9:.]+ +\d+ [\w.-]+:\d+\] "  # absl's prefix: I0000 00:00:1796542995.567145  8547 port.cc:153]
_CHATTER = re.compile(
    rf"^(INFO: (Created|Initialized) TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
    rf"|[IW]{_ABSL}|fully_quantize: \d+, inference_type"
    rf"|E{_ABSL}.*(cuInit|cuDNN|cuFFT|cuBLAS|CUDA|TensorRT))"
)


def set_verbose(verbose: bool) -> None:
    """What the commands call once: show (-v) or hide the libraries' chatter, TensorFlow's
    C++ log included (read when TensorFlow is imported, so call this before)."""
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    # 3: also its ERROR level, where CPU-only machines get "failed call to cuInit"; -v shows all (a
    # value the user set is kept)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # the Python side: TensorFlow's converters and Keras warn about their own internals
    warnings.filterwarnings("ignore", module=r"(tensorflow|tf_keras|keras|tensorflow_model_optimization|absl)\b")


def chatter_hidden() -> bool:
    return os.environ.get(VERBOSE_ENV) == "0"


def is_chatter(line: str) -> bool:
    return bool(_CHATTER.match(line))


@contextlib.contextmanager
def hidden_chatter() -> Iterator[None]:
    """Around a call whose C++ code prints to fd 2: drop its chatter lines, keep the rest."""
    if not chatter_hidden():
        yield
        return
    try:
        capture = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the with below)
    except OSError:  # no room for the capture (a full temp folder): show everything rather than fail
        yield
        return
    with _FD2, capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not is_chatter(line)]
            if kept:
                os.write(2, "".join(kept).encode())
