"""quiver.Client against a real `quiver serve` on a free loopback port: results, provenance, futures,
errors as exceptions, kill-the-server -> local fallback, coalescing across Python threads."""
import concurrent.futures
import threading
import time

import numpy as np
import pytest

import quiver
from conftest import HEP, Server, particlenet_inputs


def fast(client_kwargs):
    return dict(timeout=20.0, startup_wait=5.0, **client_kwargs)


def test_infer_returns_numpy_and_provenance(server, repository):
    with quiver.Client(f"grpc://{server.address}", **fast({})) as c:
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        r = c.infer("identity", {"INPUT0": x})
        assert isinstance(r, dict) and isinstance(r, quiver.InferResult)
        assert list(r) == ["OUTPUT0"] and np.array_equal(r["OUTPUT0"], x)
        assert r["OUTPUT0"].dtype == np.float32 and r["OUTPUT0"].flags.writeable
        p = r.provenance
        assert p.server == server.address and p.model == "identity" and p.version == "1"
        assert not p.fallback and p.attempts == 1
        assert r.request_id and r.client_seconds > 0


def test_particlenet_agrees_with_the_session(server):
    feed = particlenet_inputs(n_jets=6)
    local = quiver.InferenceSession(HEP / "particlenet_ak4_hlt" / "model.onnx").run(None, feed)[0]
    with quiver.Client(server.address, **fast({})) as c:
        r = c.infer("particlenet_ak4_hlt", feed)
        np.testing.assert_allclose(r["output"], local, rtol=1e-5, atol=1e-6)
        md = c.model_metadata("particlenet_ak4_hlt")
        assert [i.name for i in md.inputs][:2] == ["pf_points", "pf_features"]
        assert md.source == server.address
        # once the metadata is cached, results carry the model file's checksum
        r = c.infer("particlenet_ak4_hlt", feed)
        assert r.provenance.sha256 == quiver.InferenceSession(HEP / "particlenet_ak4_hlt" / "model.onnx").get_modelmeta().sha256


def test_infer_async_returns_futures(server):
    with quiver.Client(server.address, **fast({})) as c:
        xs = [np.full((1, 4), i, np.float32) for i in range(20)]
        futures = [c.infer_async("identity", {"INPUT0": x}) for x in xs]
        assert all(isinstance(f, concurrent.futures.Future) for f in futures)
        for x, f in zip(xs, futures):
            assert np.array_equal(f.result(timeout=20)["OUTPUT0"], x)
        bad = c.infer_async("no_such_model", {"INPUT0": xs[0]})
        with pytest.raises(quiver.NotFound) as e:
            bad.result(timeout=20)
        assert "no_such_model" in str(e.value)


def test_async_inputs_may_be_reused_at_once(server):
    with quiver.Client(server.address, coalesce=True, coalesce_max_delay=0.05, **fast({})) as c:
        x = np.ones((1, 4), np.float32)
        f = c.infer_async("identity", {"INPUT0": x})
        x[:] = 7  # the request holds a copy while it waits for company
        assert np.array_equal(f.result(timeout=20)["OUTPUT0"], np.ones((1, 4), np.float32))


def test_errors_are_the_client_errors(server):
    with quiver.Client(server.address, **fast({})) as c:
        with pytest.raises(quiver.NotFound, match="nope"):
            c.infer("nope", {"INPUT0": np.zeros((1, 4), np.float32)})
        with pytest.raises(quiver.InvalidArgument) as e:
            c.infer("identity", {"INPUT0": np.zeros((1, 5), np.float32)})
        assert "INPUT0" in str(e.value)
        with pytest.raises(quiver.DeadlineExceeded):
            c.infer("slow", {"INPUT0": np.zeros((1, 4), np.float32)}, timeout=0.05)
        with pytest.raises(quiver.InvalidArgument, match="numpy array"):
            c.infer("identity", {"INPUT0": [[1.0, 2.0, 3.0, 4.0]]})
    with pytest.raises(quiver.InvalidArgument, match="no servers"):
        quiver.Client()
    with pytest.raises(quiver.InvalidArgument, match="names a model"):
        quiver.Client("grpc://127.0.0.1:1/mlp")
    with pytest.raises(quiver.InvalidArgument):
        quiver.Client("http://127.0.0.1:1")


def test_no_server_and_no_fallback_is_unavailable(server):
    addr = server.address
    server.kill()
    with quiver.Client(addr, timeout=2.0, startup_wait=0.2) as c:
        with pytest.raises(quiver.Unavailable):
            c.infer("identity", {"INPUT0": np.zeros((1, 4), np.float32)})


def test_kill_the_server_then_fallback(server, repository):
    feed = particlenet_inputs(n_jets=3)
    with quiver.Client(server.address, fallback_repository=repository, **fast({})) as c:
        c.model_metadata("particlenet_ak4_hlt")  # caches the config, whose checksum results then carry
        remote = c.infer("particlenet_ak4_hlt", feed)
        assert not remote.provenance.fallback and remote.provenance.server == server.address
        server.kill()
        local = c.infer("particlenet_ak4_hlt", feed)
        assert local.provenance.fallback and local.provenance.server.startswith("local:")
        assert local.provenance.sha256 == remote.provenance.sha256
        np.testing.assert_allclose(local["output"], remote["output"], rtol=1e-5, atol=1e-6)
        assert c.report()["fallbacks"] >= 1
        # and back to the server once it returns on the same port
        server.restart()
        assert c.wait_for_serving(1, 20.0)
        again = c.infer("particlenet_ak4_hlt", feed)
        assert not again.provenance.fallback


