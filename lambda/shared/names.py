"""Names the functions, the stack and the operator tools must agree on."""

from __future__ import annotations

# The EventBridge ``source`` of autolabel's events unless configured otherwise.
DEFAULT_EVENT_SOURCE = "autolabel"
# CloudWatch namespace of both functions' EMF metrics (the alarms and dashboard read it).
METRICS_NAMESPACE = "Autolabel"
# Logger service and the EMF "service" dimension of each function.
LABELER_SERVICE = "autolabel-labeler"
MANAGER_SERVICE = "autolabel-model-manager"
