"""refka's hand-written schemas say exactly what Apache Kafka's message definitions say.

The upstream definitions are read from where they are installed, never from the repository:

* kafka-python 3.x ships Kafka's JSON message files as package data
  (``kafka/protocol/schemas/resources/*.json``): the source for every client-facing API.
* Kafka's own ``kafka-clients`` jar carries the same files under ``common/message/``; the ones
  kafka-python does not ship (the replication and KRaft APIs) are compared against the jar in the
  local Maven repository when it is there.

For every API and every version refka declares, the comparison is per version and per field:
present or not, its type, nullable or not, tagged or not (and its tag), and its default.  Comparing
effective per-version behaviour, rather than spelling, lets "0+" and "0-13" agree when they mean the
same thing.
"""

from __future__ import annotations

import json
import re
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from reference.protocol.apis import API_BY_KEY
from reference.protocol.headers import REQUEST_HEADER, RESPONSE_HEADER
from reference.protocol.schema import Array, Field, Message, Struct, Versions

_COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)


def _parse(text: str) -> dict[str, Any]:
    return json.loads(_COMMENT.sub("", text))  # type: ignore[no-any-return]


def _kafka_python_definitions() -> dict[str, dict[str, Any]]:
    folder = resources.files("kafka.protocol.schemas.resources")
    found = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            found[entry.name.removesuffix(".json")] = _parse(entry.read_text("utf-8"))
    return found


def _kafka_clients_jar_definitions() -> dict[str, dict[str, Any]]:
    jars = sorted(Path.home().glob(".m2/repository/org/apache/kafka/kafka-clients/4.*/kafka-clients-4.*.jar"))
    jars = [jar for jar in jars if not jar.name.endswith(("-test.jar", "-sources.jar"))]
    if not jars:
        return {}
    found = {}
    with zipfile.ZipFile(jars[-1]) as jar:
        for name in jar.namelist():
            if name.startswith("common/message/") and name.endswith(".json"):
                found[name.rsplit("/", 1)[1].removesuffix(".json")] = _parse(jar.read(name).decode("utf-8"))
    return found


KAFKA_PYTHON = _kafka_python_definitions()
KAFKA_CLIENTS_JAR = _kafka_clients_jar_definitions()


def _definition(name: str) -> dict[str, Any] | None:
    return KAFKA_PYTHON.get(name) or KAFKA_CLIENTS_JAR.get(name)


def _default_of(spec: dict[str, Any], type_name: str, nullable_somewhere: bool) -> Any:
    raw = spec.get("default")
    if raw is None:
        if type_name.startswith("[]"):
            return []
        return {"bool": False, "string": "", "bytes": b"", "records": None, "uuid": None,
                "float64": 0.0}.get(type_name, 0)
    if raw == "null":
        return None
    if type_name == "bool":
        return raw == "true"
    if type_name == "string":
        return raw
    # Kafka's JSON writes most defaults as strings ("-1", "0x7fffffff") but a few as numbers (-1).
    return int(raw, 0) if isinstance(raw, str) else int(raw)


def _compare_fields(
    ours: list[Field], theirs: list[dict[str, Any]], version: int, flexible: bool,
    common: dict[str, list[dict[str, Any]]], where: str,
) -> list[str]:
    problems: list[str] = []
    by_name = {f.name: f for f in ours}
    their_names = [spec["name"] for spec in theirs]
    if sorted(by_name) != sorted(their_names):
        problems.append(f"{where}: fields {sorted(by_name)} != Kafka's {sorted(their_names)}")
    # Order of the regular (untagged) fields present in this version must match.
    def regular_order(names: list[str], specs: dict[str, Any]) -> list[str]:
        return [n for n in names if n in specs]

    their_specs = {spec["name"]: spec for spec in theirs}
    their_regular = [
        s["name"] for s in theirs
        if version in Versions.parse(s.get("versions", "0+"))
        and not (flexible and "tag" in s and version in Versions.parse(s.get("taggedVersions", "none")))
    ]
    our_regular = [
        f.name for f in ours
        if version in f.version_range and not (flexible and f.tag is not None and version in f.tagged_range)
    ]
    if their_regular != our_regular:
        problems.append(f"{where} v{version}: regular fields {our_regular} != Kafka's {their_regular}")
    for name in regular_order(their_names, by_name):
        problems.extend(_compare_field(by_name[name], their_specs[name], version, flexible, common, where))
    return problems


