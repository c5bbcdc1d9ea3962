"""The SBOM model's closed sets are enums, checked where a value is created, and keep their manifest spelling."""

from __future__ import annotations

import pytest

from medfw.errors import ManifestError
from medfw.sbom.model import SUPPORT_LEVELS, ComponentSpec, Entity, EntityKind, SupportLevel


def test_entity_kind_is_parsed_into_the_enum_and_written_as_before() -> None:
    person = Entity.parse("Person: Ada Lovelace (ada@example.org) <https://example.org/ada>")
    assert person.kind is EntityKind.PERSON
    assert (person.name, person.email, person.url) == ("Ada Lovelace", "ada@example.org", "https://example.org/ada")
    org = Entity.parse("Organization: Espressif Systems")
    assert org.kind is EntityKind.ORGANIZATION
    assert f"{org.kind}: {org.name}" == "Organization: Espressif Systems"
    with pytest.raises(ManifestError, match="must start with"):
        Entity.parse("Company: Acme")


def test_entity_kind_is_validated_where_the_entity_is_made() -> None:
    assert Entity(kind="Person", name="x").kind is EntityKind.PERSON  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid EntityKind"):
        Entity(kind="person", name="x")  # type: ignore[arg-type]


def test_support_levels_are_the_enum_values_in_order() -> None:
    assert SUPPORT_LEVELS == ("actively-maintained", "no-longer-maintained", "abandoned", "unknown")
    spec = ComponentSpec(ref="r", name="n", version=None, support_level="abandoned")  # type: ignore[arg-type]
    assert spec.support_level is SupportLevel.ABANDONED
    with pytest.raises(ValueError, match="not a valid SupportLevel"):
        ComponentSpec(ref="r", name="n", version=None, support_level="maintained")  # type: ignore[arg-type]
