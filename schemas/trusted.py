"""Building models from trusted values (read back from a store): ``model_construct``, faster.

``Model.model_construct(**values)`` skips validation but still walks every field for aliases and
defaults; :func:`construct` takes a complete set of fields and sets them directly, several times
faster, and a hybrid search builds ~20 models (docs/benchmarks.md). It applies to
models without aliases, private attributes, ``model_post_init`` or extra fields (checked once
per class); any other model goes through ``model_construct``.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["construct"]

M = TypeVar("M", bound=BaseModel)

_set = object.__setattr__


@cache
def _plain(cls: type[BaseModel]) -> bool:
    fields = cls.model_fields.values()
    return (
        not cls.__private_attributes__
        and not cls.__pydantic_post_init__
        and cls.model_config.get("extra") != "allow"
        and all(f.alias is None and f.validation_alias is None for f in fields)
    )


def construct(cls: type[M], values: dict[str, Any]) -> M:
    """``cls.model_construct(**values)`` for ``values`` holding every field of ``cls`` (trusted,
    not validated; the dict becomes the model's: do not reuse it)."""
    if len(values) != len(cls.model_fields) or not _plain(cls):
        return cls.model_construct(**values)
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(values))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model
