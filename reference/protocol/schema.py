"""Declarative message schemas: fields with version ranges, read and written by one interpreter.

Theory of operation
-------------------
Apache Kafka defines each request and response once, in a JSON file
(``clients/src/main/resources/common/message/*.json``), and generates code for every version
from it.  refka keeps the same model, written by hand as Python declarations that read as
documentation (see ``reference/protocol/messages/``), and interprets them instead of generating
code:

* A :class:`Message` has an ``api_key``, its ``valid_versions`` and the first of its
  ``flexible_versions`` (KIP-482).  Its body is a :class:`Struct` of :class:`Field`.
* A :class:`Field` exists in a range of versions (``"0+"``, ``"3-12"``), may be nullable in a range
  of versions, and, in flexible versions, may be a *tagged* field identified by a number.
* A field's type is one of the primitives below, ``Array(element)`` or a nested :class:`Struct`.
  The same abstract type is encoded differently by version: ``STRING`` is ``INT16``-prefixed
  before the flexible versions and ``COMPACT_STRING`` (unsigned varint length + 1) from them on;
  nullability only changes whether the length -1 / 0 is legal.

Rules of the encoding, as Kafka applies them
--------------------------------------------
1. Fields are written in declaration order; a field absent from the version is skipped, and
   decoding fills in its default.
2. In a flexible version every struct ends with a tagged-field section::

       UNSIGNED_VARINT count, then count x (UNSIGNED_VARINT tag, UNSIGNED_VARINT size, size bytes)

   in ascending tag order.  A known tagged field is written only when its value differs from its
   default.  Unknown tags are kept as raw bytes in ``_unknown_tags`` and written back unchanged,
   so a frame re-encodes to the identical bytes.
3. A null where the version does not allow null is a programming error on encode and a
   :class:`~reference.protocol.primitives.DecodeError` on decode.
4. A nullable struct field is preceded by an INT8: -1 for null, 1 for present.

Decoded values are :class:`Data` objects whose attributes are the fields in snake_case
(``TransactionalId`` -> ``transactional_id``).  For speed, each (struct, version) pair compiles
once into a list of per-field read and write functions (a "plan"); the plan is the only path and
stays readable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from .primitives import ZERO_UUID, DecodeError, Reader, Writer

ReadFn = Callable[[Reader], Any]
WriteFn = Callable[[Writer, Any], None]


# -- version ranges ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Versions:
    """An inclusive range of versions, written as Kafka writes it: ``"3+"``, ``"0-8"``, ``"none"``."""

    low: int
    high: int | None  # None: no upper bound

    @classmethod
    def parse(cls, text: str) -> Versions:
        text = text.strip()
        if text == "none":
            return cls(1, 0)
        if text.endswith("+"):
            return cls(int(text[:-1]), None)
        if "-" in text:
            low, high = text.split("-")
            return cls(int(low), int(high))
        return cls(int(text), int(text))

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, int):
            return False
        return self.low <= version and (self.high is None or version <= self.high)

    def is_empty(self) -> bool:
        return self.high is not None and self.high < self.low

    def __str__(self) -> str:
        if self.is_empty():
            return "none"
        if self.high is None:
            return f"{self.low}+"
        if self.high == self.low:
            return str(self.low)
        return f"{self.low}-{self.high}"


NO_VERSIONS = Versions(1, 0)


@functools.cache
def snake_case(name: str) -> str:
    """Kafka's CamelCase field name in Python's spelling: ``ThrottleTimeMs`` -> ``throttle_time_ms``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


# -- decoded values ------------------------------------------------------------------------------


class Data(SimpleNamespace):
    """A decoded struct: one attribute per field, plus ``_unknown_tags`` when the frame had any."""

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)


# -- types ---------------------------------------------------------------------------------------


