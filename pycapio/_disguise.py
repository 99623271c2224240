"""Proxies that look like what they replace: same type of object, name, module, docstring,
signature and attributes, so a program cannot tell (or be broken by) the difference.

- A built-in function (``os.unlink``, ``open``) is replaced by a built-in function made by the
  extension (:func:`as_builtin`): it does not bind as a method when stored in a class, has the
  original's ``__self__``, ``__module__``, ``__doc__`` and ``__text_signature__``, and pickles as the
  original does (by module and name; the module the original names is patched too).
- A Python function (``shutil.rmtree``, ``os.makedirs``) is replaced by a Python function with
  the original's exact signature, defaults, annotations, metadata and ``__dict__``
  (:func:`as_function`).
- A class (``io.FileIO``, ``os.DirEntry``) is replaced by a class answering ``isinstance`` and
  ``issubclass`` for the real one too (:func:`class_proxy`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from . import _pycapio

__all__ = ["as_builtin", "as_function", "class_proxy"]


def _builtin_doc(original: Any) -> str | None:
    doc = original.__doc__
    signature = getattr(original, "__text_signature__", None)
    if signature is None:
        return doc  # type: ignore[no-any-return]
    # CPython's internal docstring: the signature line, a "--" line, then the docstring.
    return f"{original.__name__}{signature}\n--\n\n{doc or ''}"


def as_builtin(impl: Callable[..., Any], original: Any) -> Callable[..., Any]:
    """A built-in function that calls ``impl`` with its arguments and otherwise is ``original``'s
    double (see the module docstring)."""
    return _pycapio._builtin_proxy(
        impl, original.__name__, _builtin_doc(original), original.__self__, original.__module__
    )


def as_function(impl: Callable[..., Any], original: Any) -> Callable[..., Any]:
    """A Python function with ``original``'s signature and metadata that passes its arguments to
    ``impl`` the way they would be passed to ``original``: positional parameters positionally,
    keyword-only ones by keyword unless left at their default, so ``impl`` may hand them on to
    ``original`` as given."""
    parameters = list(inspect.signature(original).parameters.values())
    namespace: dict[str, Any] = {"__pycapio_impl": impl}
    params: list[str] = []
    args: list[str] = []
    body: list[str] = ["__pycapio_kw = {}"]
    star = False
    for i, p in enumerate(parameters):
        text = p.name
        if p.default is not p.empty:
            namespace[f"__pycapio_default{i}"] = p.default
            text += f"=__pycapio_default{i}"
        if p.kind is p.VAR_POSITIONAL:
            text, star = f"*{p.name}", True
            args.append(f"*{p.name}")
        elif p.kind is p.VAR_KEYWORD:
            text = f"**{p.name}"
            body.append(f"__pycapio_kw.update({p.name})")
        elif p.kind is p.KEYWORD_ONLY:
            if not star:
                params.append("*")
                star = True
            if p.default is p.empty:
                body.append(f"__pycapio_kw[{p.name!r}] = {p.name}")
            else:
                body.append(f"if {p.name} is not __pycapio_default{i}: __pycapio_kw[{p.name!r}] = {p.name}")
        else:
            args.append(p.name)
        params.append(text)
        last_positional_only = i + 1 == len(parameters) or parameters[i + 1].kind is not p.POSITIONAL_ONLY
        if p.kind is p.POSITIONAL_ONLY and last_positional_only:
            params.append("/")
    name = original.__name__
    body.append(f"return __pycapio_impl({', '.join([*args, '**__pycapio_kw'])})")
    source = f"def {name}({', '.join(params)}):\n" + "".join(f"    {line}\n" for line in body)
    filename = f"<pycapio proxy of {original.__module__}.{original.__qualname__}>"
    exec(compile(source, filename, "exec"), namespace)
    proxy = namespace[name]
    proxy.__code__ = proxy.__code__.replace(co_qualname=original.__qualname__)
    proxy.__defaults__ = original.__defaults__
    proxy.__kwdefaults__ = original.__kwdefaults__
    proxy.__module__ = original.__module__
    proxy.__qualname__ = original.__qualname__
    proxy.__doc__ = original.__doc__
    proxy.__annotations__ = dict(original.__annotations__)
    proxy.__dict__.update(original.__dict__)
    return proxy  # type: ignore[no-any-return]


# class proxy -> the classes it answers isinstance/issubclass for (kept out of the proxy's own
# attributes, which are the real class's).
_STANDS_FOR: dict[type, tuple[type, ...]] = {}


class _ProxyMeta(type):
    """Metaclass of a class proxy: ``isinstance``/``issubclass`` against the proxy itself also
    accept the real class (and the CAPIO look-alikes given); its subclasses behave normally."""

    def __instancecheck__(cls, obj: object) -> bool:
        classes = _STANDS_FOR.get(cls)
        return (classes is not None and isinstance(obj, classes)) or type.__instancecheck__(cls, obj)

    def __subclasscheck__(cls, sub: type) -> bool:
        classes = _STANDS_FOR.get(cls)
        return (classes is not None and issubclass(sub, classes)) or type.__subclasscheck__(cls, sub)


class _Constructor:
    """``__new__`` of a class proxy: the proxy itself constructs through ``new``, its subclasses
    as subclasses of the real class. ``inspect.signature`` of the proxy reads ``__signature__``
    here: the real class's, computed when first asked (parsing a text signature is slow enough
    to matter at import)."""

    proxy: type

    def __init__(self, real: type, new: Callable[..., Any]) -> None:
        self._real = real
        self._new = new
        self._signature: inspect.Signature | None = None

    def __call__(self, cls: type, *args: Any, **kwargs: Any) -> Any:
        if cls is self.proxy:
            return self._new(*args, **kwargs)
        return self._real.__new__(cls, *args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        if self._signature is None:
            # ValueError for a class without one (os.DirEntry), as for the real class.
            signature = inspect.signature(self._real)
            cls = inspect.Parameter("cls", inspect.Parameter.POSITIONAL_ONLY)
            self._signature = signature.replace(parameters=[cls, *signature.parameters.values()])
        return self._signature


def class_proxy(real: type, alike: tuple[type, ...], new: Callable[..., Any], subclass: bool) -> type:
    """A stand-in for the class ``real`` whose construction calls ``new(*args, **kwargs)``.

    With ``subclass`` the proxy derives from ``real``, so classes deriving from the proxy are
    real subclasses of ``real`` and construct as such; otherwise (``real`` cannot be subclassed)
    it is a plain class. Either way it has ``real``'s name, module and docstring, and answers
    ``isinstance``/``issubclass`` for ``real`` and ``alike``."""
    bases = (real,) if subclass else ()

    constructor = _Constructor(real, new)
    namespace: dict[str, Any] = {
        "__new__": staticmethod(constructor),
        "__module__": real.__module__,
        "__qualname__": real.__qualname__,
        # CPython's internal docstring (signature line first) becomes the type's tp_doc, from
        # which __text_signature__ is read; __doc__ itself is set to the plain text below.
        "__doc__": _builtin_doc(real),
        "__slots__": (),
    }
    if "__class_getitem__" in vars(real):
        namespace["__class_getitem__"] = classmethod(lambda cls, item: real[item])  # type: ignore[index]
    proxy = _ProxyMeta(real.__name__, bases, namespace)
    constructor.proxy = proxy
    proxy.__doc__ = real.__doc__
    _STANDS_FOR[proxy] = (real, *alike)
    return proxy
