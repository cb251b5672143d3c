"""The base of every schema model: frozen, no unknown fields, and bad values raise
:class:`~memstrata.schemas.errors.InvalidValues` (a ``MemstrataError`` that is still pydantic's
``ValidationError``), so ``except MemstrataError`` catches them."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import InvalidValues

__all__ = ["FrozenModel", "InvalidValues"]


class FrozenModel(BaseModel):
    """A frozen pydantic model (``extra="forbid"``) whose validation errors are memstrata's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except InvalidValues:
            raise
        except ValidationError as exc:
            raise InvalidValues.of(exc) from exc

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        try:
            return super().model_validate(obj, **options)
        except InvalidValues:
            raise
        except ValidationError as exc:
            raise InvalidValues.of(exc) from exc

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        try:
            return super().model_validate_json(json_data, **options)
        except InvalidValues:
            raise
        except ValidationError as exc:
            raise InvalidValues.of(exc) from exc
