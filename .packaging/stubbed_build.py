"""PEP 517 build backend: setuptools, plus type stubs generated from the module at build time.

PEP 561 has no ``py.typed`` marker for a single-file module, so a type checker ignores an installed
``anaconda_auth.py``. The wheel therefore also carries the stub-only package
``anaconda_auth-stubs/__init__.pyi``, made here from the module's own annotations (bodies and
values dropped), so every signature has one source: ``anaconda_auth.py``. CI checks the stubs
against the installed module with ``mypy.stubtest``. A vendored copy needs none of this: mypy reads
the copied file itself.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import os
import tarfile
import zipfile
from typing import Any

from setuptools import build_meta as _setuptools  # type: ignore[import-untyped]
from setuptools.build_meta import (  # type: ignore[import-untyped]  # noqa: F401
    build_editable,
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

MODULE = "anaconda_auth.py"
STUB = "anaconda_auth-stubs/__init__.pyi"
HEADER = "# Generated from anaconda_auth.py when the wheel was built; edit the module, not this file.\n"
_ELLIPSIS = ast.Expr(ast.Constant(...))
_LITERAL_TYPES = (str, int, float, bool, bytes)


def build_wheel(wheel_directory: str, config_settings: Any = None,
                metadata_directory: str | None = None) -> str:
    name: str = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    with open(MODULE, encoding="utf-8") as f:
        stub = module_stub(f.read())
    _add_to_wheel(os.path.join(wheel_directory, name), STUB, stub.encode())
    return name


def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    """setuptools' sdist, plus this file: building a wheel from the sdist needs the backend."""
    name: str = _setuptools.build_sdist(sdist_directory, config_settings)
    path = os.path.join(sdist_directory, name)
    with tarfile.open(path, "r:gz") as old:
        members = [(m, old.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                   for m in old.getmembers()]
    root = members[0][0].name.split("/")[0]
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as new:
        for member, data in members:
            new.addfile(member, io.BytesIO(data) if data is not None else None)
        new.add(__file__, arcname=f"{root}/.packaging/{os.path.basename(__file__)}")
    return name


# -- The stub: the module's declarations without their bodies --------------------------------------


def module_stub(source: str) -> str:
    """The ``.pyi`` text for a module: its public declarations, and the private ones they name,
    with bodies as ``...``."""
    body = _stub_statements(ast.parse(source).body, in_class=False)
    body = _public_and_what_it_names(body)
    uses_classvar = any(isinstance(n, ast.Name) and n.id == "ClassVar"
                        for stmt in body for n in ast.walk(stmt))
    if uses_classvar:
        body.insert(0, ast.ImportFrom("typing", [ast.alias("ClassVar")], 0))
    text = ast.unparse(ast.fix_missing_locations(ast.Module(body, [])))
    # ``__hash__ = None`` (an unhashable value type) narrows object's method, as typeshed's do.
    text = text.replace("__hash__: ClassVar[None]", "__hash__: ClassVar[None]  # type: ignore[assignment]")
    return HEADER + text + "\n"


def _declared_name(stmt: ast.stmt) -> str | None:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return stmt.name
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.target.id
    return None


def _public_and_what_it_names(body: list[ast.stmt]) -> list[ast.stmt]:
    """Drop private declarations no public one refers to: the module's internals are no part of
    its interface, and stubtest then checks every declaration the stub keeps."""
    private = {name: stmt for stmt in body
               if (name := _declared_name(stmt)) and name.startswith("_") and not name.startswith("__")}
    wanted: set[str] = set()
    todo = [stmt for stmt in body if _declared_name(stmt) not in private]
    while todo:
        for node in ast.walk(todo.pop()):
            if isinstance(node, ast.Name) and node.id in private and node.id not in wanted:
                wanted.add(node.id)
                todo.append(private[node.id])
    return [stmt for stmt in body if _declared_name(stmt) not in private.keys() - wanted]


def _stub_statements(statements: list[ast.stmt], in_class: bool) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for stmt in statements:
        out.extend(_stub_statement(stmt, in_class))
    return out


def _stub_statement(stmt: ast.stmt, in_class: bool) -> list[ast.stmt]:
    if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
        return []  # a stub is never executed
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [stmt]
    if isinstance(stmt, ast.If):
        return _stub_if(stmt, in_class)
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        if not in_class and stmt.name in ("__getattr__", "__dir__"):
            return []  # a lazy attribute hook would make every name on the module type as Any
        for default in [*stmt.args.defaults, *stmt.args.kw_defaults]:
            if default is not None:
                _replace(default, ast.Constant(...))
        stmt.body = [_ELLIPSIS]
        return [stmt]
    if isinstance(stmt, ast.ClassDef):
        attributes = _init_attributes(stmt)
        stmt.body = attributes + _stub_statements(stmt.body, in_class=True) or [_ELLIPSIS]
        return [stmt]
    if isinstance(stmt, ast.AnnAssign):
        stmt.value = None
        return [stmt]
    if isinstance(stmt, ast.Assign):
        return _stub_assign(stmt, in_class)
    return []  # docstrings, expressions, loops: nothing a type checker needs


def _init_attributes(cls: ast.ClassDef) -> list[ast.stmt]:
    """``self.name = param`` in ``__init__`` declares ``name`` with the parameter's annotation;
    ``self.name: T = ...`` declares it with ``T``. Other instance attributes must be annotated
    in the class body (stubtest reports the ones that are not)."""
    init = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
    if init is None:
        return []
    params = {a.arg: a.annotation for a in [*init.args.args, *init.args.kwonlyargs] if a.annotation}
    declared: dict[str, ast.expr] = {}
    for node in ast.walk(init):
        pairs: list[tuple[ast.expr, ast.expr | None]] = []
        if isinstance(node, ast.AnnAssign):
            pairs = [(node.target, node.annotation)]
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                targets = target.elts if isinstance(target, ast.Tuple) else [target]
                if len(values) == len(targets):
                    pairs += [(t, params.get(v.id) if isinstance(v, ast.Name) else None)
                              for t, v in zip(targets, values)]
        for target, annotation in pairs:
            if (annotation is not None and isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name) and target.value.id == "self"):
                declared.setdefault(target.attr, annotation)
    return [ast.AnnAssign(ast.Name(name), annotation, None, 1) for name, annotation in declared.items()]


