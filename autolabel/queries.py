"""Read-side API of the results table: ``get_result`` and ``find_by_label``.

    from autolabel.queries import find_by_label, get_result

    get_result(table_name, bucket, key)           # the current result of an object, or None
    find_by_label(table_name, "scratch", 90.0)    # objects whose current result has the label at >= 90

The same functions as ``labeler.queries`` (lambda/labeler/queries.py, for
scripts that put lambda/ on their path), imported without changing the
caller's ``sys.path`` (see :mod:`autolabel.function_code`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autolabel.function_code import function_names

if TYPE_CHECKING:
    from labeler.queries import find_by_label, get_result
else:
    get_result, find_by_label = function_names("labeler.queries", "get_result", "find_by_label")

__all__ = ["find_by_label", "get_result"]
