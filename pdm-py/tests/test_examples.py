"""The Python example in examples/ runs on SKAB and reaches the detection target."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def skab_dir():
    d = Path(os.environ.get("PDM_SKAB_DIR", ROOT.parent / "shared" / "data" / "skab"))
    if not (d / "data" / "valve1").is_dir():
        message = f"SKAB data not found at {d} (set PDM_SKAB_DIR)"
        if os.environ.get("PDM_TEST_REQUIRE_DATA") == "1":
            pytest.fail(message + " and PDM_TEST_REQUIRE_DATA=1")
        pytest.skip(message)
    return d


def test_skab_example_reaches_the_target_and_saves_a_loadable_model(tmp_path):
    pytest.importorskip("pandas")
    import pdm_engine as pe

    env = dict(os.environ, PDM_SKAB_DIR=str(skab_dir()))
    saved = tmp_path / "model.pdm.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "skab_pipeline.py"), "--save", str(saved)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    m = re.search(r"20 file\(s\), default pipeline: F1 ([\d.]+)  FAR ([\d.]+) %  MAR ([\d.]+) %", out)
    assert m, out
    f1, far, mar = map(float, m.groups())
    assert f1 >= 0.70 and far <= 15.0 and mar <= 40.0, out
    model = pe.load(saved)
    assert isinstance(model, pe.Pipeline) and len(model.channels_) == 8
