"""Stand-in modules for ``torch`` in the RKNN toolchain environment (``make rknn-env``).

rknn-toolkit2 2.5 imports torch at module level (``torch``, ``torch.nn``, ...) although its ONNX
path never uses it, and it pins ``torch<=2.4``, which from PyPI is a CUDA build of several GB.
``.venv-rknn`` gets this finder instead (through a ``.pth`` file): every ``torch`` module
imported there is a stand-in whose attributes are placeholder classes, so the toolkit imports
and its ONNX path runs. Nothing else is installed into that environment, and the package itself
never runs there: :mod:`action_recognition.deploy.targets.rknn_driver` (numpy and rknn only)
does.
"""
import importlib.abc
import importlib.machinery
import sys
import types


class _Anything(type):
    def __getattr__(cls, name):
        return _stub(name)

    def __call__(cls, *args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]  # used as a decorator
        return _instance


def _stub(name):
    return _Anything(name, (), {})


class _Instance:
    def __call__(self, *args, **kwargs):
        return args[0] if len(args) == 1 and callable(args[0]) else self

    def __getattr__(self, name):
        return _stub(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_instance = _Instance()


class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return _stub(name)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == 'torch' or fullname.startswith('torch.'):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Module(spec.name)
        module.__path__ = []
        module.__version__ = '2.4.0'
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())
