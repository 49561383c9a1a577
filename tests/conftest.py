import functools
import http.server
import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _auto_precision_is_float32():
    """`--precision auto` (the default of `train()` and the command line)
    sees a CPU without native bfloat16 in this process, so that it means
    float32 on every machine the suite runs on, module fixtures included
    (tests/test_precision.py tests the choice itself)."""
    from keras_ann import precision

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(precision, "describe_hardware", lambda: precision.Hardware("cpu", "test CPU", False, False))
        yield


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Every test starts with the float32 policy and a fixed seed."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)



@pytest.fixture(scope="module")
def mmseg_ann():
    """The test-only mmsegmentation 1.2.2 harness (tests/reference)."""
    import os
    import sys

    from testing_utils import require

    require("torch")
    require("mmseg")
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
    import mmseg_ann as module

    return module


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def file_server(tmp_path):
    """`(root, url)`: files put under `root` are served at `url` by an HTTP
    server on 127.0.0.1 (a free port), for the real download code."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
