"""Extension points: bring your own codec, model, round policy, selection rule, aggregator or attack
without a fork.

Each family has a registry, and a name that the registry does not hold is looked up in two more places:

1. **an import path** ``package.module:Object`` (``model.name=mypkg.nets:TinyNet``,
   ``codec=mypkg.codecs:Int8Codec:arg``). The module must be importable from the process that runs
   fedwave (installed, or on ``PYTHONPATH``); the current directory is tried last, as ``python -m``
   would. Studies (``fedwave compare``) run in the same process, so an import path works there too.
2. **a Python entry point** of the family's group (:data:`ENTRY_POINT_GROUPS`), so an installed package
   makes its plug-ins known by a short name to the CLI and to studies::

       [project.entry-points."fedwave.codecs"]
       int8 = "mypkg.codecs:Int8Codec"

Decorators register an object in the running process (``@fedwave.register_codec("int8")``).

What each family expects of the object:

* ``codecs``: a :class:`~fedwave.codecs.Codec` subclass or factory, called with the spec's
  ``:``-separated arguments as strings (a :class:`~fedwave.codecs.base.FramedCodec` subclass through its
  ``from_args``); it must return a :class:`~fedwave.codecs.Codec`.
* ``models``: a callable ``(input_shape, num_classes) -> nn.Module`` (an ``nn.Module`` subclass whose
  ``__init__`` takes those two arguments qualifies), or one taking no argument.
* ``policies``: a :class:`~fedwave.sim.policies.Policy` subclass.
* ``aggregators``: an :class:`~fedwave.server.aggregators.Aggregator`, or a rule
  ``fn(x, w, center) -> tensor`` over the stacked flat updates ``x`` (n, d) float64, weights ``w`` (n,)
  and the previous aggregate ``center`` (d,) or None.
* ``attacks``: a function with the signature of :class:`~fedwave.privacy.attacks.registry.AttackFn`.
* ``selections``: a rule ``rule(ctx) -> list[int]`` of a :class:`~fedwave.fl.selection.SelectionContext`
  (``fl.selection``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import sys
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fedwave.errors import ConfigError

Family = Literal["codecs", "models", "policies", "aggregators", "attacks", "selections"]

#: The entry-point group of each family.
ENTRY_POINT_GROUPS: dict[str, str] = {
    family: f"fedwave.{family}"
    for family in ("codecs", "models", "policies", "aggregators", "attacks", "selections")
}

#: Objects registered in this process with the ``register_*`` decorators of this module.
_REGISTERED: dict[str, dict[str, Any]] = {family: {} for family in ENTRY_POINT_GROUPS}

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_IMPORT_PATH = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")

T = TypeVar("T")


def is_import_path(text: str) -> bool:
    """Whether ``text`` has the form ``package.module:Object`` (``Object`` may be dotted)."""
    return bool(_IMPORT_PATH.match(text.strip()))


def _import_module(module: str, what: str) -> Any:
    hint = "Install the package that defines it, or put its directory on PYTHONPATH"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):  # the module imports something missing
            raise ConfigError(f"{what}: importing module '{module}' failed: {exc}") from exc
        here = os.getcwd()
        if here in sys.path:
            raise ConfigError(f"{what}: no module named '{exc.name}'. {hint}") from None
        sys.path.append(here)  # as `python -m` would; tried last so installed packages win
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError:
            sys.path.remove(here)
            raise ConfigError(f"{what}: no module named '{exc.name}'. {hint}") from None
    except Exception as exc:  # the user's module failed while importing: say which and why
        raise ConfigError(f"{what}: importing module '{module}' failed: {type(exc).__name__}: {exc}") from exc


def load_object(path: str, what: str = "plug-in") -> Any:
    """The object named by the import path ``package.module:Object``.

    Raises:
        ConfigError: the text is not an import path, the module cannot be imported or has no such object.
    """
    text = path.strip()
    if not is_import_path(text):
        raise ConfigError(f"{what}: '{path}' is not an import path; write package.module:Object")
    module_name, attr = text.split(":")
    obj = _import_module(module_name, f"{what} '{text}'")
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{what} '{text}': module '{module_name}' has no attribute '{attr}'") from None
    return obj


def entry_point_names(family: Family) -> list[str]:
    """Names of the installed entry points of ``family``'s group, sorted."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUPS[family])})


