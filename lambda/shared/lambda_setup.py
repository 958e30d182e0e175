"""What a Lambda handler builds once per execution environment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BuiltOnFirstUse(Generic[T]):
    """An object built on the first invocation, never at import, then reused.

    Building at the first invocation (not at import) lets a bad configuration
    fail the invocation with a message naming the setting, and lets tests and
    the local run import the handler and inject their own object.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            self._value = self._build()
        return self._value

    def use(self, value: T | None) -> None:
        """Inject an object (tests, local run); None: build from the environment next time."""
        self._value = value
