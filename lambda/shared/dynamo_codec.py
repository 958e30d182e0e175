"""Plain Python values <-> DynamoDB attribute values (low-level client format)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo_numbers(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(repr(value))  # repr round-trips exactly
    if isinstance(value, dict):
        return {k: _to_dynamo_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_dynamo_numbers(v) for v in value]
    return value


def _to_plain_numbers(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: _to_plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain_numbers(v) for v in value]
    return value


def serialize(value: Any) -> dict[str, Any]:
    return _serializer.serialize(_to_dynamo_numbers(value))


def serialize_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: serialize(value) for name, value in item.items() if value is not None}


def deserialize_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _to_plain_numbers(_deserializer.deserialize(value)) for name, value in item.items()}


def estimated_size(value: Any) -> int:
    """Upper bound of DynamoDB's size of a plain value (documented sizing rules)."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, (int, float, Decimal)):
        # DynamoDB counts about one byte per two digits; count one per
        # character of the number as sent, an upper bound (moto counts so too).
        return len(str(value) if isinstance(value, Decimal) else repr(value)) + 1
    if isinstance(value, dict):
        return 3 + sum(1 + len(str(k).encode()) + estimated_size(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return 3 + sum(1 + estimated_size(v) for v in value)
    return len(str(value).encode())


def estimated_item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + estimated_size(value) for name, value in item.items() if value is not None)
