"""The product's thing model (TSL), as the console exports it (产品 > 功能定义 > 物模型 TSL >
导出), used to refuse bad data on the device before it is sent:

    model = ThingModel.load("tsl.json")
    model.check_properties({"Temp": 23.9, "Humi": 69})   # TslError names what is wrong
    thing = Thing(session, pk, dn, model=model)           # every post checked first

The export is JSON with ``properties``, ``events`` and ``services``; each data item has an
``identifier`` and a ``dataType`` ``{"type": ..., "specs": ...}`` where the specs' numbers are
strings (``"min": "-40"``). Types (Aliyun "物模型数据类型"): int (32-bit), float, double,
text (``length`` in bytes, at most 10240), enum and bool (integer keys of ``specs``), date (UTC
milliseconds as a string), struct (``specs`` a list of items), array (``size`` and ``item``).

Pure: no I/O beyond `load` reading the file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quecmqtt.errors import InvalidArgument

INT32 = (-(2**31), 2**31 - 1)
FLOAT32_MAX = 3.4028234663852886e38
TEXT_MAX = 10240


class TslError(InvalidArgument):
    """Data the thing model does not allow (or a thing model that cannot be read)."""


@dataclass(frozen=True)
class DataType:
    kind: str
    specs: Any = None

    def check(self, value: Any, where: str) -> None:
        """Raise `TslError` naming `where` when `value` is not of this type."""
        check = _CHECKS.get(self.kind)
        if check is None:  # a type this version does not know: the platform's to judge
            return
        check(self, value, where)


@dataclass(frozen=True)
class Function:
    """An event or a service: its identifier, method and data items."""

    identifier: str
    method: str
    inputs: dict[str, DataType] = field(default_factory=dict)
    outputs: dict[str, DataType] = field(default_factory=dict)
    call_type: str = "async"


class ThingModel:
    def __init__(
        self, properties: dict[str, DataType], events: dict[str, Function], services: dict[str, Function],
        *, writable: frozenset[str] = frozenset(),
    ) -> None:  # fmt: skip
        self.properties = properties
        self.events = events
        self.services = services
        self.writable = writable

    def __repr__(self) -> str:
        counts = f"{len(self.properties)} properties, {len(self.events)} events, {len(self.services)} services"
        return f"<ThingModel {counts}>"

    @classmethod
    def load(cls, path: str | Path) -> ThingModel:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise TslError(f"{path}: not a thing model (not UTF-8 text)") from None
        return cls.from_json(text, source=str(path))

    @classmethod
    def from_json(cls, document: str | dict[str, Any], *, source: str = "the thing model") -> ThingModel:
        try:
            tsl = json.loads(document) if isinstance(document, str) else document
        except ValueError as exc:
            raise TslError(f"{source}: not JSON ({exc})") from None
        if not isinstance(tsl, dict) or not any(key in tsl for key in ("properties", "events", "services")):
            raise TslError(f"{source}: not a thing model (no properties, events or services)")
        try:
            properties = _items(tsl.get("properties") or [], source)
            writable = frozenset(
                p["identifier"] for p in tsl.get("properties") or [] if str(p.get("accessMode", "rw")) == "rw"
            )
            events = {e["identifier"]: _function(e, "event", source) for e in tsl.get("events") or []}
            services = {s["identifier"]: _function(s, "service", source) for s in tsl.get("services") or []}
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise TslError(f"{source}: not a thing model ({type(exc).__name__}: {exc})") from None
        return cls(properties, events, services, writable=writable)

    # -- checks -----------------------------------------------------------------------------

    def check_properties(self, params: dict[str, Any]) -> None:
        """A property post's params: each identifier known, each value (bare, or in
        ``{"value": v, "time": ms}``) of its type and in its range."""
        if not isinstance(params, dict) or not params:
            raise TslError("a property post needs at least one property")
        for identifier, value in params.items():
            data_type = self.properties.get(identifier)
            if data_type is None:
                raise TslError(f"{identifier}: not a property of this thing model")
            if _timestamped(data_type, value):
                value = value["value"]
            data_type.check(value, identifier)

    def check_event(self, identifier: str, value: dict[str, Any]) -> None:
        event = self.events.get(identifier)
        if event is None:
            raise TslError(f"{identifier}: not an event of this thing model")
        _check_data(event.outputs, value, f"event {identifier}")

    def check_service_output(self, identifier: str, data: dict[str, Any]) -> None:
        service = self.services.get(identifier)
        if service is None:
            raise TslError(f"{identifier}: not a service of this thing model")
        _check_data(service.outputs, data, f"service {identifier} output")


def _check_data(items: dict[str, DataType], value: Any, what: str) -> None:
    if not isinstance(value, dict):
        raise TslError(f"{what}: the data is an object of its items, not {type(value).__name__}")
    for identifier, item in value.items():
        data_type = items.get(identifier)
        if data_type is None:
            raise TslError(f"{what}: {identifier} is not one of its items ({', '.join(items) or 'none'})")
        data_type.check(item, f"{what}.{identifier}")


def _items(entries: list[dict[str, Any]], source: str) -> dict[str, DataType]:
    return {entry["identifier"]: _data_type(entry["dataType"], source) for entry in entries}


def _function(entry: dict[str, Any], kind: str, source: str) -> Function:
    identifier = entry["identifier"]
    return Function(
        identifier,
        str(entry.get("method") or f"thing.{kind}.{identifier}" + (".post" if kind == "event" else "")),
        _items(entry.get("inputData") or [], source),
        _items(entry.get("outputData") or [], source),
        str(entry.get("callType", "async")),
    )


def _data_type(node: dict[str, Any], source: str) -> DataType:
    kind = str(node["type"])
    specs: Any = node.get("specs") or {}
    if kind == "struct":
        return DataType(kind, _items(specs or [], source))
    if kind == "array":
        item = dict(specs["item"])
        return DataType(kind, (int(specs.get("size", 0) or 0), _data_type(item, source)))
    if kind in ("enum", "bool"):
        return DataType(kind, frozenset(int(key) for key in (specs or {})))
    return DataType(kind, dict(specs or {}))


def _timestamped(data_type: DataType, value: Any) -> bool:
    """``{"value": v, "time": ms}`` (Alink's form with a time), unless the property is a struct
    with an item called value."""
    if not isinstance(value, dict) or "value" not in value or not set(value) <= {"value", "time"}:
        return False
    return not (data_type.kind == "struct" and "value" in data_type.specs)


def _number(specs: dict[str, Any], key: str) -> float | None:
    text = specs.get(key)
    if text in (None, ""):
        return None
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None  # "1e400" limits nothing


def _check_number(data_type: DataType, value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TslError(f"{where}: {_shown(value)} is not a number ({data_type.kind})")
    if data_type.kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise TslError(f"{where}: {_shown(value)} is not a whole number (int)")
        if not INT32[0] <= value <= INT32[1]:
            raise TslError(f"{where}: {_shown(value)} does not fit a 32-bit int")
    elif not _finite(value) or (data_type.kind == "float" and abs(value) > FLOAT32_MAX):
        raise TslError(f"{where}: {_shown(value)} is not a finite {data_type.kind}")
    low, high = _number(data_type.specs, "min"), _number(data_type.specs, "max")
    if low is not None and value < low:
        raise TslError(f"{where}: {_shown(value)} is below the minimum {data_type.specs['min']}")
    if high is not None and value > high:
        raise TslError(f"{where}: {_shown(value)} is above the maximum {data_type.specs['max']}")


def _shown(value: Any) -> str:
    """A value for a message, cut short: a 400-digit number is named, not printed."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for any float
        return False


def _check_text(data_type: DataType, value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise TslError(f"{where}: {_shown(value)} is not text")
    limit = int(_number(data_type.specs, "length") or TEXT_MAX)
    size = len(value.encode("utf-8"))
    if size > limit:
        raise TslError(f"{where}: the text is {size} bytes, longer than its length {limit}")


def _check_choice(data_type: DataType, value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TslError(f"{where}: {_shown(value)} is not an integer ({data_type.kind})")
    if data_type.specs and value not in data_type.specs:
        allowed = ", ".join(str(key) for key in sorted(data_type.specs))
        raise TslError(f"{where}: {value} is not one of its values ({allowed})")


def _check_date(data_type: DataType, value: Any, where: str) -> None:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isdigit() or not text.isascii():
        raise TslError(f"{where}: {_shown(value)} is not a date (UTC milliseconds, as a string)")


def _check_struct(data_type: DataType, value: Any, where: str) -> None:
    _check_data(data_type.specs, value, where)


def _check_array(data_type: DataType, value: Any, where: str) -> None:
    size, item = data_type.specs
    if not isinstance(value, list):
        raise TslError(f"{where}: {_shown(value)} is not an array")
    if size and len(value) > size:
        raise TslError(f"{where}: {len(value)} elements, more than its size {size}")
    for index, element in enumerate(value):
        item.check(element, f"{where}[{index}]")


_CHECKS = {
    "int": _check_number,
    "float": _check_number,
    "double": _check_number,
    "text": _check_text,
    "enum": _check_choice,
    "bool": _check_choice,
    "date": _check_date,
    "struct": _check_struct,
    "array": _check_array,
}
