"""Every validation error of a schema model is a ``MemstrataError`` (an ``InvalidInput``) and
still pydantic's ``ValidationError``, whichever way the model is built."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import memstrata.schemas
import pytest
from memstrata import Scope
from memstrata.errors import InvalidInput, InvalidValues, MemstrataError
from memstrata.schemas import Turn
from memstrata.schemas._model import FrozenModel
from memstrata.schemas.config import MemoryConfig, PlannerConfig
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings


def schema_models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for info in pkgutil.iter_modules(memstrata.schemas.__path__):
        module = importlib.import_module(f"memstrata.schemas.{info.name}")
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseModel)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return list(found.values())


def test_every_schema_model_raises_memstrata_errors() -> None:
    models = schema_models()
    assert len(models) > 15
    plain = [m.__qualname__ for m in models if not issubclass(m, (FrozenModel, BaseSettings))]
    assert plain == []  # a model built on bare BaseModel would raise pydantic's error only


@pytest.mark.parametrize(
    "build",
    [
        lambda: Scope(user_id=""),
        lambda: Scope(user_id="u", extra_field=1),  # type: ignore[call-arg]  # the bad value under test
        lambda: Scope.model_validate({"user_id": 5}),
        lambda: Scope.model_validate_json('{"user_id": "  "}'),
        lambda: Turn(role="robot", content="x"),  # type: ignore[arg-type]  # the bad value under test
        lambda: Turn.model_validate({"role": "user", "content": "a\x00b"}),
        lambda: PlannerConfig(reserve_tokens=-1),
        lambda: MemoryConfig(planner={"reserve_tokens": "many"}),  # type: ignore[arg-type]  # the bad value under test
    ],
)
def test_bad_values_are_caught_as_memstrata_errors(build: Any) -> None:
    with pytest.raises(MemstrataError) as caught:
        build()
    error = caught.value
    assert isinstance(error, InvalidValues) and isinstance(error, InvalidInput)
    assert isinstance(error, ValidationError) and isinstance(error, ValueError)
    assert error.errors() and error.errors()[0]["msg"]  # pydantic's detail is kept
    assert isinstance(error.__cause__, ValidationError)


def test_the_empty_user_message_names_the_field() -> None:
    with pytest.raises(InvalidValues, match="user_id") as caught:
        Scope(user_id="")
    assert caught.value.errors()[0]["loc"] == ("user_id",)


def test_bad_settings_from_the_environment_are_memstrata_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from memstrata.schemas.model_config import ModelSettings

    monkeypatch.setenv("MEMSTRATA_MODEL_N_CTX", "lots")
    with pytest.raises(InvalidValues, match="model_n_ctx"):
        ModelSettings()
