"""The edge where the batch logic meets AWS: which adapter fills each port.

The handler builds the pipeline here on its first use; the tests and the local
run hand in their own clients (moto, fakes) and get the same wiring.
"""

from __future__ import annotations

from labeler.adapters.clients import AwsClients
from labeler.adapters.ingest_queue import IngestRetryQueue
from labeler.adapters.rekognition_detector import CustomLabelsDetector
from labeler.adapters.results_store import ResultStore
from labeler.config import LabelerConfig
from labeler.logic.pipeline import LabelingPipeline
from shared.event_publisher import EventPublisher


def build_pipeline(config: LabelerConfig, clients: AwsClients) -> LabelingPipeline:
    """Wire the adapters around the given clients (real, moto or fakes) and their deadline."""
    store = ResultStore(clients.dynamodb, config.results_table_name)
    return LabelingPipeline(
        config,
        detector=CustomLabelsDetector(clients.rekognition, config),
        results=store,
        index=store.index,
        ledger=store.ledger,
        publisher=EventPublisher(clients.events, config.event_bus_name, config.event_source),
        deadline=clients.deadline,
        ingest_queue=IngestRetryQueue(clients.sqs) if clients.sqs is not None else None,
    )
