"""Every public function and class of the package says where the book explains it."""

import importlib
import inspect
import pkgutil

import pytest

import whydecoder

MODULES = [importlib.import_module(m.name) for m in pkgutil.walk_packages(whydecoder.__path__, "whydecoder.")]


def _public_objects():
    for module in MODULES:
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{module.__name__}.{name}", obj


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_module_docstring_names_a_chapter(module):
    assert module.__doc__ and ("chapter" in module.__doc__ or "Explained in" in module.__doc__), module.__name__


@pytest.mark.parametrize("qualname, obj", list(_public_objects()), ids=lambda x: x if isinstance(x, str) else "")
def test_public_object_docstring_names_where_it_is_explained(qualname, obj):
    doc = inspect.getdoc(obj) or ""
    assert doc, f"{qualname} has no docstring"
    assert "Defined in" in doc, f"{qualname}: its docstring should end with 'Defined in <chapter or page>'"
