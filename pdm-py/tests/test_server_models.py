"""Models between Python and a real pdm server (issue 9): a model fitted here, imported over the
API, scores the live stream exactly as ``score_samples`` does here; a model trained by the
server, exported over the API, loads here and scores the same rows identically; a damaged file
is refused and the machine keeps its model.

No mocks: each test starts the ``pdm-server`` binary on a temporary SQLite directory and a free
port, and talks to it over HTTP (urllib). The binary is ``$PDM_SERVER_BIN``, else
``target/{debug,release}/pdm-server`` under ``$CARGO_TARGET_DIR`` or the repository. Without one
the tests skip, saying how to build it; with ``CI=true`` they fail instead (``scripts/test``
builds the binary and exports ``PDM_SERVER_BIN``, so in CI they always run).

Scores are compared bit for bit (``float.hex``): readings go out as Python's shortest repr, which
the server parses exactly, and scores come back in serde_json's shortest repr, which ``float()``
reads exactly. The rows are at whole seconds with a 1 s period, every channel in every reading,
so the server's aligned rows are the input rows: row ``i`` at ``t0 + i s``, the last row still
open (a row is final only once a reading a period later arrives), the first ``window - 1`` rows
without a score.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest

import pdm_engine as pe

from _server import Server, _server_bin, running_server

CHANNELS = ["current", "flow", "temperature"]
PERIOD_MS = 1000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # Explicit where a default would matter here: no auto-training, 1 s rows.
    with running_server(tmp_path, "[live]\nsample_period_ms = 1000\nauto_train_after_s = 0\n") as srv:
        yield srv


# ------------------------------------------------------------------------------------------------
# Data and API steps
# ------------------------------------------------------------------------------------------------


def series(n: int, fault_from: int, seed: int) -> np.ndarray:
    """A pump: flow follows the load, current follows flow, temperature drifts slowly; from
    ``fault_from`` on the current no longer follows the flow (a broken relation)."""
    rng = np.random.default_rng(seed)
    load = np.cumsum(rng.normal(scale=0.05, size=n))
    load = 0.5 + 0.3 * np.tanh(load - load.mean())
    flow = 40.0 * load + rng.normal(scale=0.4, size=n)
    current = 0.25 * flow + 3.0 + rng.normal(scale=0.1, size=n)
    temperature = 55.0 + 0.002 * np.arange(n) + rng.normal(scale=0.2, size=n)
    current[fault_from:] += 8.0
    return np.column_stack([current, flow, temperature])


def start_ms() -> int:
    """A whole second two days ago: within the codec's accepted past (365 days), on the grid."""
    return (int(time.time()) - 2 * 86400) * 1000


def create_machine(srv: Server, key: str) -> None:
    srv.ok("POST", "/api/v1/machines", 201, body={"key": key})
    for sensor in CHANNELS:
        srv.ok("POST", f"/api/v1/machines/{key}/sensors", 201, body={"key": sensor})


def post_rows(srv: Server, machine: str, X: np.ndarray, channels: List[str], t0: int, first: int) -> None:
    """Rows ``first .. first + len(X)`` of the series, one reading each, at ``t0 + i * period``."""
    batch = 400
    for lo in range(0, len(X), batch):
        items = [
            {"ts": t0 + (first + i) * PERIOD_MS, "values": dict(zip(channels, map(float, X[i])))}
            for i in range(lo, min(lo + batch, len(X)))
        ]
        report = srv.ok("POST", f"/api/v1/machines/{machine}/telemetry", 202, body=items)
        # `accepted` counts readings: one per channel of each item.
        assert report["accepted"] == len(items) * len(channels) and report["rejected_total"] == 0, report


def predictions(srv: Server, machine: str, t_from: int, t_to: int) -> List[Dict[str, Any]]:
    body = srv.ok("GET", f"/api/v1/machines/{machine}/predictions?from={t_from}&to={t_to}&limit=100000")
    return list(body["predictions"])


