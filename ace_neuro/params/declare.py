"""How a parameter is declared: its CSV name(s), kind (type and range), default, stage and help.

A stage's parameters are a frozen dataclass whose fields are made by :func:`param`.
The declaration lives in the field's metadata, and everything else is read from it:
parsing CSV cells (:mod:`.resolve`), validating a dataclass built by hand
(:meth:`StageParams.__post_init__`), the list of known names, the snapshot assets,
the CLI's ``--set`` help and the README's table (:mod:`.table`).
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator

from ..errors import ParameterError

#: Returned by a kind for a value that belongs to another field declared on the same CSV name
#: (``crop = FALSE`` is the crop switch, not coordinates): the field then keeps looking.
NOT_THIS_FIELD = object()


class Invalid(ValueError):
    """Raised by a kind: the value is not one it accepts. The argument says what is expected."""


# --------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class Kind(ABC):
    """Turns a parsed cell (or a value given in code) into the field's value, or raises :class:`Invalid`."""

    @abstractmethod
    def convert(self, value: Any) -> Any:
        """The field's value for ``value``."""

    @property
    @abstractmethod
    def text(self) -> str:
        """The accepted values, for the README and ``--help``."""


@dataclass(frozen=True)
class Bool(Kind):
    only: bool | None = None  # the one value supported, when the other is not implemented
    why: str = ""

    def convert(self, value):
        if isinstance(value, bool):
            v = value
        elif isinstance(value, (int, float)) and value in (0, 1):
            v = bool(value)
        else:
            raise Invalid("TRUE or FALSE")
        if self.only is not None and v != self.only:
            raise Invalid(f"{str(self.only).upper()}{': ' + self.why if self.why else ''}")
        return v

    @property
    def text(self):
        return "TRUE/FALSE" if self.only is None else str(self.only).upper()


def _number(value, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise Invalid("a whole number" if integer else "a number")
    if integer:
        if float(value) != int(value):
            raise Invalid("a whole number")
        return int(value)
    return float(value)


@dataclass(frozen=True)
class Number(Kind):
    integer: bool = False
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    none_ok: bool = False  # None is a value of its own (e.g. K = no cap)

    def convert(self, value):
        if value is None and self.none_ok:
            return None
        v = _number(value, self.integer)
        if (self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo))) or \
                (self.hi is not None and v > self.hi):
            raise Invalid(f"{self._what()} {self._range()}".strip())
        return v

    def _what(self):
        return "a whole number" if self.integer else "a number"

    def _range(self):
        def fmt(x):
            return str(int(x)) if float(x).is_integer() else str(x)
        if self.lo is not None and self.hi is not None:
            return f"{'>' if self.lo_open else '>='} {fmt(self.lo)} and <= {fmt(self.hi)}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {fmt(self.lo)}"
        if self.hi is not None:
            return f"<= {fmt(self.hi)}"
        return ""

    @property
    def text(self):
        base = ("whole number" if self.integer else "number") + (f" {self._range()}" if self._range() else "")
        return base + (" or empty" if self.none_ok else "")


@dataclass(frozen=True)
class Pair(Kind):
    """Two numbers, e.g. ``(3, 3)``; a single number means both."""

    integer: bool = True
    lo: float = 0
    off: Any = NOT_THIS_FIELD  # a cell value meaning "none" (gSig_filt = FALSE: no filter)

    def convert(self, value):
        if self.off is not NOT_THIS_FIELD and (value is None or value is self.off):
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value, value)
        what = f"a pair of {'whole numbers' if self.integer else 'numbers'} >= {self.lo:g} such as (3, 3)"
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise Invalid(what)
        try:
            out = tuple(_number(v, self.integer) for v in value)
        except Invalid:
            raise Invalid(what) from None
        if min(out) < self.lo:
            raise Invalid(what)
        return out

    @property
    def text(self):
        base = f"pair of {'whole numbers' if self.integer else 'numbers'} >= {self.lo:g}"
        return base + (" or FALSE" if self.off is not NOT_THIS_FIELD else "")


@dataclass(frozen=True)
class Choice(Kind):
    """One of a few words (case-insensitive); ``aliases`` maps other cell values (TRUE, FALSE) to words."""

    choices: tuple[Any, ...]
    aliases: tuple[tuple[Any, Any], ...] = ()
    why: str = ""

    def convert(self, value):
        for alias, word in self.aliases:
            if value is alias:
                return word
        for c in self.choices:
            if isinstance(c, str):
                if isinstance(value, str) and value.strip().lower() == c:
                    return c
            elif c is None or isinstance(c, bool):
                if value is c:
                    return c
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == c:
                return c
        expected = "one of " + ", ".join(_show(c) for c in self.choices)
        raise Invalid(expected + (f" ({self.why})" if self.why else ""))

    @property
    def text(self):
        return ", ".join(_show(c) for c in self.choices) + "".join(
            f"; {_show(a)} = {_show(w)}" for a, w in self.aliases)


