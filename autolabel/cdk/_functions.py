"""The functions' modules the construct reads at synth: names, the table layout, the validators, the queue backlog.

Imported through :func:`autolabel.function_code.import_function_module`, so
the host app's ``sys.path`` and ``sys.modules`` are left as they were.
"""

from __future__ import annotations

from autolabel.function_code import import_function_module

names = import_function_module("shared.names")
queue_backlog = import_function_module("shared.queue_backlog")
table_layout = import_function_module("shared.table_layout")
validation = import_function_module("shared.validation")
model_arn = import_function_module("shared.model_arn")
manager_config = import_function_module("manager.config")
result_event = import_function_module("labeler.domain.result_event")