def wait_for_predictions(srv: Server, machine: str, t_from: int, t_to: int, last_ts: int) -> List[Dict[str, Any]]:
    """The predictions of ``[t_from, t_to)`` once the one at ``last_ts`` is stored."""
    deadline = time.monotonic() + 90
    while True:
        preds = predictions(srv, machine, t_from, t_to)
        if preds and preds[-1]["ts"] >= last_ts:
            return preds
        if time.monotonic() > deadline:
            live = srv.request("GET", f"/api/v1/machines/{machine}/live")
            pytest.fail(
                f"no prediction at {last_ts} after 90 s: {len(preds)} predictions, last "
                f"{preds[-1]['ts'] if preds else None}; live state {live}\n{srv.log_tail()}"
            )
        time.sleep(0.2)


def assert_bitwise_equal(preds: List[Dict[str, Any]], expected: np.ndarray, t0: int, model_id: int) -> None:
    """Each prediction's score equals the Python score of its row, bit for bit."""
    mismatches = []
    for p in preds:
        assert p["model"] == model_id, p
        i = (p["ts"] - t0) // PERIOD_MS
        assert (p["ts"] - t0) % PERIOD_MS == 0 and 0 <= i < len(expected), p
        ours = float(expected[i])
        theirs = float(p["score"])
        if ours.hex() != theirs.hex():
            mismatches.append((i, ours.hex(), theirs.hex()))
    assert not mismatches, f"{len(mismatches)} of {len(preds)} scores differ (row, python, server): {mismatches[:5]}"


def wait_for_job(srv: Server, job_id: int) -> Dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        job = srv.ok("GET", f"/api/v1/jobs/{job_id}")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} not finished after 120 s: {job}\n{srv.log_tail()}")
        time.sleep(0.2)


def import_model(srv: Server, machine: str, data: bytes) -> Tuple[int, Any]:
    return srv.request(
        "POST",
        f"/api/v1/machines/{machine}/models/import?activate=true&sample_period_ms={PERIOD_MS}&max_gap_ms=5000",
        raw=data,
    )


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------


def test_a_model_fitted_in_python_scores_the_live_stream_bit_for_bit(server: Server) -> None:
    n, fault_from = 3000, 2000
    X = series(n, fault_from, seed=11)
    model = pe.Pipeline().fit(X[:1500], channels=CHANNELS)
    create_machine(server, "pump-a")

    status, imported = import_model(server, "pump-a", model.to_bytes())
    assert status == 201, (status, imported, server.log_tail())
    assert imported["status"] == "active" and imported["kind"] == "pipeline", imported
    assert imported["parameters"]["source"] == "import", imported
    assert imported["parameters"]["align"]["channels"] == CHANNELS, imported

    t0 = start_ms()
    post_rows(server, "pump-a", X, CHANNELS, t0, 0)
    # Rows 0 .. n - 2 are final (row n - 1 waits for a later reading); scores from row window - 1.
    w = model.window
    preds = wait_for_predictions(server, "pump-a", t0, t0 + n * PERIOD_MS, t0 + (n - 2) * PERIOD_MS)
    assert [p["ts"] for p in preds] == [t0 + i * PERIOD_MS for i in range(w - 1, n - 1)]
    expected = model.score_samples(X[: n - 1])
    assert np.all(np.isnan(expected[: w - 1]))
    assert_bitwise_equal(preds, expected, t0, imported["id"])
    # The fault is seen on both sides (the same numbers, so a sanity check of the series only).
    scores = np.array([p["score"] for p in preds])
    assert np.median(scores[: fault_from - w]) < 1.0 < np.median(scores[fault_from - w + 20 :])


