"""The repository's app is one use of the construct: same resources, same logical ids, its own outputs."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import synth

# Every resource of the app before the pipeline became a construct (commit ad27111): an
# upgrade must not replace any of them (the results table above all).
LOGICAL_IDS_BEFORE_THE_CONSTRUCT = frozenset(
    {
        "BackfillBackfillDeadLetterQueueNotEmpty55A01065",
        "BackfillBackfillMessagesExpiringSoon1FACA867",
        "BackfillDeadLetterQueue1F7F6069",
        "BackfillDeadLetterQueuePolicy97B8BE06",
        "BackfillQueue0B5C7931",
        "BackfillQueuePolicy9F22D59A",
        "BucketNotificationsHandler050a0587b7544547bf325f094a3db8347ECC3691",
        "BucketNotificationsHandler050a0587b7544547bf325f094a3db834RoleB6FB88EC",
        "EventsBus45DE4339",
        "EventsBusArchive3AC72948",
        "ImageBucketAccessLogs75627115",
        "ImageBucketAccessLogsPolicyCC5A91CB",
        "ImageBucketImages1C6A0D2F",
        "ImageBucketImagesNotifications2EDF789E",
        "ImageBucketImagesNotificationsHandlerPolicyDF1D7DED",
        "ImageBucketImagesPolicy8E324C46",
        "IngestDeadLetterQueueE8016E9B",
        "IngestDeadLetterQueuePolicy59E8B192",
        "IngestQueue95F6DB49",
        "IngestQueuePolicy285B1167",
        "LabelerFunctionD1537B6F",
        "LabelerFunctionSqsEventSourceAutolabelBackfillQueueA5EA34FF5834A25E",
        "LabelerFunctionSqsEventSourceAutolabelIngestQueue45608B521D03D024",
        "LabelerLogsBCE96856",
        "LabelerRole200721DF",
        "LabelerRoleDefaultPolicyD30FB405",
        "ModelManagerEveryMinuteAllowEventRuleAutolabelModelManagerFunction7D5A602F2E7CF4B0",
        "ModelManagerEveryMinuteC888A9CA",
        "ModelManagerFunction3D2C16D6",
        "ModelManagerLogsBCE26B15",
        "ModelManagerManagerErrors889F900C",
        "ModelManagerModelFailedAC6DF922",
        "ModelManagerModelNotFound1D95498E",
        "ModelManagerModelRunningIdle951F56AF",
        "ModelManagerModelStuckStartingC6574018",
        "ModelManagerRoleDefaultPolicyFA4796AA",
        "ModelManagerRoleF97C9B1D",
        "ModelManagerState721C117E",
        "ModelManagerWorkWaitsOnUnusableModel57BB865E",
        "MonitoringAlarmTopicAF62D4F1",
        "MonitoringAlarmTopicKeyFFA45DC9",
        "MonitoringAlarmTopicPolicyCB9CCFB0",
        "MonitoringDashboard0C3675C6",
        "MonitoringDeadLetterQueueNotEmptyBC52F70B",
        "MonitoringDeadLettersExpiringSoon6352BBF1",
        "MonitoringFunctionErrors40FB895E",
        "MonitoringOldestMessageTooOld16170C83",
        "ResultsTable7B2FF7F9",
    }
)


def test_an_upgrade_keeps_every_logical_id_and_adds_only_the_deployment_parameter() -> None:
    _stack, template = synth()
    resources: dict[str, Any] = template.to_json()["Resources"]
    # The backfill job (docs/backfill.md) came in the same release, as resources of its own.
    added = {rid for rid in set(resources) - LOGICAL_IDS_BEFORE_THE_CONSTRUCT if not rid.startswith("BackfillJob")}
    assert set(resources) >= LOGICAL_IDS_BEFORE_THE_CONSTRUCT
    assert {resources[rid]["Type"] for rid in added} == {"AWS::SSM::Parameter"}
    assert resources[added.pop()]["Properties"]["Name"] == "/autolabel/deployments/Autolabel"
