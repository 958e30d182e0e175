"""One way to make an alarm: 'this metric reached this threshold in one period'."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from autolabel.cdk._functions import names


def at_least(
    scope: Construct, alarm_id: str, metric: cloudwatch.IMetric, threshold: float, description: str
) -> cloudwatch.Alarm:
    """Alarm when ``metric`` >= ``threshold`` in one period; no data is not a breach."""
    return cloudwatch.Alarm(
        scope,
        alarm_id,
        alarm_description=description,
        metric=metric,
        threshold=threshold,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


def app_metric(service: str, name: str, statistic: str = "Sum") -> cloudwatch.Metric:
    """An EMF metric the Lambdas emit (namespace Autolabel, dimension service)."""
    return cloudwatch.Metric(
        namespace=names.METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service},
        statistic=statistic,
        period=Duration.minutes(5),
    )
