"""The shared thread pool (edgekd.runtime.sessions) rests on onnxruntime internals: it is used where its
probe passes, and where they are gone every session gets a pool of its own, with one debug line and the
same predictions. The pool is process-wide, so each case runs in a process of its own. (Some releases,
onnxruntime 1.16 among them, have no such setter at all: there both cases take the fallback.)"""
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SHAPES_IMAGES, TINY_BUNDLE
from edgekd.runtime import EarlyExitModel
from edgekd.runtime.evaluation import load_split

pytestmark = pytest.mark.usefixtures("runtime_fixture")

PREDICT = """
import logging, sys
import numpy as np
logging.basicConfig(level=logging.DEBUG, format="LOG %(name)s %(levelname)s %(message)s")
logging.getLogger("onnxruntime").setLevel(logging.WARNING)
import onnxruntime.capi._pybind_state as internal
print("setter:", hasattr(internal, "set_global_thread_pool_sizes"))
if sys.argv[1] == "internals-gone" and hasattr(internal, "set_global_thread_pool_sizes"):
    del internal.set_global_thread_pool_sizes
from edgekd.runtime import EarlyExitModel
from edgekd.runtime.sessions import shared_pool
images = np.load(sys.argv[3])
np.save(sys.argv[4], EarlyExitModel(sys.argv[2], shared_threads=True).predict(images, mode="all").ensemble)
print("shared pool:", shared_pool(2))
"""


@pytest.mark.parametrize("case", ["internals-present", "internals-gone"])
def test_shared_threads_predict_alike_with_or_without_onnxruntime_internals(tmp_path, case):
    images = load_split(EarlyExitModel(TINY_BUNDLE), SHAPES_IMAGES, "test")[0][:16]
    np.save(tmp_path / "images.npy", images)
    done = subprocess.run([sys.executable, "-c", PREDICT, case, str(TINY_BUNDLE), str(tmp_path / "images.npy"),
                           str(tmp_path / "ensemble.npy")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("LOG edgekd.runtime")]
    pool_lines = [line for line in lines if "thread pool" in line]
    if case == "internals-gone" or "setter: False" in done.stdout:  # gone on purpose, or onnxruntime has none (1.16)
        assert "shared pool: False" in done.stdout
        assert len(pool_lines) == 1 and "DEBUG" in pool_lines[0] and "set_global_thread_pool_sizes" in pool_lines[0]
    else:
        assert "shared pool: True" in done.stdout and pool_lines == []
    own_pools = EarlyExitModel(TINY_BUNDLE).predict(images, mode="all").ensemble
    np.testing.assert_allclose(np.load(tmp_path / "ensemble.npy"), own_pools, atol=1e-6)