class FieldType:
    """What a field holds.  Subclasses say how to read and write it for one encoding variant."""

    kafka_name: str

    def default(self) -> Any:
        raise NotImplementedError

    def reader(self, flexible: bool, nullable: bool, version: int) -> ReadFn:
        raise NotImplementedError

    def writer(self, flexible: bool, nullable: bool, version: int) -> WriteFn:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Primitive(FieldType):
    """A fixed or length-prefixed primitive; the length-prefixed ones change form when flexible."""

    kafka_name: str
    zero: Any
    read_fixed: Callable[[Reader], Any] | None = None
    write_fixed: Callable[[Writer, Any], None] | None = None
    read_sized: Callable[[Reader, bool], Any] | None = None  # (reader, compact)
    write_sized: Callable[[Writer, Any, bool], None] | None = None

    def default(self) -> Any:
        return self.zero

    def __repr__(self) -> str:
        return self.kafka_name.upper()

    def reader(self, flexible: bool, nullable: bool, version: int) -> ReadFn:
        if self.read_fixed is not None:
            return self.read_fixed
        read_sized = self.read_sized
        assert read_sized is not None
        name = self.kafka_name

        def read(reader: Reader) -> Any:
            value = read_sized(reader, flexible)
            if value is None and not nullable:
                raise DecodeError(f"null {name} in a version where it is not nullable")
            return value

        return read

    def writer(self, flexible: bool, nullable: bool, version: int) -> WriteFn:
        if self.write_fixed is not None:
            return self.write_fixed
        write_sized = self.write_sized
        assert write_sized is not None
        name = self.kafka_name

        def write(writer: Writer, value: Any) -> None:
            if value is None and not nullable:
                raise ValueError(f"null {name} in a version where it is not nullable")
            write_sized(writer, value, flexible)

        return write


BOOL = Primitive("bool", False, Reader.boolean, Writer.boolean)
INT8 = Primitive("int8", 0, Reader.int8, Writer.int8)
INT16 = Primitive("int16", 0, Reader.int16, Writer.int16)
UINT16 = Primitive("uint16", 0, Reader.uint16, Writer.uint16)
INT32 = Primitive("int32", 0, Reader.int32, Writer.int32)
UINT32 = Primitive("uint32", 0, Reader.uint32, Writer.uint32)
INT64 = Primitive("int64", 0, Reader.int64, Writer.int64)
FLOAT64 = Primitive("float64", 0.0, Reader.float64, Writer.float64)
UUID = Primitive("uuid", ZERO_UUID, Reader.uuid, Writer.uuid)
STRING = Primitive("string", "", read_sized=Reader.string, write_sized=Writer.string)
BYTES = Primitive("bytes", b"", read_sized=Reader.bytes_, write_sized=Writer.bytes_)
# A record set travels as (compact) bytes; reference.records decodes what is inside.
RECORDS = Primitive("records", None, read_sized=Reader.records, write_sized=Writer.bytes_)


@dataclass(frozen=True, eq=False)
class Array(FieldType):
    """``[]element``: an INT32 count (COMPACT: unsigned varint count + 1), -1 / 0 for null."""

    element: FieldType

    @property
    def kafka_name(self) -> str:  # type: ignore[override]
        inner = self.element.name if isinstance(self.element, Struct) else self.element.kafka_name
        return f"[]{inner}"

    def default(self) -> Any:
        return []

    def __repr__(self) -> str:
        return f"Array({self.element!r})"

    def reader(self, flexible: bool, nullable: bool, version: int) -> ReadFn:
        read_element = self.element.reader(flexible, False, version)

        def read(reader: Reader) -> Any:
            count = reader.array_length(flexible)
            if count == -1:
                if not nullable:
                    raise DecodeError("null array in a version where it is not nullable")
                return None
            return [read_element(reader) for _ in range(count)]

        return read

    def writer(self, flexible: bool, nullable: bool, version: int) -> WriteFn:
        write_element = self.element.writer(flexible, False, version)

        def write(writer: Writer, value: Any) -> None:
            if value is None:
                if not nullable:
                    raise ValueError("null array in a version where it is not nullable")
                writer.array_length(-1, flexible)
                return
            writer.array_length(len(value), flexible)
            for element in value:
                write_element(writer, element)

        return write


_NO_DEFAULT: Any = object()


@dataclass(frozen=True, eq=False, repr=False)
class Field:
    """One field of a struct, with the versions it exists in, as Kafka's JSON declares it.

    ``name`` is Kafka's CamelCase name; ``attribute`` is the snake_case name on decoded values.
    ``tag`` makes it a tagged field in ``tagged_versions`` (which must be flexible versions).
    ``flexible_versions`` overrides the message's flexible versions for this one field (Kafka uses
    it to keep the request header's ClientId an INT16-prefixed string).
    ``default`` is what decoding yields when the field is absent; Kafka's default for the type
    (0, "", [], false, zero UUID, or null for a nullable field declared ``default="null"``) unless
    given.
    """

    name: str
    type: FieldType
    versions: str = "0+"
    nullable: str = "none"
    tag: int | None = None
    tagged_versions: str = "none"
    default: Any = _NO_DEFAULT
    ignorable: bool = False
    flexible_versions: str | None = None  # a per-field override: "none" keeps the classic form

    def is_compact(self, version: int, message_flexible: bool) -> bool:
        """Whether this field uses the compact encodings in ``version``."""
        if self.flexible_versions is None:
            return message_flexible
        return version in Versions.parse(self.flexible_versions)

    def __repr__(self) -> str:
        return f"Field({self.name}: {self.type!r} v{self.versions})"

    @property
    def attribute(self) -> str:
        return snake_case(self.name)

    @property
    def version_range(self) -> Versions:
        return Versions.parse(self.versions)

    @property
    def nullable_range(self) -> Versions:
        return Versions.parse(self.nullable)

    @property
    def tagged_range(self) -> Versions:
        return Versions.parse(self.tagged_versions)

    def default_value(self) -> Any:
        if self.default is not _NO_DEFAULT:
            return list(self.default) if isinstance(self.default, list) else self.default
        if isinstance(self.type, Struct):
            return None if self.nullable != "none" else self.type.default()
        return self.type.default()


