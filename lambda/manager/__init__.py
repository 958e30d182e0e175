"""autolabel model manager: run the Custom Labels model only while there is work.

``handler`` (scheduled every minute) -> ``logic.decide`` (pure: observation +
remembered state + settings + clock -> plan) -> ``adapters`` (Rekognition model,
ingest queue, the labeler's SQS trigger, state table) and the shared EventBridge
publisher.
"""