@dataclass(frozen=True)
class CropBox(Kind):
    """Four whole numbers (x0, y0, x1, y1); TRUE/FALSE on the same cell is the crop switch, not a box."""

    def convert(self, value):
        if isinstance(value, bool):
            return NOT_THIS_FIELD
        if value is None:
            return None
        if not isinstance(value, (tuple, list)) or len(value) != 4 or any(
                isinstance(c, bool) or not isinstance(c, (int, float)) or float(c) != int(c) for c in value):
            raise Invalid("four whole numbers (x0, y0, x1, y1) such as (67, 503, 555, 61)")
        return tuple(int(c) for c in value)

    @property
    def text(self):
        return "(x0, y0, x1, y1) or empty"


@dataclass(frozen=True)
class CropSwitch(Kind):
    """TRUE/FALSE; a crop box given on the same cell leaves the switch at its default (on)."""

    def convert(self, value):
        if isinstance(value, (tuple, list)):
            return NOT_THIS_FIELD
        return Bool().convert(value)

    @property
    def text(self):
        return "TRUE/FALSE"


def _show(v) -> str:
    if v is None:
        return "empty"
    if isinstance(v, bool):
        return str(v).upper()
    return repr(v) if isinstance(v, str) else str(v)


# --------------------------------------------------------------------------- declarations
@dataclass(frozen=True)
class Parameter:
    """One parameter of one stage, as declared by :func:`param` (``stage`` and ``field`` filled in by
    :func:`declarations`)."""

    csv: tuple[str, ...]  # the CSV column name(s); the first is the one to use, others are legacy
    kind: Kind
    default: Any
    help: str
    empty_is_value: bool = False  # an empty cell means None (rf: whole field), not "use the default"
    derive: Callable[[dict], Any] | None = None  # default from the stage's other values (gSiz from gSig)
    derive_text: str = ""
    stage: str = ""
    field: str = ""

    @property
    def name(self) -> str:
        return self.csv[0]

    def default_text(self) -> str:
        if self.derive_text:
            return self.derive_text
        if self.default is None:
            return "empty"
        return _show(self.default)

    def error(self, value: Any, expected: str, source: str = "", *, file=None, row=None) -> ParameterError:
        where = f" (from {source})" if source else ""
        err = ParameterError(f"parameter '{self.name}' = {value!r}{where}: expected {expected}. Fix the cell or "
                             f"leave it empty to use the default ({self.default_text()}).",
                             file=file, row=row, parameter=self.name)
        err.value, err.expected = value, expected  # so a caller that knows the source can say it
        return err


def param(default: Any, *, csv: str | tuple[str, ...], kind: Kind, help: str, empty_is_value: bool = False,
          derive: Callable[[dict], Any] | None = None, derive_text: str = "") -> Any:
    """A dataclass field declaring one parameter (see :class:`Parameter`)."""
    names = (csv,) if isinstance(csv, str) else tuple(csv)
    decl = Parameter(csv=names, kind=kind, default=default, help=help, empty_is_value=empty_is_value,
                     derive=derive, derive_text=derive_text)
    return dataclasses.field(default=default, metadata={"parameter": decl})


class StageParams:
    """Base of the stage dataclasses: validates every field against its declaration when built.

    Subclasses set ``STAGE`` (the stage's name, also the snapshot asset's prefix) and may
    override :meth:`check_together` for rules between fields.
    """

    STAGE: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for decl in declarations(type(self)):
            value = getattr(self, decl.field)
            try:
                converted = decl.kind.convert(value)
            except Invalid as exc:
                raise decl.error(value, str(exc)) from None
            if converted is NOT_THIS_FIELD:
                raise decl.error(value, decl.kind.text)
            object.__setattr__(self, decl.field, converted)
        self.check_together()

    def check_together(self) -> None:
        """Rules between this stage's fields; raise :class:`ParameterError`."""


def declarations(cls) -> Iterator[Parameter]:
    """The declared parameters of a stage dataclass, in field order."""
    for f in dataclasses.fields(cls):
        decl = f.metadata.get("parameter")
        if decl is not None:
            yield dataclasses.replace(decl, stage=cls.STAGE, field=f.name)


def declared(cls, field: str) -> Parameter:
    """The declaration of one field of a stage dataclass."""
    for decl in declarations(cls):
        if decl.field == field:
            return decl
    raise KeyError(f"{cls.__name__}.{field} is not a declared parameter")
