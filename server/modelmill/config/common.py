"""Building blocks shared by the workflow models."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Tag


class StrictModel(BaseModel):
    """Unknown keys are errors, as in Olive's config classes (so typos are found)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def value_kind(value: Any) -> str:
    """The JSON kind of a value: picks the branch of a "name or object" / "one or a list" union.

    Branching on the kind (instead of letting pydantic try every branch) keeps one error per
    mistake: an inline system with a typo is reported once, not once more as "not a string".
    """
    if isinstance(value, (BaseModel, dict)):
        return "object"
    if isinstance(value, list):
        return "list"
    return "scalar"


def by_kind(**branches: Any) -> Any:
    """``Annotated[Union[...], Discriminator(value_kind)]`` with one branch per kind."""
    members = tuple(Annotated[tp, Tag(kind)] for kind, tp in branches.items())
    return Annotated[Union[members], Discriminator(value_kind)]  # type: ignore[valid-type]  # noqa: UP007
