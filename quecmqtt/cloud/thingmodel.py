"""The platform's check of posts against a product's thing model (TSL), with its codes.

What is known of the platform (docs/cloud.md, "Thing model"):
- an identifier the model does not have is dropped and named in the reply's ``data`` with
  ``tsl parse: params not exist``, the reply staying 200 (a real device's log shows
  ``{"code":200,"data":{"LightSwitch":"tsl parse: params not exist"},...}``);
- a value of the wrong type is refused with a code per data type and a message
  ``tsl parse: <reason> -> <identifier>``: 6306 ``data type is not int`` and 6310 ``data type
  is not string`` are seen in real platform messages; the other types' codes (6307 float, 6322
  double, 6308 bool, 6309 enum, 6311 date, 6312 struct, 6324 array) follow the list Aliyun's
  device code document gives for property posts, and a value out of its range takes its
  type's code [R: the document's text for 6301 and above was not readable];
- more than 200 properties in one post is 6106; a post that is not JSON 6207; no method 6300.

Written apart from the device's `quecmqtt.aliyun.tsl` on purpose: the twin must not share the
code it tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

NOT_EXIST = "tsl parse: params not exist"
MAX_PROPERTIES = 200
TYPE_CODES = {"int": 6306, "float": 6307, "double": 6322, "bool": 6308, "enum": 6309, "text": 6310,
              "date": 6311, "struct": 6312, "array": 6324}  # fmt: skip
TYPE_WORDS = {"text": "string"}  # how the platform's messages name the type


class Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code} {message}")


class PlatformModel:
    """One product's model as the platform holds it: raw export nodes, judged on demand."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.properties = {p["identifier"]: p["dataType"] for p in document.get("properties") or []}
        self.events = {e["identifier"]: e for e in document.get("events") or []}
        self.services = {s["identifier"]: s for s in document.get("services") or []}

    @classmethod
    def load(cls, path: str | Path) -> PlatformModel:
        """Read a console export; ValueError says why it is not one."""
        try:
            document = json.loads(Path(path).read_bytes())
            if not isinstance(document, dict) or ("properties" not in document and "services" not in document):
                raise ValueError("no properties or services")
            return cls(document)
        except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a thing model export ({exc})") from None
        except ValueError as exc:
            raise ValueError(f"{path}: not a thing model export ({exc})") from None

    def judge_properties(self, params: Any) -> dict[str, str]:
        """The reply's ``data`` for a property post: each unknown identifier with
        NOT_EXIST. Raises `Refused` for a value its type does not allow."""
        if not isinstance(params, dict):
            raise Refused(460, "request parameter error")
        if len(params) > MAX_PROPERTIES:
            raise Refused(6106, f"tsl parse: more than {MAX_PROPERTIES} properties in one post")
        dropped = {}
        for identifier, value in params.items():
            node = self.properties.get(identifier)
            if node is None:
                dropped[identifier] = NOT_EXIST
                continue
            if _timestamped(node, value):
                value = value["value"]
            _judge(node, value, identifier)
        return dropped

    def judge_event(self, identifier: str, params: Any) -> None:
        event = self.events.get(identifier)
        if event is None:
            raise Refused(6321, f"tsl parse: event not exist -> {identifier}")  # [R] the doc's list has 6321
        value = params.get("value") if isinstance(params, dict) else None
        if not isinstance(value, dict):
            raise Refused(460, "request parameter error")
        outputs = {item["identifier"]: item["dataType"] for item in event.get("outputData") or []}
        for name, item in value.items():
            if name not in outputs:
                raise Refused(6304, f"{NOT_EXIST} -> {name}")
            _judge(outputs[name], item, name)

    def has_service(self, identifier: str) -> bool:
        return identifier in self.services

    def call_type(self, identifier: str) -> str:
        return str(self.services.get(identifier, {}).get("callType", "async"))


def _judge(node: dict[str, Any], value: Any, where: str) -> None:
    kind = str(node.get("type"))
    specs = node.get("specs") or {}
    code = TYPE_CODES.get(kind)
    if code is None:
        return
    word = TYPE_WORDS.get(kind, kind)
    wrong = Refused(code, f"tsl parse: data type is not {word} -> {where}")
    if kind in ("int", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise wrong
        if kind == "int" and ((isinstance(value, float) and not value.is_integer()) or not -(2**31) <= value < 2**31):
            raise wrong
        low, high = _bound(specs.get("min")), _bound(specs.get("max"))
        if (low is not None and value < low) or (high is not None and value > high):
            raise Refused(code, f"tsl parse: {word} value out of range -> {where}")
    elif kind in ("bool", "enum"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        if str(value) not in specs:
            raise Refused(code, f"tsl parse: {word} value not defined -> {where}")
    elif kind == "text":
        if not isinstance(value, str):
            raise wrong
        if len(value.encode()) > int(_bound(specs.get("length")) or 10240):
            raise Refused(code, f"tsl parse: string length out of range -> {where}")
    elif kind == "date":
        if not (isinstance(value, str) and value.isascii() and value.isdigit()) and not (
            isinstance(value, int) and not isinstance(value, bool)
        ):
            raise wrong
    elif kind == "struct":
        if not isinstance(value, dict):
            raise wrong
        fields = {item["identifier"]: item["dataType"] for item in specs}
        for name, item in value.items():
            if name not in fields:
                raise Refused(6304, f"{NOT_EXIST} -> {where}.{name}")
            _judge(fields[name], item, f"{where}.{name}")
    elif kind == "array":
        if not isinstance(value, list):
            raise wrong
        if len(value) > int(_bound(specs.get("size")) or 512):
            raise Refused(code, f"tsl parse: array size out of range -> {where}")
        for index, item in enumerate(value):
            _judge(specs.get("item") or {}, item, f"{where}[{index}]")


def _bound(text: Any) -> float | None:
    try:
        bound = float(text)
    except (TypeError, ValueError):
        return None
    return bound if math.isfinite(bound) else None


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer of hundreds of digits: no float holds it
        return False


def _timestamped(node: dict[str, Any], value: Any) -> bool:
    """``{"value": v, "time": ms}``, Alink's form with a time; not a struct whose own items
    are called value and time."""
    if not isinstance(value, dict) or "value" not in value or not set(value) <= {"value", "time"}:
        return False
    items = node.get("specs") if node.get("type") == "struct" else None
    return not (isinstance(items, list) and any(i.get("identifier") == "value" for i in items if isinstance(i, dict)))