@dataclass(eq=False)
class _Plan:
    """A struct compiled for one version: what to read and write, in order."""

    regular: list[tuple[str, ReadFn, WriteFn]]
    tagged: dict[int, tuple[str, ReadFn, WriteFn, Any]]  # tag -> (attribute, read, write, default)
    absent: list[tuple[str, Field]]  # fields not in this version: filled with defaults
    flexible: bool


@dataclass(eq=False)
class Struct(FieldType):
    """A named list of fields; also usable as a field's type (a nested struct)."""

    name: str
    fields: Sequence[Field]
    _plans: dict[tuple[int, bool], _Plan] = field(default_factory=dict, repr=False)

    @property
    def kafka_name(self) -> str:  # type: ignore[override]
        return self.name

    def __repr__(self) -> str:
        return f"<Struct {self.name}>"

    def default(self) -> Data:
        return Data(**{f.attribute: f.default_value() for f in self.fields})

    def make(self, **values: Any) -> Data:
        """A value of this struct: given fields as passed, the rest at their defaults."""
        known = {f.attribute for f in self.fields}
        unknown = set(values) - known
        if unknown:
            raise TypeError(f"{self.name} has no field(s) {sorted(unknown)}")
        data = self.default()
        for name, value in values.items():
            setattr(data, name, value)
        return data

    def plan(self, version: int, flexible: bool) -> _Plan:
        key = (version, flexible)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._compile(version, flexible)
        return plan

    def _compile(self, version: int, flexible: bool) -> _Plan:
        regular: list[tuple[str, ReadFn, WriteFn]] = []
        tagged: dict[int, tuple[str, ReadFn, WriteFn, Any]] = {}
        absent: list[tuple[str, Field]] = []
        for f in self.fields:
            nullable = version in f.nullable_range
            if flexible and f.tag is not None and version in f.tagged_range:
                read, write = _field_codec(f, flexible, nullable, version)
                tagged[f.tag] = (f.attribute, read, write, f.default_value())
            elif version in f.version_range and f.tag is None:
                read, write = _field_codec(f, flexible, nullable, version)
                regular.append((f.attribute, read, write))
            else:
                absent.append((f.attribute, f))
        return _Plan(regular, tagged, absent, flexible)

    # A struct used as a field type: read/write its fields (plus tagged section when flexible).
    def reader(self, flexible: bool, nullable: bool, version: int) -> ReadFn:
        def read(reader: Reader) -> Data:
            return self.read(reader, version, flexible)

        return read

    def writer(self, flexible: bool, nullable: bool, version: int) -> WriteFn:
        def write(writer: Writer, value: Data) -> None:
            self.write(writer, value, version, flexible)

        return write

    def read(self, reader: Reader, version: int, flexible: bool) -> Data:
        plan = self.plan(version, flexible)
        values: dict[str, Any] = {}
        for attribute, read, _ in plan.regular:
            values[attribute] = read(reader)
        for attribute, f in plan.absent:
            values[attribute] = f.default_value()
        if plan.flexible:
            for attribute, _, _, default in plan.tagged.values():
                values[attribute] = default
            unknown = _read_tagged_section(reader, plan, values)
            if unknown:
                values["_unknown_tags"] = unknown
        return Data(**values)

    def write(self, writer: Writer, value: Data, version: int, flexible: bool) -> None:
        plan = self.plan(version, flexible)
        for attribute, _, write in plan.regular:
            write(writer, getattr(value, attribute))
        if plan.flexible:
            _write_tagged_section(writer, plan, value)


def _field_codec(f: Field, flexible: bool, nullable: bool, version: int) -> tuple[ReadFn, WriteFn]:
    flexible = f.is_compact(version, flexible)
    if isinstance(f.type, Struct) and nullable:
        # Rule 4: a nullable struct carries an INT8 presence marker.
        read_inner = f.type.reader(flexible, False, version)
        write_inner = f.type.writer(flexible, False, version)

        def read(reader: Reader) -> Any:
            return None if reader.int8() < 0 else read_inner(reader)

        def write(writer: Writer, value: Any) -> None:
            if value is None:
                writer.int8(-1)
            else:
                writer.int8(1)
                write_inner(writer, value)

        return read, write
    return f.type.reader(flexible, nullable, version), f.type.writer(flexible, nullable, version)


