"""The container image's recipe: Containerfile + scripts/image-packages + scripts/image-stage.

Containers cannot run here, so what is checked is what a container would get: every shared library
the build links resolves to a package the runtime stage installs (listed, a dependency of a listed
one, or part of every Debian root), the image runs as a non-root user, and nothing comes from a
registry. scripts/build-image builds and smoke-tests the image root itself (root, buildah).
Environment: QUIVER_BIN (the built quiver binary).
"""
import glob
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def listed_packages():
    with open(os.path.join(ROOT, "scripts", "image-packages")) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def test_containerfile_never_pulls_and_runs_non_root():
    with open(os.path.join(ROOT, "Containerfile")) as f:
        text = f.read()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms and all(f.startswith("${BASE}") for f in froms), froms
    assert re.search(r"^ARG BASE=localhost/", text, re.M)
    stages = text.split("\nFROM ")
    runtime = stages[-1]
    user = re.search(r"^USER (\d+)", runtime, re.M)
    assert user and int(user.group(1)) != 0
    assert "image-stage runtime" in runtime and "COPY --from=build /opt/quiver /opt/quiver" in runtime
    assert re.search(r'^ENTRYPOINT \["/opt/quiver/bin/quiver"\]', runtime, re.M)


@pytest.mark.skipif(not os.environ.get("QUIVER_BIN"), reason="QUIVER_BIN not set")
def test_image_packages_cover_what_the_build_links():
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.environ["QUIVER_BIN"])))
    # The image is a CPU build (QUIVER_CUDA=OFF): the CUDA kernel libraries are not in it.
    files = [os.environ["QUIVER_BIN"]] + [f for f in glob.glob(os.path.join(build, "src", "**", "libquiver_*.so*"),
                                                                  recursive=True)
                                           if "cuda" not in os.path.basename(f)]
    libs = set()
    for f in files:
        out = subprocess.run(["ldd", f], capture_output=True, text=True, check=True).stdout
        assert "not found" not in out, out
        for path in re.findall(r"=> (/\S+)", out):
            if not path.startswith(build) and "/cuda" not in path:
                libs.add(os.path.realpath(path))
    owners = {}
    for lib in sorted(libs):
        r = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
        if r.returncode != 0:  # merged /usr: dpkg knows /lib/... for /usr/lib/...
            r = subprocess.run(["dpkg", "-S", lib.replace("/usr/lib/", "/lib/", 1)], capture_output=True, text=True)
        assert r.returncode == 0, "no Debian package owns %s" % lib
        owners[lib] = r.stdout.split(":")[0]
    listed = listed_packages()
    deps = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                           "--no-breaks", "--no-replaces", "--no-enhances", "--no-pre-depends"] + listed,
                          capture_output=True, text=True, check=True).stdout
    installed = {l.strip() for l in deps.splitlines() if l and not l.startswith(" ")}
    installed |= {re.sub(r"^\s*Depends: <?([^>]+)>?$", r"\1", l) for l in deps.splitlines() if "Depends:" in l}
    missing = []
    for lib, pkg in owners.items():
        if pkg in installed:
            continue
        prio = subprocess.run(["dpkg-query", "-W", "-f", "${Priority}", pkg], capture_output=True, text=True).stdout
        if prio != "required":  # debootstrap's minbase root has every required package
            missing.append("%s (%s)" % (pkg, lib))
    assert not missing, "scripts/image-packages lacks: %s" % ", ".join(missing)