def _stub_if(stmt: ast.If, in_class: bool) -> list[ast.stmt]:
    test = stmt.test
    if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
        return stmt.body  # written for the type checker already: imports and type aliases
    if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__":
        return []  # the ``python -m`` entry point
    stmt.body = _stub_statements(stmt.body, in_class) or [_ELLIPSIS]
    stmt.orelse = _stub_statements(stmt.orelse, in_class)
    return [stmt]


def _stub_assign(stmt: ast.Assign, in_class: bool) -> list[ast.stmt]:
    names = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
    if len(names) != len(stmt.targets) or "__slots__" in names:
        return []
    if names == ["__all__"] or isinstance(stmt.value, ast.Name):
        return [stmt]  # the export list, or an alias such as ``get = set = _block``
    value = stmt.value
    if isinstance(value, ast.Constant) and value.value is None and in_class:
        annotation: ast.expr = ast.parse("ClassVar[None]", mode="eval").body
    elif isinstance(value, ast.Constant) and isinstance(value.value, _LITERAL_TYPES):
        annotation = ast.Name(type(value.value).__name__)
    elif in_class or all(name.startswith("_") for name in names):
        return []  # private state, or a class attribute stubtest will ask for if it is public
    else:
        raise ValueError(f"{MODULE}:{stmt.lineno}: annotate {', '.join(names)} so the stub can "
                         "give its type")
    return [ast.AnnAssign(ast.Name(n), annotation, None, 1) for n in names]


def _replace(node: ast.AST, new: ast.AST) -> None:
    """Turn ``node`` into ``new`` in place (its parent keeps the same object)."""
    node.__class__ = new.__class__
    node.__dict__.clear()
    node.__dict__.update(new.__dict__)


# -- Writing into the wheel --------------------------------------------------------------------------


def _add_to_wheel(wheel: str, name: str, data: bytes) -> None:
    """Add a file to a built wheel and list it in the wheel's RECORD (PEP 376/427 hashes)."""
    with zipfile.ZipFile(wheel) as old:
        entries = [(info, old.read(info)) for info in old.infolist()]
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as new:
        new.writestr(zipfile.ZipInfo(name, date_time=entries[0][0].date_time), data)
        for info, content in entries:
            if info.filename.endswith(".dist-info/RECORD"):
                content += f"{name},sha256={digest},{len(data)}\n".encode()
            new.writestr(info, content)
