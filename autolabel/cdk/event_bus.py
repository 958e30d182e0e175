"""The EventBridge bus that results are announced on."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from constructs import Construct


class ResultsEventBus(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", description="autolabel: Custom Labels Detected / Failed events")
        # Replay for consumers that were down: every event kept for 30 days.
        self.bus.archive(
            "Archive",
            description="All autolabel events, for replay",
            event_pattern=events.EventPattern(account=[self.bus.env.account]),
            retention=Duration.days(30),
        )
