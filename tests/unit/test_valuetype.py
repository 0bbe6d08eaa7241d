"""ValueType gives a frozen dataclass the ``__repr__``/``__eq__``/``__hash__`` that
``dataclass(frozen=True)`` would have generated (it only saves compiling them per class)."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from edgeguard.events import AuditRecord, Endpoint, Finding, NoEvidence, Severity
from edgeguard.net.config import NetworkConfig
from edgeguard.valuetype import ValueType


@dataclasses.dataclass(frozen=True)
class Generated:
    a: int
    b: str | None = None
    c: tuple[int, ...] = ()
    hidden: int = dataclasses.field(default=0, repr=False, compare=False)


@dataclasses.dataclass(frozen=True, slots=True, repr=False, eq=False)
class Written(ValueType):
    a: int
    b: str | None = None
    c: tuple[int, ...] = ()
    hidden: int = dataclasses.field(default=0, repr=False, compare=False)


@dataclasses.dataclass(frozen=True, slots=True, repr=False, eq=False)
class Empty(ValueType):
    pass


@dataclasses.dataclass(frozen=True, slots=True, repr=False, eq=False)
class One(ValueType):
    port: object


@pytest.mark.parametrize("args", [(1,), (1, "x"), (2, None, (3, 4)), (5, "y'z", (), 9)])
def test_same_repr_eq_and_hash_as_a_generated_dataclass(args: tuple[object, ...]) -> None:
    gen, written = Generated(*args), Written(*args)  # type: ignore[arg-type]
    assert repr(written) == repr(gen).replace("Generated(", "Written(")
    assert hash(written) == hash(gen)
    assert written == Written(*args)  # type: ignore[arg-type]
    assert written == dataclasses.replace(written, hidden=7)  # compare=False: not compared
    assert written != dataclasses.replace(written, a=99)
    assert written != gen  # another class is never equal, as with dataclass
    assert written.__eq__(gen) is NotImplemented


def test_no_fields_and_one_field() -> None:
    assert Empty() == Empty()
    assert hash(Empty()) == hash(())
    assert repr(Empty()) == "Empty()"
    assert NoEvidence() == NoEvidence()
    assert repr(NoEvidence()) == "NoEvidence()"
    assert One(53) == One(53)
    assert One(53) != One(54)
    assert hash(One(53)) == hash((53,))
    assert repr(One("x")) == "One(port='x')"


def test_still_a_frozen_slotted_picklable_dataclass() -> None:
    end = Endpoint("10.0.0.7", port=22)
    with pytest.raises(dataclasses.FrozenInstanceError):
        end.ip = "10.0.0.8"  # type: ignore[misc]
    assert not hasattr(end, "__dict__")
    assert [f.name for f in dataclasses.fields(Endpoint)] == ["ip", "mac", "port"]
    finding = Finding("scan", "syn", "m", "id", Severity.MINOR, source=end, destinations=(end,))
    assert pickle.loads(pickle.dumps(finding)) == finding
    assert {finding, dataclasses.replace(finding)} == {finding}
    assert NetworkConfig() == NetworkConfig()
    assert hash(NetworkConfig().detect) == hash(NetworkConfig().detect)
    with pytest.raises(TypeError):  # a dict field: unhashable, as with dataclass
        hash(AuditRecord("a", "b"))