def _read_tagged_section(reader: Reader, plan: _Plan, values: dict[str, Any]) -> dict[int, bytes]:
    """Rule 2: read the tagged fields; known ones become attributes, unknown ones stay raw."""
    unknown: dict[int, bytes] = {}
    count = reader.unsigned_varint()
    if count > reader.remaining():
        raise DecodeError(f"{count} tagged fields cannot fit in {reader.remaining()} bytes")
    previous = -1
    for _ in range(count):
        tag = reader.unsigned_varint()
        if tag <= previous:
            raise DecodeError(f"tagged fields out of order: tag {tag} after {previous}")
        previous = tag
        size = reader.unsigned_varint()
        if size > reader.remaining():
            raise DecodeError(f"tagged field {tag} of {size} bytes exceeds what is left")
        known = plan.tagged.get(tag)
        if known is None:
            unknown[tag] = reader.raw(size)
            continue
        attribute, read, _, _ = known
        end = reader.position + size
        inner = Reader(reader.buffer, reader.position, end)
        values[attribute] = read(inner)
        if inner.position != end:
            raise DecodeError(f"tagged field {tag} declared {size} bytes but used {inner.position - reader.position}")
        reader.position = end
    return unknown


def _write_tagged_section(writer: Writer, plan: _Plan, value: Data) -> None:
    entries: list[tuple[int, bytes]] = []
    for tag, (attribute, _, write, default) in plan.tagged.items():
        current = getattr(value, attribute, default)
        if current == default:
            continue
        inner = Writer()
        write(inner, current)
        entries.append((tag, inner.getvalue()))
    unknown: dict[int, bytes] = getattr(value, "_unknown_tags", None) or {}
    entries.extend(unknown.items())
    entries.sort()
    writer.unsigned_varint(len(entries))
    for tag, payload in entries:
        writer.unsigned_varint(tag)
        writer.unsigned_varint(len(payload))
        writer.raw(payload)


def _find_struct(struct: Struct, name: str) -> Struct | None:
    if struct.name == name:
        return struct
    for f in struct.fields:
        inner = f.type.element if isinstance(f.type, Array) else f.type
        if isinstance(inner, Struct):
            found = _find_struct(inner, name)
            if found is not None:
                return found
    return None


# -- messages ------------------------------------------------------------------------------------


@dataclass(eq=False)
class Message:
    """A request or response body for one API, in all its versions."""

    name: str
    api_key: int
    valid_versions: str
    flexible_versions: str
    fields: Sequence[Field]
    common_structs: Sequence[Struct] = ()

    def __post_init__(self) -> None:
        self.body = Struct(self.name, self.fields)
        self.valid = Versions.parse(self.valid_versions)
        self.flexible = Versions.parse(self.flexible_versions)

    def struct(self, name: str) -> Struct:
        """The nested struct declared under ``name`` (Kafka's name for it), for building values."""
        found = _find_struct(self.body, name)
        if found is None:
            raise KeyError(f"{self.name} declares no struct {name}")
        return found

    def __repr__(self) -> str:
        return f"<Message {self.name} key={self.api_key} versions={self.valid}>"

    def is_flexible(self, version: int) -> bool:
        return version in self.flexible

    def make(self, **values: Any) -> Data:
        return self.body.make(**values)

    def decode(self, buffer: bytes | bytearray | memoryview | Reader, version: int) -> Data:
        """Decode a body of ``version``; trailing bytes are left for the caller to judge."""
        if version not in self.valid:
            raise DecodeError(f"{self.name} has no version {version} (valid: {self.valid})")
        reader = buffer if isinstance(buffer, Reader) else Reader(buffer)
        return self.body.read(reader, version, self.is_flexible(version))

    def encode(self, value: Data, version: int) -> bytes:
        """The body of ``version`` as bytes of its own."""
        out = Writer()
        self.write(value, version, out)
        return out.getvalue()

    def write(self, value: Data, version: int, writer: Writer) -> None:
        """Append the body of ``version`` to ``writer`` (a frame under construction): the record
        sets it carries are copied once, into the frame, and nowhere else."""
        if version not in self.valid:
            raise ValueError(f"{self.name} has no version {version} (valid: {self.valid})")
        self.body.write(writer, value, version, self.is_flexible(version))

