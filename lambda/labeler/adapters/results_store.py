"""The results table's adapters, wired together: the repository, the label index and the publication ledger.

Every write is a plain (non-transactional) write: transactions bill each item
twice. What keeps concurrent or late deliveries from overwriting a newer
result is the condition on the result item alone; everything else is
idempotent and keyed so that it cannot hurt a newer result
(``result_repository`` describes the steps of a write).

``ResultStore`` is the result repository (reads and conditional writes) with
the label index (``index``) and the publication ledger (``ledger``) of the
same table: the wiring hands the three to the pipeline's ports, and tests
that write the table directly use it whole. Readers use ``labeler.read_side``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from labeler.adapters.dynamo_table import ResultsTableAccess, result_key
from labeler.adapters.label_index import DynamoLabelIndex
from labeler.adapters.publication_ledger import DynamoPublicationLedger
from labeler.adapters.result_repository import DynamoResultRepository
from labeler.domain.label_result import LabelResult
from labeler.domain.stored_state import Claim, ObjectRef, Publication
from labeler.ports import ResultConflict, StoreError

__all__ = ["ResultConflict", "ResultStore", "StoreError", "result_key"]


class ResultStore(DynamoResultRepository):
    """The result repository, with the label index and the publication ledger of the same table."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        table = ResultsTableAccess(client, table_name, sleep=sleep)
        self.ledger = DynamoPublicationLedger(table, clock=clock)
        super().__init__(table, clock=clock)

    @property
    def label_index(self) -> DynamoLabelIndex:
        return self.index

    def clear_label_index(self, ref: ObjectRef) -> None:
        self.index.clear(ref)

    def sync_label_index(self, ref: ObjectRef, result: LabelResult, index_id: str | None) -> None:
        self.index.sync(ref, result, index_id)

    def claim_publication(
        self, ref: ObjectRef, result_id: str, token: str, *, claim_ttl_seconds: float, removal: bool = False
    ) -> Claim | None:
        return self.ledger.claim(ref, result_id, token, claim_ttl_seconds=claim_ttl_seconds, removal=removal)

    def release_claim(
        self, ref: ObjectRef, result_id: str, token: str, *, uncertain: bool, removal: bool = False
    ) -> None:
        self.ledger.release(ref, result_id, token, uncertain=uncertain, removal=removal)

    def mark_published(self, published: Sequence[Publication]) -> None:
        self.ledger.mark_published(published)