def _entry_point(family: Family, name: str) -> Any | None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUPS[family]):
        if ep.name == name:
            try:
                return ep.load()
            except Exception as exc:
                raise ConfigError(
                    f"{family[:-1]} '{name}' (entry point '{ep.value}' of group {ep.group}) cannot be "
                    f"loaded: {type(exc).__name__}: {exc}"
                ) from exc
    return None


def find(family: Family, name: str) -> Any | None:
    """The plug-in object for ``name``: registered here, an import path, or an entry point; else None.

    Raises:
        ConfigError: ``name`` is an import path (or entry point) that cannot be loaded.
    """
    key = name.strip()
    if key in _REGISTERED[family]:
        return _REGISTERED[family][key]
    if is_import_path(key):
        return load_object(key, family[:-1])
    return _entry_point(family, key)


def plugin_names(family: Family) -> list[str]:
    """Names registered in this process and installed entry points of ``family``, sorted."""
    return sorted(set(_REGISTERED[family]) | set(entry_point_names(family)))


def register(family: Family, name: str, obj: T) -> T:
    """Register ``obj`` as the plug-in ``name`` of ``family`` in this process; returns ``obj``."""
    if not name or not isinstance(name, str):
        raise ConfigError(f"a {family[:-1]} plug-in needs a non-empty name, got {name!r}")
    _REGISTERED[family][name.strip()] = obj
    return obj


def unregister(family: Family, name: str) -> None:
    """Forget the plug-in ``name`` of ``family`` registered in this process (no error if absent)."""
    _REGISTERED[family].pop(name.strip(), None)


def _decorator(family: Family, name: str) -> Callable[[T], T]:
    def wrap(obj: T) -> T:
        return register(family, name, obj)

    return wrap


def register_codec(name: str) -> Callable[[T], T]:
    """Decorator: make a codec class (or factory) available as the spec ``name[:args]``.

    ``name`` is matched case-sensitively and must not be a built-in family.
    """
    from fedwave.codecs.registry import available_codecs

    builtin = {info.name.split(":")[0].split("(")[0] for info in available_codecs()}
    if name.lower() in builtin:
        raise ConfigError(f"codec name '{name}' is a built-in codec; choose another name")
    return _decorator("codecs", name)


def register_model(name: str, description: str = "") -> Callable[[T], T]:
    """Decorator: make a model builder ``(input_shape, num_classes) -> nn.Module`` available as ``name``.

    Registers in the model zoo itself (:func:`fedwave.models.zoo.register`), so ``model.name=NAME``
    works everywhere a built-in name does.
    """
    from fedwave.models.zoo import register as zoo_register

    def wrap(obj: T) -> T:
        zoo_register(name, description or f"user model {name}")(model_builder(obj, name))
        return obj

    return wrap


def register_policy(cls: T) -> T:
    """Class decorator: add a :class:`~fedwave.sim.policies.Policy` subclass under ``cls.name``."""
    from fedwave.sim.policies import register_policy as add

    add(cls)  # type: ignore[arg-type]
    return cls


def register_aggregator(name: str, *, robust: bool = False) -> Callable[[T], T]:
    """Decorator: make a rule ``fn(x, w, center) -> tensor`` available as ``server.aggregator=name``.

    ``robust`` says whether the rule bounds the influence of a minority of arbitrary updates (the
    contract suite :func:`fedwave.testing.check_aggregator` then checks it).
    """

    def wrap(fn: T) -> T:
        from fedwave.server.aggregators import Aggregator

        register("aggregators", name, Aggregator(name, fn, robust=robust))  # type: ignore[arg-type]
        return fn

    return wrap


