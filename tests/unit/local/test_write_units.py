"""local.write_units: item sizes and write units by DynamoDB's documented rules (benchmark P7's meter)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.write_units import WriteMeter, item_size, units


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"pk": {"S": "abc"}}, 2 + 3),
        ({"n": {"N": "97.5"}}, 1 + 2 + 1),  # 3 significant digits: 2 bytes, plus 1
        ({"n": {"N": "-0.00120"}}, 1 + 1 + 1),  # leading and trailing zeros trimmed: "12"
        ({"ok": {"BOOL": True}, "no": {"NULL": True}}, 3 + 3),
        ({"b": {"B": b"\x00\x01\x02"}}, 1 + 3),
        ({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}, 1 + 3 + (2 + 1) + (2 + 1)),
        ({"m": {"M": {"x": {"S": "ab"}}}}, 1 + 3 + (1 + 2 + 1)),
        ({"é": {"S": "ü"}}, 2 + 2),  # UTF-8 bytes, not characters
    ],
)
def test_item_size(item: dict[str, Any], size: int) -> None:
    assert item_size(item) == size


def test_units_are_started_kilobytes_at_least_one() -> None:
    assert [units(0), units(1), units(1024), units(1025), units(4096)] == [1, 1, 1, 2, 4]


def table(client: Any) -> None:
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "labelName", "labelConfidence")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byLabel",
                "KeySchema": [
                    {"AttributeName": "labelName", "KeyType": "HASH"},
                    {"AttributeName": "labelConfidence", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["key"]},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def test_the_meter_counts_size_transactions_and_index_entries() -> None:
    with mock_aws():
        client, reader = boto3.client("dynamodb", region_name="us-east-1"), boto3.client("dynamodb", "us-east-1")
        table(reader)
        meter = WriteMeter(reader)
        meter.install(client)
        big = {"pk": {"S": "a"}, "sk": {"S": "r"}, "blob": {"S": "x" * 1500}}  # 2 KB
        client.put_item(TableName="t", Item=big)
        assert (meter.units["table"], meter.units["index"]) == (2, 0)  # not in the index: no label key
        entry = {"pk": {"S": "a"}, "sk": {"S": "i"}, "labelName": {"S": "scratch"}, "labelConfidence": {"S": "90"}}
        client.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": entry}}])
        assert (meter.units["table"], meter.units["index"], meter.units["in transactions"]) == (4, 1, 2)
        client.update_item(  # moves the index entry to another key: out of one place, into another
            TableName="t",
            Key={"pk": {"S": "a"}, "sk": {"S": "i"}},
            UpdateExpression="SET labelConfidence = :c",
            ExpressionAttributeValues={":c": {"S": "95"}},
        )
        client.delete_item(TableName="t", Key={"pk": {"S": "a"}, "sk": {"S": "nothing there"}})
        assert (meter.units["table"], meter.units["index"]) == (4 + 1 + 1, 1 + 2)
        assert meter.total == 9 and meter.failed_writes == 0