def test_a_model_trained_by_the_server_loads_in_python_and_scores_identically(server: Server) -> None:
    n_train, n_more = 900, 600
    X = series(n_train + n_more, fault_from=n_train + 300, seed=12)
    create_machine(server, "pump-b")
    t0 = start_ms()
    post_rows(server, "pump-b", X[:n_train], CHANNELS, t0, 0)

    job = server.ok(
        "POST", "/api/v1/machines/pump-b/models", 202,
        body={"from": t0, "to": t0 + n_train * PERIOD_MS, "activate": True},
    )
    job = wait_for_job(server, job["id"])
    assert job["status"] == "succeeded", (job, server.log_tail())
    model_id = job["result"]["model"]
    assert job["result"]["activated"] is True, job
    info = server.ok("GET", f"/api/v1/models/{model_id}")
    assert info["status"] == "active" and info["kind"] == "pipeline", info
    channels = info["parameters"]["align"]["channels"]
    assert sorted(channels) == sorted(CHANNELS), info
    cols = [CHANNELS.index(c) for c in channels]

    data = server.get_bytes(f"/api/v1/models/{model_id}/file")
    assert len(data) == info["size_bytes"], (len(data), info)
    loaded = pe.load(data)
    assert isinstance(loaded, pe.Pipeline) and loaded.channels_ == channels
    assert loaded.get_params() == pe.Pipeline().get_params()  # the default pipeline

    # The same fit in Python on the training rows (the range's last instant is open, so rows
    # 0 .. n_train - 2) gives the same scores: the server trains `pdm_engine.Pipeline()`.
    rows = X[:, cols]
    here = pe.Pipeline().fit(rows[: n_train - 1], channels=channels)
    np.testing.assert_array_equal(
        here.score_samples(rows).view(np.uint64), loaded.score_samples(rows).view(np.uint64)
    )

    # Readings after the activation are scored live as the exported model scores them here.
    post_rows(server, "pump-b", X[n_train:], CHANNELS, t0, n_train)
    n = n_train + n_more
    w = loaded.window
    preds = wait_for_predictions(server, "pump-b", t0, t0 + n * PERIOD_MS, t0 + (n - 2) * PERIOD_MS)
    scored = {(p["ts"] - t0) // PERIOD_MS for p in preds}
    # Every row after the activation whose window holds only post-activation rows is scored (the
    # server may score earlier ones too, from the window it carried over).
    assert set(range(n_train + w - 1, n - 1)) <= scored, sorted(set(range(n_train + w - 1, n - 1)) - scored)[:10]
    assert_bitwise_equal(preds, loaded.score_samples(rows[: n - 1]), t0, model_id)


def test_a_damaged_model_file_is_refused_and_the_active_model_stays(server: Server) -> None:
    X = series(800, fault_from=800, seed=13)
    model = pe.Pipeline().fit(X, channels=CHANNELS)
    create_machine(server, "pump-c")
    status, good = import_model(server, "pump-c", model.to_bytes())
    assert status == 201 and good["status"] == "active", (status, good)

    data = bytearray(model.to_bytes())
    # One digit of the fitted state changed: still valid JSON, so only the checksum can tell.
    start = data.index(b'"model"')
    at = next(i for i in range(start, len(data)) if chr(data[i]) in "12345678")
    data[at] += 1
    status, refused = import_model(server, "pump-c", bytes(data))
    assert status == 422 and refused["error"]["code"] == "unprocessable", (status, refused)
    assert "checksum" in refused["error"]["message"], refused

    # Feature names that are not the machine's sensors: refused, naming the stranger.
    stranger = pe.Pipeline().fit(X, channels=["current", "flow", "vibration"])
    status, refused = import_model(server, "pump-c", stranger.to_bytes())
    assert status == 422 and "vibration" in refused["error"]["message"], (status, refused)

    models = server.ok("GET", "/api/v1/models?machine=pump-c")
    assert [(m["id"], m["status"]) for m in models] == [(good["id"], "active")], models
    assert server.ok("GET", f"/api/v1/models/{good['id']}")["status"] == "active"
    # And it still scores with it.
    t0 = start_ms()
    post_rows(server, "pump-c", X[:50], CHANNELS, t0, 0)
    preds = wait_for_predictions(server, "pump-c", t0, t0 + 50 * PERIOD_MS, t0 + 48 * PERIOD_MS)
    assert_bitwise_equal(preds, model.score_samples(X[:49]), t0, good["id"])


def test_a_bad_pdm_server_bin_fails_never_skips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PDM_SERVER_BIN that names no executable is a failure, not a skip (the fixture's skip
    without any binary turns into a failure with CI=true)."""
    monkeypatch.setenv("PDM_SERVER_BIN", str(tmp_path / "missing" / "pdm-server"))
    with pytest.raises(pytest.fail.Exception, match="not an executable file"):
        _server_bin()