def register_attack(name: str, description: str = "") -> Callable[[T], T]:
    """Decorator: make a gradient-leakage attack function available as ``attack.name=name``."""
    from fedwave.privacy.attacks.registry import register_attack as add

    def wrap(fn: T) -> T:
        add(name, description or f"user attack {name}")(fn)  # type: ignore[arg-type]
        return fn

    return wrap


def register_selection(name: str) -> Callable[[T], T]:
    """Decorator: make a selection rule ``rule(ctx) -> list[int]`` available as ``fl.selection=name``."""
    return _decorator("selections", name)


# ------------------------------------------------------------------------------------ family adapters


def model_builder(obj: Any, name: str) -> Callable[[tuple[int, ...], int], Any]:
    """A zoo builder ``(input_shape, num_classes) -> nn.Module`` calling the user's ``obj``."""
    import inspect

    from torch import nn

    if not callable(obj):
        raise ConfigError(f"model '{name}' is {type(obj).__name__}, not a class or function building a model")
    try:
        sig: inspect.Signature | None = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None

    def build(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        takes_two = sig is None
        if sig is not None:
            try:
                sig.bind(input_shape, num_classes)
                takes_two = True
            except TypeError:
                takes_two = False
        model = obj(input_shape, num_classes) if takes_two else obj()
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model '{name}' returned {type(model).__name__}, not a torch.nn.Module")
        return model

    return build


def codec_from(obj: Any, spec: str, args: list[str]) -> Any:
    """The codec built by the plug-in ``obj`` from the spec's arguments ``args``."""
    from fedwave.codecs.base import Codec, FramedCodec

    if isinstance(obj, Codec):
        if args:
            raise ConfigError(f"codec '{spec}': the plug-in is a codec object and takes no arguments")
        codec: Any = obj
    elif isinstance(obj, type) and issubclass(obj, FramedCodec):
        codec = obj.from_args(args)
    elif callable(obj):
        try:
            codec = obj(*args)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"codec '{spec}': bad arguments {args}: {exc}") from None
    else:
        raise ConfigError(f"codec '{spec}' names a {type(obj).__name__}, not a codec class or factory")
    if not isinstance(codec, Codec):
        raise ConfigError(
            f"codec '{spec}' gave a {type(codec).__name__}; a codec must subclass fedwave.codecs.Codec"
        )
    if not isinstance(getattr(codec, "spec", None), str):
        codec.spec = spec
    return codec


def find_codec(spec: str) -> Any | None:
    """The plug-in codec of ``spec`` (``name[:args]`` registered or installed, or
    ``package.module:Object[:args]``), or None when ``spec`` names no plug-in."""
    parts = [p.strip() for p in spec.strip().split(":")]
    if parts[0] in _REGISTERED["codecs"]:
        return codec_from(_REGISTERED["codecs"][parts[0]], spec.strip(), parts[1:])
    if len(parts) >= 2 and is_import_path(f"{parts[0]}:{parts[1]}"):
        obj = load_object(f"{parts[0]}:{parts[1]}", "codec")
        return codec_from(obj, spec.strip(), parts[2:])
    obj = _entry_point("codecs", parts[0])
    return None if obj is None else codec_from(obj, spec.strip(), parts[1:])


def find_policy(name: str) -> Any | None:
    """The plug-in :class:`~fedwave.sim.policies.Policy` subclass called ``name``, or None."""
    from fedwave.sim.policies import Policy

    obj = find("policies", name)
    if obj is not None and not (isinstance(obj, type) and issubclass(obj, Policy)):
        raise ConfigError(f"round policy '{name}' is {obj!r}, not a fedwave.sim.policies.Policy subclass")
    return obj


def find_aggregator(spec: str) -> Any | None:
    """The plug-in :class:`~fedwave.server.aggregators.Aggregator` of ``spec``, or None."""
    from fedwave.server.aggregators import Aggregator

    obj = find("aggregators", spec)
    if obj is None or isinstance(obj, Aggregator):
        return obj
    if not callable(obj):
        raise ConfigError(f"aggregator '{spec}' is {type(obj).__name__}, not a rule fn(x, w, center)")
    return Aggregator(spec.strip(), obj, robust=bool(getattr(obj, "robust", False)))