def _compare_field(
    ours: Field, spec: dict[str, Any], version: int, flexible: bool,
    common: dict[str, list[dict[str, Any]]], where: str,
) -> list[str]:
    where = f"{where}.{ours.name}"
    problems: list[str] = []
    their_present = version in Versions.parse(spec.get("versions", "0+"))
    their_tagged = flexible and "tag" in spec and version in Versions.parse(spec.get("taggedVersions", "none"))
    our_present = version in ours.version_range
    our_tagged = flexible and ours.tag is not None and version in ours.tagged_range
    if (their_present, their_tagged) != (our_present, our_tagged):
        return [f"{where} v{version}: present/tagged {(our_present, our_tagged)} != Kafka's "
                f"{(their_present, their_tagged)}"]
    if not their_present:
        return []
    if their_tagged and spec["tag"] != ours.tag:
        problems.append(f"{where}: tag {ours.tag} != Kafka's {spec['tag']}")
    their_nullable = version in Versions.parse(spec.get("nullableVersions", "none"))
    if their_nullable != (version in ours.nullable_range):
        problems.append(f"{where} v{version}: nullable {not their_nullable} != Kafka's {their_nullable}")
    their_compact = flexible and version in Versions.parse(spec.get("flexibleVersions", "0+"))
    if their_compact != ours.is_compact(version, flexible):
        problems.append(f"{where} v{version}: compact encoding differs from Kafka's")
    type_name: str = spec["type"]
    element_name = type_name.removeprefix("[]")
    our_type = ours.type
    if type_name.startswith("[]"):
        if not isinstance(our_type, Array):
            return problems + [f"{where}: Kafka's type is {type_name}, ours {our_type!r}"]
        our_type = our_type.element
    nested = spec.get("fields") or common.get(element_name)
    if nested is not None:
        if not isinstance(our_type, Struct):
            return problems + [f"{where}: Kafka's type is a struct {element_name}, ours {our_type!r}"]
        if our_type.name != element_name:
            problems.append(f"{where}: struct named {our_type.name}, Kafka's {element_name}")
        problems.extend(_compare_fields(list(our_type.fields), nested, version, flexible, common, where))
    elif our_type.kafka_name != element_name:
        problems.append(f"{where}: type {our_type.kafka_name} != Kafka's {element_name}")
    expected_default = _default_of(spec, type_name, "nullableVersions" in spec)
    actual_default = ours.default_value()
    if type_name == "uuid":
        actual_default = None if actual_default is None or actual_default.int == 0 else actual_default
    if nested is None and not type_name.startswith("[]") and expected_default != actual_default:
        problems.append(f"{where}: default {actual_default!r} != Kafka's {expected_default!r}")
    return problems


def compare(message: Message, definition: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    their_valid = Versions.parse(definition["validVersions"])
    if (message.valid.low, message.valid.high) != (their_valid.low, their_valid.high):
        problems.append(f"{message.name}: valid versions {message.valid} != Kafka's {their_valid}")
    their_flexible = Versions.parse(definition["flexibleVersions"])
    common = {struct["name"]: struct["fields"] for struct in definition.get("commonStructs", [])}
    assert message.valid.high is not None
    for version in range(message.valid.low, message.valid.high + 1):
        flexible = version in their_flexible
        if flexible != message.is_flexible(version):
            problems.append(f"{message.name} v{version}: flexible {message.is_flexible(version)} != Kafka's {flexible}")
        problems.extend(_compare_fields(list(message.fields), definition["fields"], version, flexible, common, message.name))
    return problems


MESSAGES = [
    pytest.param(message, id=message.name)
    for api in API_BY_KEY.values()
    for message in (api.request, api.response)
] + [pytest.param(REQUEST_HEADER, id="RequestHeader"), pytest.param(RESPONSE_HEADER, id="ResponseHeader")]


@pytest.mark.parametrize("message", MESSAGES)
def test_declared_message_matches_kafkas_definition(message: Message) -> None:
    """Every declared version of every declared message matches Kafka's definition field by field."""
    definition = _definition(message.name)
    if definition is None:
        pytest.fail(f"no upstream definition of {message.name} found in kafka-python or the kafka-clients jar")
    problems = compare(message, definition)
    assert not problems, "\n".join(problems)


def test_every_client_facing_api_is_declared() -> None:
    """The APIs the clients in KAFKA-NOTES use, and the admin APIs the broker serves, are all declared."""
    required = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
                28, 32, 33, 37, 42, 43, 44, 47, 60}
    assert required <= set(API_BY_KEY), f"missing: {sorted(required - set(API_BY_KEY))}"


def test_the_comparison_catches_a_wrong_declaration() -> None:
    """The parity check is not vacuous: a field with the wrong versions is reported."""
    definition = _definition("ApiVersionsRequest")
    assert definition is not None
    from reference.protocol.schema import STRING
    wrong = Message("ApiVersionsRequest", 18, "0-4", "3+", fields=[
        Field("ClientSoftwareName", STRING, versions="2+"),
        Field("ClientSoftwareVersion", STRING, versions="3+"),
    ])
    problems = compare(wrong, definition)
    assert any("ClientSoftwareName" in problem for problem in problems)
