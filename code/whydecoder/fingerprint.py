"""Fingerprints of the code a result or a verdict depends on: the whole call tree inside
the package, not one function's source.

A verdict rule's ``decide`` calls helpers (an interval, a fitted slope), and a section of
an experiment calls the model, the trainer and the data; a change to any of them changes
what is computed. :func:`call_tree` collects, from one or more starting functions, every
function and class of ``whydecoder`` they name, transitively (through module attributes,
closures, default arguments, class members and base classes), with its source, and the
plain-data constants of the package's modules they read (thresholds, lists of
architectures). :func:`fingerprint` hashes that tree. Functions from other libraries are
recorded by name only (their versions are in the provenance).

What the walk cannot see: a method reached only through an object whose class the tree
never names, and objects built at import time that are not plain data. Both are rare in
this package; the tests check the cases a decision depends on.

Explained in "How to read this book" (stored results, verdicts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import dis
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
import types

PACKAGE = "whydecoder"


def _in_package_name(module: str | None) -> bool:
    return bool(module) and (module == PACKAGE or module.startswith(PACKAGE + "."))


def _in_package(obj) -> bool:
    return _in_package_name(getattr(obj, "__module__", None))


def _plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return True
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(_plain(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def _canonical(value) -> str:
    """A repr that does not depend on hash order (sets are sorted)."""
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_canonical(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_canonical(k)}: {_canonical(v)}" for k, v in value.items()) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ", ".join(f"{f.name}={_canonical(getattr(value, f.name))}" for f in dataclasses.fields(value))
        return f"{type(value).__qualname__}({fields})"
    return repr(value)


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


class _Walker:
    """One walk over the package, its sources cached: several roots share it.

    ``transparent``: modules whose functions are walked through (what they name is
    followed) but whose own source is not recorded: the machinery that stores results
    computes none of them, and a change to it must not make a campaign's finished parts
    look foreign."""

    def __init__(self, transparent: tuple[str, ...] = ()):
        self.sources: dict[int, tuple] = {}
        self.transparent = tuple(transparent)
        self.visited: dict[tuple[int, bool], tuple] = {}

    def visit(self, obj, root: bool = False):
        """:meth:`_visit`, once per object and walk (the object is kept alive with it)."""
        key = (id(obj), root)
        if key not in self.visited:
            self.visited[key] = (obj, self._visit(obj, root))
        return self.visited[key][1]

    def _visit(self, obj, root: bool = False):
        """``(key, source, objects it names)`` for one object; a root is walked even when it
        lives outside the package (a notebook's or a test's function)."""
        if isinstance(obj, functools.partial):
            return [("", "", [obj.func, *obj.args, *obj.keywords.values()])]
        if isinstance(obj, (staticmethod, classmethod)):
            return [("", "", [obj.__func__])]
        if isinstance(obj, property):
            return [("", "", [f for f in (obj.fget, obj.fset, obj.fdel) if f])]
        if hasattr(obj, "__wrapped__") and callable(obj):
            return [("", "", [obj.__wrapped__])]
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            return []
        if inspect.isfunction(obj) and obj.__code__.co_filename.startswith("<"):
            return []  # made by exec (a dataclass's __init__, __eq__): its class's source stands for it
        key = f"{obj.__module__}.{obj.__qualname__}"
        if not (_in_package(obj) or (root and inspect.isfunction(obj))):
            return [(key, "(outside the package)", [])]
        if obj.__module__ in self.transparent:
            return [("", "", self._references(obj) if inspect.isfunction(obj) else [])]
        source = self._source(obj)
        if inspect.isfunction(obj):  # default values are fixed when the function is made, not read from its code
            defaults = [v for v in (obj.__defaults__ or ()) + tuple((obj.__kwdefaults__ or {}).values()) if _plain(v)]
            if defaults:
                source += f"\n# defaults: {_canonical(defaults)}"
        if "<locals>" in obj.__qualname__ or "<lambda>" in obj.__qualname__:  # lambdas share a name: their source tells them apart
            key += "#" + hashlib.sha256(source.encode()).hexdigest()[:8]
        if inspect.isclass(obj):
            members = [m for m in vars(obj).values()
                       if inspect.isfunction(m) or isinstance(m, (staticmethod, classmethod, property))]
            bases = [b for b in obj.__bases__ if _in_package(b)]
            return [(key, source, members + bases)]
        return [(key, source, self._references(obj))]

    def _source(self, obj) -> str:
        key = id(getattr(obj, "__code__", obj))  # each lambda its own: they share a qualified name
        if key not in self.sources:
            try:
                source = inspect.getsource(obj)
            except (OSError, TypeError):  # made at run time: its code object stands for its source
                code = getattr(obj, "__code__", None)
                source = repr(code.co_code) if code else repr(obj)
            self.sources[key] = (obj, source)  # the object kept alive: its id stays its own
        return self.sources[key][1]

    def _references(self, function) -> list:
        """What a function names: package functions, classes and module attributes it reads
        (imported at the top of its module or inside the function), the package's
        plain-data constants, its closure's and defaults' functions, and, for a closure,
        the function that made it (what the closure captured was computed there)."""
        names: set[str] = set()
        imported: dict[str, object] = {}
        for code in _code_objects(function.__code__):
            names |= set(code.co_names) | set(code.co_freevars)
            imported |= _local_imports(code, function.__module__)
        cells = [cell.cell_contents for cell in (function.__closure__ or ()) if _filled(cell)]
        extra = cells + list(function.__defaults__ or ()) + list((function.__kwdefaults__ or {}).values())
        globals_ = function.__globals__
        owner = globals_.get("__name__", "")
        out: list = []
        seen_modules: set[str] = set()
        for name in sorted(names):
            if name in function.__code__.co_freevars or name.startswith("__"):  # dunders: a file's path is no code
                continue
            if name in globals_:
                out.extend(self._named(globals_[name], names, f"{owner}.{name}", owner, seen_modules))
        for name, value in sorted(imported.items()):
            out.extend(self._named(value, names, f"{getattr(value, '__module__', owner)}.{name}",
                                   getattr(value, "__module__", "") or "", seen_modules))
        for value in extra:
            if inspect.isfunction(value) or inspect.isclass(value) or isinstance(value, (functools.partial,
                                                                                           types.ModuleType)):
                out.extend(self._named(value, names, "", owner, seen_modules))
        if "<locals>" in function.__qualname__:
            enclosing = _enclosing(function)
            if enclosing is not None:
                out.append(enclosing)
        return out

    def _named(self, value, names: set[str], where: str, owner: str, seen_modules: set[str]) -> list:
        if isinstance(value, types.ModuleType):
            if not _in_package_name(value.__name__) or value.__name__ in seen_modules:
                return []
            seen_modules.add(value.__name__)
            found = []
            for n in sorted(names):
                if not n.startswith("__") and hasattr(value, n):
                    found.extend(self._named(getattr(value, n), names, f"{value.__name__}.{n}", value.__name__,
                                             seen_modules))
            return found
        if inspect.isfunction(value) or inspect.isclass(value) or isinstance(value, functools.partial) or (
                hasattr(value, "__wrapped__") and callable(value)):
            return [value]
        if isinstance(value, (dict, list, tuple)) and not _plain(value):  # a table of functions (activations, mixers)
            items = value.values() if isinstance(value, dict) else value
            found = [v for v in items if inspect.isfunction(v) or inspect.isclass(v) or isinstance(v, functools.partial)]
            keys = _canonical(sorted(map(str, value))) if isinstance(value, dict) else str(len(value))
            return found + ([_Constant(where, f"table of {keys}")] if where and _in_package_name(owner) else [])
        state = where.rpartition(".")[2].startswith("_") and isinstance(value, (dict, list, set))
        if where and _in_package_name(owner) and owner not in self.transparent and not state and _plain(value):
            return [_Constant(where, _canonical(value))]  # a private dict, list or set is state, not a constant
        return []


class _Constant:
    """A plain-data constant of the package, as the walk records it."""

    def __init__(self, where: str, text: str):
        self.where, self.text = where, text


def _local_imports(code: types.CodeType, module: str) -> dict[str, object]:
    """``{name: object}`` of the package names a code object imports in its body
    (``from .verdicts import t_interval`` inside a function)."""
    found: dict[str, object] = {}
    base = None
    consts: list = []
    for ins in dis.get_instructions(code):
        if ins.opname == "LOAD_CONST":
            consts.append(ins.argval)
            continue
        if ins.opname == "IMPORT_NAME":
            level = consts[-2] if len(consts) >= 2 and isinstance(consts[-2], int) else 0
            package = module if hasattr(sys.modules.get(module), "__path__") else module.rpartition(".")[0]
            try:
                name = importlib.util.resolve_name("." * level + ins.argval, package) if level else ins.argval
            except (ImportError, ValueError):
                name = None
            base = sys.modules.get(name) if _in_package_name(name) else None
            if base is None and _in_package_name(name):
                with contextlib.suppress(ImportError):
                    base = importlib.import_module(name)
            if base is not None and (not consts or consts[-1] is None):
                found[ins.argval.rpartition(".")[2]] = base  # import whydecoder.x: the module itself
        elif ins.opname == "IMPORT_FROM" and base is not None:
            if hasattr(base, ins.argval):
                found[ins.argval] = getattr(base, ins.argval)
        consts = []
    return {k: v for k, v in found.items() if v is not None}


def _enclosing(function):
    """The module-level function (or class member) whose body defined ``function``."""
    module = sys.modules.get(function.__module__)
    obj = module
    for part in function.__qualname__.split(".<locals>")[0].split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if inspect.isfunction(obj) else None


def _filled(cell) -> bool:
    try:
        _ = cell.cell_contents
    except ValueError:  # a cell not yet assigned
        return False
    return True


def call_tree(*roots, transparent: tuple[str, ...] = ()) -> dict[str, str]:
    """``{qualified name: source}`` of every package function and class that ``roots``
    reach, with the plain-data constants they read (``"module.NAME ="``: its value) and the
    outside functions they name (source ``"(outside the package)"``); the modules in
    ``transparent`` are walked through, not recorded. Defined in "How to read this book"."""
    if not roots:
        raise ValueError("call_tree needs at least one function to start from")
    for root in roots:
        if not callable(root):
            raise TypeError(f"call_tree starts from functions or classes, got {type(root).__name__}: {root!r}")
    return _flatten(_Walker(transparent), roots)


def _flatten(walker: _Walker, roots) -> dict[str, str]:
    tree: dict[str, str] = {}
    todo = [(root, True) for root in roots]
    done: set[int] = set()
    while todo:
        obj, root = todo.pop()
        if id(obj) in done:
            continue
        done.add(id(obj))
        if isinstance(obj, _Constant):
            tree[f"{obj.where} ="] = obj.text
            continue
        for key, source, more in walker.visit(obj, root):
            if key:
                tree[key] = source
            todo.extend((m, False) for m in more)
    return dict(sorted(tree.items()))


def fingerprint(*roots, extra=None, transparent: tuple[str, ...] = ()) -> str:
    """A 16-hex-digit hash of :func:`call_tree` of ``roots`` (``transparent``: modules walked
    through, not recorded) and of ``extra`` (plain data, e.g. a rule's parameters and
    statement). Defined in "How to read this book"."""
    return _hash(call_tree(*roots, transparent=transparent), extra)


def _hash(tree: dict[str, str], extra) -> str:
    text = json.dumps({"tree": tree, "extra": extra}, sort_keys=True, default=_canonical)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: The machinery that stores, joins and shows results: it computes and decides nothing, so
#: a rule's fingerprint walks through it without recording it (:meth:`whydecoder.verdicts.Rule.fingerprint`).
STORAGE = ("whydecoder.results", "whydecoder.storage", "whydecoder.provenance", "whydecoder.command",
           "whydecoder.pages", "whydecoder.fingerprint", "whydecoder.sweep")
#: ... and the protocol that judges results: walked through, not recorded, when
#: fingerprinting the code that computes a section (:func:`fingerprints`' ``machinery``).
MACHINERY = STORAGE + ("whydecoder.verdicts",)


def fingerprints(named: dict, extra=None, machinery: bool = False, trees: dict | None = None) -> dict[str, str]:
    """``{name: fingerprint}`` for many roots at once, sharing one walk's sources (a
    sweep's 121 sections are fingerprinted in about a second). ``machinery``: walk
    through :data:`MACHINERY` without recording it. ``trees``: a dict that receives
    ``{fingerprint: digest}`` (:func:`digest`), so that a later reader can tell which
    functions changed. Defined in "How to read this book"."""
    if not isinstance(named, dict):
        raise TypeError(f"named must map names to functions, got {type(named).__name__}")
    walker = _Walker(MACHINERY if machinery else ())
    out = {}
    for name, root in named.items():
        if not callable(root):
            raise TypeError(f"{name!r}: expected a function, got {type(root).__name__}")
        tree = _flatten(walker, [root])
        out[name] = _hash(tree, extra)
        if trees is not None and out[name] not in trees:
            trees[out[name]] = digest(tree)
    return out


def digest(tree: dict[str, str]) -> dict[str, str]:
    """``{name: 8-hex-digit hash of its source}`` of a :func:`call_tree`: small enough to
    store, enough to say which functions changed since (:func:`changed`). Defined in
    "How to read this book"."""
    return {key: hashlib.sha256(source.encode()).hexdigest()[:8] for key, source in tree.items()}


def changed(then: dict[str, str], now: dict[str, str], first: str = "") -> dict[str, list[str]]:
    """What differs between two digests, for a reader: ``{"edited": [...], "added":
    [...], "dropped": [...]}`` (functions and constants whose source changed, that the code
    calls now and did not then, and the reverse), the package's prefix dropped, lambdas
    left out, names of module ``first`` (the experiment's own) first, then the shortest.
    Defined in "How to read this book"."""
    def shown(keys):
        short = {k.split("#")[0].removeprefix(PACKAGE + ".").removeprefix("experiments.").removesuffix(" =")
                 for k in keys if "<lambda>" not in k}
        return sorted(short, key=lambda n: (not (first and n.startswith(first + ".")), n.count("."), len(n), n))

    return {"edited": shown(k for k in set(then) & set(now) if then[k] != now[k]),
            "added": shown(set(now) - set(then)), "dropped": shown(set(then) - set(now))}
