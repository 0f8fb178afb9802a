"""The Helm chart deploy/helm/quiver, rendered by deploy/render-chart (Go text/template + Sprig, the
engine Helm uses): every variant renders to YAML that parses, carries what its values ask for,
refuses bad values with a clear message, and deploy/k8s is what the chart renders now. The
balancer and Prometheus configs pass HAProxy's and promtool's own checks, and every metric the
chart and the dashboard read is one `quiver serve` really exports.

Environment: QUIVER_RENDER_BIN (renderer), QUIVER_BIN (quiver binary; metric-name test).
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest
import yaml  # Debian's python3-yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "deploy", "helm", "quiver")
EXAMPLES = os.path.join(ROOT, "deploy", "helm", "examples")
RENDER = os.environ.get("QUIVER_RENDER_BIN")
SCALING = ("sum(rate(nv_inference_queue_duration_us{%s}[%s])) / "
           "(sum(rate(nv_inference_exec_count{%s}[%s]))*1000)")


def render(*args, check=True):
    argv = ([RENDER, "--chart", CHART] if RENDER else [os.path.join(ROOT, "deploy", "render-chart")]) + list(args)
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def manifests(*args):
    """{(kind, name): object} of everything the chart renders with these arguments."""
    out = render(*args).stdout
    objs = {}
    for doc in yaml.safe_load_all(out):
        if doc is None:
            continue
        assert doc.get("apiVersion") and doc.get("kind"), doc
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), doc["metadata"]["name"]
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in objs, "rendered twice: %s" % (key,)
        objs[key] = doc
    return objs


def server_container(objs, name="quiver"):
    return objs[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]


def volumes(objs, name="quiver"):
    return {v["name"]: v for v in objs[("Deployment", name)]["spec"]["template"]["spec"]["volumes"]}


def test_k8s_manifests_in_sync():
    env = dict(os.environ)
    r = subprocess.run([os.path.join(ROOT, "deploy", "render-chart"), "--check"], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_k8s_manifests_parse():
    k8s = os.path.join(ROOT, "deploy", "k8s")
    kinds = set()
    for f in sorted(os.listdir(k8s)):
        with open(os.path.join(k8s, f)) as fh:
            for doc in yaml.safe_load_all(fh):
                if doc and f != "values.yaml":
                    kinds.add(doc["kind"])
    assert {"Deployment", "Service", "ConfigMap", "ScaledObject", "ServiceMonitor", "PrometheusRule",
            "PodDisruptionBudget"} <= kinds


def test_defaults():
    objs = manifests()
    c = server_container(objs)
    assert c["args"][0] == "serve"
    assert "--model-repository=/models" in c["args"] and "--bind=0.0.0.0" in c["args"]
    # Probes on the KServe v2 health endpoints; the startup probe allows minutes of model loading.
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    sp = c["startupProbe"]
    assert sp["httpGet"]["path"] == "/v2/health/ready" and sp["periodSeconds"] * sp["failureThreshold"] >= 300
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert volumes(objs)["model-repository"]["persistentVolumeClaim"]["claimName"] == "quiver-models"
    assert objs[("Deployment", "quiver")]["spec"]["replicas"] == 2
    assert ("ScaledObject", "quiver") not in objs  # KEDA is opt-in
    sec = objs[("Deployment", "quiver")]["spec"]["template"]["spec"]["securityContext"]
    assert sec["runAsNonRoot"] and sec["runAsUser"] != 0
    # The servers' headless Service (gRPC, HTTP, metrics) and the balancer's.
    svc = objs[("Service", "quiver-servers")]["spec"]
    assert svc["clusterIP"] == "None" and {p["name"] for p in svc["ports"]} == {"grpc", "http", "metrics"}
    assert {p["name"] for p in objs[("Service", "quiver")]["spec"]["ports"]} == {"grpc", "http", "stats"}
    # The Grafana dashboard ConfigMap is the dashboard file, verbatim.
    dash = objs[("ConfigMap", "quiver-dashboard")]["data"]["quiver-serve-dashboard.json"]
    with open(os.path.join(ROOT, "deploy", "grafana", "quiver-serve-dashboard.json")) as f:
        assert json.loads(dash) == json.load(f)


def test_keda_scaled_object():
    objs = manifests("--set", "keda.enabled=true", "--set", "keda.threshold=25", "--set", "keda.window=30s",
                     "--set", "keda.minReplicas=2", "--set", "keda.maxReplicas=12")
    so = objs[("ScaledObject", "quiver")]["spec"]
    assert so["scaleTargetRef"]["name"] == "quiver" and so["minReplicaCount"] == 2 and so["maxReplicaCount"] == 12
    trig = so["triggers"][0]
    assert trig["type"] == "prometheus" and trig["metadata"]["threshold"] == "25"
    m = 'job="quiver-servers",namespace="quiver"'
    assert trig["metadata"]["query"] == SCALING % (m, "30s", m, "30s")
    assert "replicas" not in objs[("Deployment", "quiver")]["spec"]  # KEDA owns the count


def test_gpu_pool():
    objs = manifests("-f", os.path.join(EXAMPLES, "values-gpu.yaml"))
    c = server_container(objs)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    spec = objs[("Deployment", "quiver")]["spec"]["template"]["spec"]
    assert any(t.get("key") == "nvidia.com/gpu" for t in spec["tolerations"])


def test_cpu_pool_example():
    objs = manifests("-f", os.path.join(EXAMPLES, "values-cpu.yaml"))
    c = server_container(objs)
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert objs[("ScaledObject", "quiver")]["spec"]["maxReplicaCount"] >= 2


def test_cvmfs_host_path():
    objs = manifests("-f", os.path.join(EXAMPLES, "values-cvmfs.yaml"))
    c = server_container(objs)
    mount = next(m for m in c["volumeMounts"] if m["name"] == "model-repository")
    assert mount["mountPath"] == "/cvmfs" and mount["mountPropagation"] == "HostToContainer" and mount["readOnly"]
    assert volumes(objs)["model-repository"]["hostPath"]["path"] == "/cvmfs"
    repo = next(x for x in c["args"] if x.startswith("--model-repository="))
    assert repo.startswith("--model-repository=/cvmfs/") and "//" not in repo


def test_nfs_and_pvc():
    objs = manifests("--set", "repository.type=nfs", "--set", "repository.nfs.server=nfs.example.org",
                     "--set", "repository.nfs.path=/export/models")
    nfs = volumes(objs)["model-repository"]["nfs"]
    assert nfs == {"server": "nfs.example.org", "path": "/export/models", "readOnly": True}
    objs = manifests("--set", "repository.pvc.claimName=my-models")
    assert volumes(objs)["model-repository"]["persistentVolumeClaim"]["claimName"] == "my-models"


@pytest.mark.parametrize("args,message", [
    (["--set", "repository.type=s3"], "repository.type must be pvc, nfs, hostPath or emptyDir"),
    (["--set", "repository.type=nfs"], "repository.nfs.server is required"),
    (["--set", "auth.enabled=true"], "auth.enabled needs auth.existingSecret"),
])
def test_bad_values_fail_clearly(args, message):
    r = render(*args, check=False)
    assert r.returncode != 0 and message in r.stderr, r.stderr


def test_tls():
    objs = manifests("-f", os.path.join(EXAMPLES, "values-tls-auth.yaml"))
    bal = objs[("Deployment", "quiver-balancer")]["spec"]["template"]["spec"]
    tls = next(v for v in bal["volumes"] if v["name"] == "tls")["secret"]
    assert tls["secretName"] == "quiver-tls"
    assert {i["path"] for i in tls["items"]} >= {"tls.pem", "tls.pem.key"}
    cfg = objs[("ConfigMap", "quiver-balancer")]["data"]["haproxy.cfg"]
    assert re.search(r"bind :8001 ssl crt /etc/quiver-balancer/tls/tls.pem alpn h2", cfg)
    c = server_container(objs)
    assert "--grpc-server-cert=/etc/quiver/tls/tls.crt" in c["args"]
    assert re.search(r"server-template srv .* ssl no-check-ssl check-proto h1 alpn h2", cfg)


def test_auth_wiring():
    objs = manifests("-f", os.path.join(EXAMPLES, "values-tls-auth.yaml"))
    c = server_container(objs)
    assert "--auth-token-file=/etc/quiver/auth/tokens" in c["args"]
    assert volumes(objs)["auth"]["secret"]["secretName"] == "quiver-client-tokens"
    assert ("Secret", "quiver-auth") not in objs  # an existing Secret is used, none is made
    objs = manifests("--set", "auth.enabled=true", "--set", "auth.tokens=[tok-a, tok-b]")
    secret = objs[("Secret", "quiver-auth")]
    assert secret["stringData"]["tokens"].split() == ["tok-a", "tok-b"]
    assert volumes(objs)["auth"]["secret"]["secretName"] == "quiver-auth"


def test_balancer_per_request_grpc():
    cfg = render("--include", "quiver.haproxyConfig").stdout
    assert re.search(r"^frontend grpc\n\s+bind :8001 proto h2$", cfg, re.M)  # HTTP/2: per-stream balancing
    assert "mode http" in cfg and "balance leastconn" in cfg
    assert "http-check send meth GET uri /v2/health/ready" in cfg
    assert re.search(r"server-template srv 1-64 quiver-servers\.quiver\.svc\.cluster\.local:8001 .*proto h2", cfg)


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy not installed")
@pytest.mark.parametrize("args", [
    [],
    ["--set", "balancer.limits.perClientConnections=50", "--set", "balancer.limits.perClientRequestsPerSecond=200"],
    ["--set", "balancer.staticServers=[{name: a, address: 127.0.0.1, grpcPort: 1, httpPort: 2}]"],
    ["--set", "tls.enabled=true", "--set", "tls.backend=true", "--set", "tls.verifyBackend=true"],
])
def test_haproxy_accepts_config(args, tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=q",
                    "-keyout", str(tmp_path / "tls.pem.key"), "-out", str(tmp_path / "tls.pem")],
                   check=True, capture_output=True)
    shutil.copy(tmp_path / "tls.pem", tmp_path / "ca.crt")
    cfg = render("--set", "balancer.statsSocket=%s" % (tmp_path / "admin.sock"), *args,
                 "--include", "quiver.haproxyConfig").stdout
    cfg = cfg.replace("/etc/quiver-balancer/tls", str(tmp_path))
    (tmp_path / "haproxy.cfg").write_text(cfg)
    r = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[WARNING]" not in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (prometheus) not installed")
def test_prometheus_config_and_rules(tmp_path):
    # Debian's Prometheus has no Kubernetes service discovery, so promtool checks the static variant;
    # the rules are the same text in both.
    static = "monitoring.staticTargets={servers: ['127.0.0.1:8002'], balancer: ['127.0.0.1:8404']}"
    (tmp_path / "prometheus.yml").write_text(render("--set", static, "--include", "quiver.prometheusConfig").stdout)
    (tmp_path / "quiver-rules.yml").write_text(render("--include", "quiver.prometheusRulesFile").stdout)
    r = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    k8s = yaml.safe_load(render("--include", "quiver.prometheusConfig").stdout)
    assert k8s["scrape_configs"][0]["kubernetes_sd_configs"][0]["role"] == "endpoints"


def used_metric_names():
    """Metric names in the scaling query, the rules and the dashboard (not HAProxy's, not `up`)."""
    texts = [render("--set", "keda.enabled=true", "--include", "quiver.scalingQuery").stdout,
             render("--include", "quiver.prometheusRulesFile").stdout]
    with open(os.path.join(ROOT, "deploy", "grafana", "quiver-serve-dashboard.json")) as f:
        dash = json.load(f)
    for panel in dash["panels"]:
        texts += [t["expr"] for t in panel.get("targets", [])]
    texts += [v.get("query", "") for v in dash.get("templating", {}).get("list", []) if isinstance(v.get("query"), str)]
    names = set()
    for t in texts:
        names |= set(re.findall(r"\b((?:nv|process)_[a-z_]+)\b", t))
    return names


@pytest.mark.skipif(not os.environ.get("QUIVER_BIN"), reason="QUIVER_BIN not set")
def test_metric_names_are_exported(tmp_path):
    repo = tmp_path / "models"
    (repo / "ident" / "1").mkdir(parents=True)
    (repo / "ident" / "config.pbtxt").write_text(
        'backend: "identity"\nmax_batch_size: 4\n'
        'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
        'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 2 ] } ]\n')
    p = subprocess.Popen([os.environ["QUIVER_BIN"], "serve", "--model-repository", str(repo), "--grpc-port", "0",
                          "--http-port", "0", "--metrics-port", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    try:
        m = re.search(r"http=127\.0\.0\.1:(\d+) metrics=127\.0\.0\.1:(\d+)", p.stdout.readline())
        assert m, "quiver serve did not start"
        http, metrics = m.groups()
        body = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 2], "datatype": "FP32",
                                       "data": [1, 2]}]}).encode()
        req = urllib.request.Request("http://127.0.0.1:%s/v2/models/ident/infer" % http, data=body, method="POST")
        assert urllib.request.urlopen(req, timeout=10).status == 200
        text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % metrics, timeout=10).read().decode()
    finally:
        p.terminate()
        p.wait(timeout=10)
    exported = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    used = used_metric_names()
    assert {"nv_inference_queue_duration_us", "nv_inference_exec_count"} <= used
    missing = used - exported
    assert not missing, "read by the chart/dashboard but not exported by quiver serve: %s" % sorted(missing)
