"""local.fakes.model_server: the emulated model behind HTTP answers as the in-process one does."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from local.fakes.fake_model import FakeCustomLabelsModel
from local.fakes.faults import client_error
from local.fakes.model_server import RemoteModel, TokenBucket, model_counters, model_server_process
from local.moto_process import moto_server_process
from local.samples import make_image


@pytest.mark.enable_socket  # two servers of this test's own, on loopback
def test_answers_errors_and_extra_labels_match_the_in_process_model() -> None:
    with moto_server_process(), model_server_process() as url:
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="images")
        s3.put_object(Bucket="images", Key="good.png", Body=make_image({"scratch": (0.1, 0.1, 0.4, 0.4)}))
        s3.put_object(Bucket="images", Key="tiny.png", Body=make_image({"logo": (0, 0, 1, 1)}, size=(40, 40)))
        local = FakeCustomLabelsModel(s3, extra_labels=lambda request: 5)
        remote = RemoteModel(url, extra_labels=lambda request: 5)
        good = {"Image": {"S3Object": {"Bucket": "images", "Name": "good.png"}}, "MinConfidence": 0}
        assert remote.detect_custom_labels(**good) == local.detect_custom_labels(**good)
        assert len(remote.detect_custom_labels(**good)["CustomLabels"]) == 1 + 5
        for key, code in (("tiny.png", "InvalidParameterException"), ("gone.png", "InvalidS3ObjectException")):
            with pytest.raises(ClientError) as error:
                remote.detect_custom_labels(Image={"S3Object": {"Bucket": "images", "Name": key}})
            assert error.value.response["Error"]["Code"] == code
        # A fault decided on the caller's side never reaches the server.
        refused = RemoteModel(url, fault=lambda request: client_error("ResourceNotReadyException"))
        with pytest.raises(ClientError):
            refused.detect_custom_labels(**good)
        assert model_counters(url) == {"answered": 4, "throttled": 0}


def test_the_token_bucket_allows_one_second_of_burst_then_its_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(5, clock=lambda: now[0])
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    now[0] += 0.2  # one token's worth
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 60  # never more than one second banked
    assert sum(bucket.take() for _ in range(10)) == 5
    assert all(TokenBucket(0).take() for _ in range(100))  # 0: no cap