def test_bearer_token_from_a_file(repository, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("site-token-1\nsite-token-2\n")
    mine = tmp_path / "client-token"
    mine.write_text("# this job's token\nsite-token-2\n")
    s = Server(repository, extra=["--auth-token-file", str(tokens)])
    try:
        x = np.arange(4, dtype=np.float32).reshape(1, 4)
        with quiver.Client(s.address, token_file=mine, **fast({})) as c:
            r = c.infer("identity", {"INPUT0": x})
            assert np.array_equal(r["OUTPUT0"], x) and not r.provenance.fallback
            assert [i.name for i in c.model_metadata("identity").inputs] == ["INPUT0"]
        with quiver.Client(s.address, **fast({})) as c:  # readiness needs no token, inference does
            with pytest.raises(quiver.Error, match="UNAUTHENTICATED"):
                c.infer("identity", {"INPUT0": x})
        with pytest.raises(quiver.Error, match="no_such_token_file"):
            quiver.Client(s.address, token_file=tmp_path / "no_such_token_file")
    finally:
        s.kill()


def test_startup_wait_lets_a_starting_server_take_the_first_request(server, repository):
    addr = server.address
    server.kill()
    # The server comes back on its port while the client is being constructed. The thread that
    # starts it lives until the server is killed (the server dies with the thread that forked it).
    done = threading.Event()

    def start_later():
        time.sleep(0.5)
        server.start()
        done.wait()
        server.kill()

    starter = threading.Thread(target=start_later)
    starter.start()
    try:
        with quiver.Client(addr, fallback_repository=repository, timeout=20.0, startup_wait=20.0) as c:
            r = c.infer("identity", {"INPUT0": np.ones((1, 4), np.float32)})
            assert not r.provenance.fallback and r.provenance.server == addr
    finally:
        done.set()
        starter.join()
    with pytest.raises(quiver.InvalidArgument, match="startup_wait"):
        quiver.Client(addr, startup_wait=-1.0)


def test_always_local_needs_no_server(repository):
    with quiver.Client(fallback="always-local", fallback_repository=repository) as c:
        r = c.infer("identity", {"INPUT0": np.ones((2, 4), np.float32)})
        assert r.provenance.fallback and np.array_equal(r["OUTPUT0"], np.ones((2, 4), np.float32))


def test_coalescing_across_python_threads(server):
    with quiver.Client(server.address, coalesce=True, coalesce_max_delay=0.2, **fast({})) as c:
        n = 16
        barrier = threading.Barrier(n)
        results = [None] * n

        def one(i):
            barrier.wait()
            results[i] = c.infer("identity", {"INPUT0": np.full((1, 4), i, np.float32)})

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, r in enumerate(results):
            assert np.array_equal(r["OUTPUT0"], np.full((1, 4), i, np.float32))
        stats = c.report()["coalescing"]
        assert stats["requests"] == n and stats["rpcs"] < n  # threads' requests shared RPCs


def test_close_settles_every_future(server):
    c = quiver.Client(server.address, **fast({}))
    futures = [c.infer_async("slow", {"INPUT0": np.zeros((1, 4), np.float32)}) for _ in range(4)]
    c.close()
    assert c.closed
    for f in futures:
        assert f.done()
        if f.exception() is not None:
            assert isinstance(f.exception(), quiver.Cancelled)
    with pytest.raises(quiver.Cancelled, match="closed"):
        c.infer("identity", {"INPUT0": np.zeros((1, 4), np.float32)})
    c.close()  # idempotent


def test_servers_file_and_urls_list(server, tmp_path):
    f = tmp_path / "servers.txt"
    f.write_text(f"# test\n{server.address}\n")
    with quiver.Client(servers_file=f, **fast({})) as c:
        assert np.array_equal(c.infer("identity", {"INPUT0": np.ones((1, 4), np.float32)})["OUTPUT0"],
                              np.ones((1, 4), np.float32))
    with quiver.Client([server.address], **fast({})) as c:
        assert c.report()["servers"][0]["address"] == server.address


def test_remote_model_file_through_the_session(server, tmp_path):
    f = tmp_path / "mlp.remote.json"
    f.write_text('{"format": "quiver-remote", "url": "grpc://%s/hls4ml_three_layer", "timeout_ms": 20000}' % server.address)
    s = quiver.InferenceSession(f)
    x = np.random.default_rng(0).random((1, 16), dtype=np.float32)
    local = quiver.InferenceSession(HEP / "hls4ml_three_layer" / "model.onnx").run(None, {"input_1_0": x})[0]
    np.testing.assert_allclose(s.run(None, {"input_1_0": x})[0], local, rtol=1e-6, atol=1e-7)
    assert s.get_modelmeta().backend == "remote"
