"""The type stubs (quiver/__init__.pyi) describe the module as it is: every public name, class member
and parameter in the stubs exists at run time, and every public one at run time is in the stubs."""
import ast
import inspect
import pathlib
import re

import quiver

STUB = pathlib.Path(quiver.__file__).with_name("__init__.pyi")
# what classes inherit and need no stub entry
INHERITED = set(dir(object)) | set(dir(dict)) | set(dir(Exception)) | {"__members__", "__entries", "__module__", "__qualname__"}


def stub_tree():
    return ast.parse(STUB.read_text())


def stub_classes():
    classes = {}
    for node in stub_tree().body:
        if isinstance(node, ast.ClassDef):
            members = {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members[item.name] = item
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members[item.target.id] = item
            classes[node.name] = members
    return classes


def stub_functions():
    return {n.name: n for n in stub_tree().body if isinstance(n, ast.FunctionDef)}


def runtime_params(fn):
    """Parameter names from pybind11's signature line (name(self, a: T, b: T = ...) -> R)."""
    doc = (fn.__doc__ or "").splitlines()
    m = re.match(r"\w+\((.*)\)\s*->", doc[0] if doc else "")
    assert m, f"no signature in the docstring of {fn}"
    names = []
    depth, cur = 0, ""
    for ch in m.group(1) + ",":
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            part = cur.strip()
            if part and part not in ("*", "/"):
                names.append(part.split(":")[0].split("=")[0].strip().lstrip("*"))
            cur = ""
        else:
            cur += ch
    return names


def test_every_public_name_is_stubbed_and_exists():
    tree = stub_tree()
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    stubbed |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    runtime = {n for n in dir(quiver) if not n.startswith("_")} | {"__version__"}
    assert runtime - stubbed == set(), "public at run time, missing from the stubs"
    assert {n for n in stubbed if not n.startswith("_")} - runtime == set(), "in the stubs, missing at run time"


def test_class_members_match():
    for name, members in stub_classes().items():
        cls = getattr(quiver, name)
        if issubclass(cls, quiver.Error):
            continue  # attributes are set on each raised instance (test_session checks them)
        for m in members:
            assert hasattr(cls, m), f"{name}.{m} is in the stubs but not at run time"
        public = {m for m in vars(cls) if not (m.startswith("_") and m not in ("__enter__", "__exit__", "__init__"))}
        public -= INHERITED - {"__init__", "__enter__", "__exit__"}
        missing = {m for m in public if m not in members and not m.startswith("_")}
        assert not missing, f"{name}: public at run time, missing from the stubs: {missing}"


def test_parameters_match():
    classes = stub_classes()
    for cname in ("InferenceSession", "Client", "SessionOptions", "RunOptions"):
        cls = getattr(quiver, cname)
        for mname, node in classes[cname].items():
            if not isinstance(node, ast.FunctionDef) or mname.startswith("__") and mname != "__init__":
                continue
            fn = getattr(cls, mname)
            if isinstance(fn, property):
                continue
            stub = [a.arg for a in node.args.args + node.args.kwonlyargs]
            assert runtime_params(fn) == stub, f"{cname}.{mname}"
    for fname, node in stub_functions().items():
        assert runtime_params(getattr(quiver, fname)) == [a.arg for a in node.args.args], fname


def test_docstrings():
    for name in ("InferenceSession", "Client", "SessionOptions", "ModelMetadata", "InferResult", "Provenance", "Error"):
        assert len(inspect.getdoc(getattr(quiver, name)) or "") > 40, name
    assert "numpy" in quiver.InferenceSession.run.__doc__
    assert "Future" in quiver.Client.infer_async.__doc__
