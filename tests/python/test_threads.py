"""One session from many Python threads gives each caller its own answer; the GIL is released while
a model runs and while a request is in flight (other Python threads run meanwhile)."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import quiver
from conftest import FOREST, HEP, particlenet_inputs


def test_one_session_many_threads_same_answers():
    sess = quiver.InferenceSession(HEP / "particlenet_ak4_hlt" / "model.onnx")
    base = particlenet_inputs(n_jets=8)
    feeds = []
    for k in range(24):
        rng = np.random.default_rng(k)
        f = {n: (a * rng.uniform(0.5, 1.5)).astype(np.float32) for n, a in base.items()}
        f["pf_mask"], f["sv_mask"] = base["pf_mask"], base["sv_mask"]
        feeds.append(f)
    serial = [sess.run(None, f)[0] for f in feeds]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            parallel = list(pool.map(lambda f: sess.run(None, f)[0], feeds))
            for k, (a, b) in enumerate(zip(serial, parallel)):
                assert np.array_equal(a, b), f"feed {k}"
    # different batch sizes at once share the model (each call has its own run state)
    with ThreadPoolExecutor(max_workers=4) as pool:
        sizes = [1, 3, 8, 2] * 4
        outs = list(pool.map(lambda n: sess.run(None, particlenet_inputs(n_jets=n))[0], sizes))
    for n, o in zip(sizes, outs):
        assert o.shape == (n, 7)


def test_forest_from_many_threads():
    sess = quiver.InferenceSession(FOREST / "xgboost" / "xgb17" / "PoissonVisitNA17.json")
    x = np.random.default_rng(5).normal(size=(4000, 8)).astype(np.float32)
    want = sess.run(["prediction"], {"input": x})[0]
    with ThreadPoolExecutor(max_workers=6) as pool:
        rows = list(pool.map(lambda r: sess.run(["prediction"], {"input": x[r:r + 1]})[0], range(0, 4000, 7)))
    for r, got in zip(range(0, 4000, 7), rows):
        np.testing.assert_allclose(got[0], want[r], rtol=1e-6, atol=1e-7)


def test_set_providers_while_threads_run():
    sess = quiver.InferenceSession(HEP / "hls4ml_three_layer" / "model.onnx")
    x = np.random.default_rng(2).random((1, 16), dtype=np.float32)
    want = sess.run(None, {"input_1_0": x})[0]
    stop = threading.Event()

    def caller():
        n = 0
        while not stop.is_set():
            np.testing.assert_allclose(sess.run(None, {"input_1_0": x})[0], want, rtol=1e-5, atol=1e-7)
            n += 1
        return n

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(caller) for _ in range(3)]
        for p in (["gpu-emulator"], ["CPUExecutionProvider"]) * 3:
            sess.set_providers(p)
        stop.set()
        assert all(f.result() > 0 for f in futures)
    assert sess.get_providers() == ["CPUExecutionProvider"]


class Ticker:
    """A Python thread that records when it ran: ticks inside a call prove the GIL was free."""

    def __init__(self):
        self.stamps = []
        self.stop = False
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while not self.stop:
            self.stamps.append(time.monotonic())
            time.sleep(0.001)

    def ticks_between(self, t0, t1):
        self.stop = True
        self.thread.join()
        return sum(1 for s in self.stamps if t0 < s < t1)


def test_gil_released_while_the_model_runs():
    sess = quiver.InferenceSession(HEP / "particlenet_ak4_hlt" / "model.onnx")
    feed = particlenet_inputs(n_jets=512)
    sess.run(None, feed)
    ticker = Ticker()
    t0 = time.monotonic()
    sess.run(None, feed)  # one call of many milliseconds, all in C++
    t1 = time.monotonic()
    assert ticker.ticks_between(t0, t1) > 0


def test_gil_released_while_a_request_is_in_flight(server):
    with quiver.Client(server.address, timeout=20.0, startup_wait=5.0) as c:
        ticker = Ticker()
        t0 = time.monotonic()
        c.infer("slow", {"INPUT0": np.zeros((1, 4), np.float32)})  # the server answers after 300 ms
        t1 = time.monotonic()
        assert ticker.ticks_between(t0, t1) > 0


def test_futures_complete_while_python_is_busy(server):
    with quiver.Client(server.address, timeout=20.0, startup_wait=5.0) as c:
        futures = [c.infer_async("identity", {"INPUT0": np.full((1, 4), i, np.float32)}) for i in range(50)]
        done = threading.Event()
        futures[-1].add_done_callback(lambda f: done.set())
        assert done.wait(20.0)
        for i, f in enumerate(futures):
            assert f.result()["OUTPUT0"][0, 0] == i
