"""Read masks: returning only the fields a caller asked for, without a message per event.

A batch of stored events is already the wire form of `repeated MessageEvent
events = 1`. For each distinct mask a *pruned* message type is built once at
run time: it declares only the kept fields, under their own numbers and wire
types, inside a wrapper with `repeated <pruned> events = 1`. Projecting a batch
is then three calls into the protobuf runtime's compiled code (upb): parse the
concatenated stored bytes as the wrapper, `DiscardUnknownFields()` (the fields
the mask leaves out arrive as unknown fields), serialize. Python never touches
an event.

Why the result is byte for byte what parsing each event as a `MessageEvent`
and copying the kept fields into a fresh one gives:

- Field order: both serialize in field-number order; unknown fields are
  dropped by both.
- Presence: the pruned type is proto2, so every singular field has explicit
  presence and is written back exactly when it was on the wire. Stored events
  are canonical (written by the same runtime): a field without presence in
  `MessageEvent` is on the wire only when it is not the default, and a proto3
  `optional` one exactly when it is set — what the copy path writes.
- Whole kept message fields (`timestamp`, `geo_ip`) and map entries are
  declared `bytes`, so their records go out verbatim: nested content
  (including a sub-message's own unknown fields, which a copy keeps) is not
  reparsed. A present but empty sub-message stays present, as with a copy.
- Enums are declared `int32` (same varint), so a value this build does not
  know passes through as it does in an open proto3 enum.
- Nested paths (`geo_ip.city`) prune one level down the same way, as
  `FieldMask.MergeMessage` does: the parent is kept when it was present, with
  only the named sub-fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, field_mask_pb2, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from mailevents.v1 import message_event_pb2 as pb
from mailevents_server.errors import Violation

_DESCRIPTOR: Any = pb.MessageEvent.DESCRIPTOR
_FDP = descriptor_pb2.FieldDescriptorProto
#: Kept message fields travel as their raw records; enums as plain varints.
_PASS_THROUGH: dict[int, Any] = {
    FieldDescriptor.TYPE_MESSAGE: _FDP.TYPE_BYTES,
    FieldDescriptor.TYPE_GROUP: _FDP.TYPE_BYTES,
    FieldDescriptor.TYPE_ENUM: _FDP.TYPE_INT32,
}

#: A mask as a tree: field name -> None (the whole field) or the kept sub-fields.
Tree = dict[str, "Tree | None"]


#: Paths one read_mask may hold: each is a field of the message type built for the mask.
MAX_MASK_PATHS = 200


def projection_for(mask: field_mask_pb2.FieldMask, out: list[Violation]) -> Projection | None:
    """The projection a request's read_mask asks for; None for whole events, or
    when the mask is refused (the reason added to `out`)."""
    if not mask.paths:
        return None
    if len(mask.paths) > MAX_MASK_PATHS:
        out.append(Violation("read_mask", f"at most {MAX_MASK_PATHS} paths"))
        return None
    bad = invalid_paths(mask)
    if bad:
        out.append(Violation("read_mask", f"unknown MessageEvent fields: {', '.join(bad)}"))
        return None
    return Projection(mask)


def invalid_paths(mask: field_mask_pb2.FieldMask) -> list[str]:
    """The paths that name no MessageEvent field."""
    return [
        path
        for path in mask.paths
        if not field_mask_pb2.FieldMask(paths=[path]).IsValidForDescriptor(_DESCRIPTOR)
    ]


class Projection:
    """Applies one validated read mask to batches of stored events."""

    def __init__(self, mask: field_mask_pb2.FieldMask) -> None:
        self._wrapper = _wrapper_class(_key(mask_tree(mask.paths)))

    def apply_many(self, stored: Sequence[bytes]) -> bytes:
        """Stored events (each field-1 framed) -> the projected events, framed the same way."""
        batch = self._wrapper.FromString(b"".join(stored))
        batch.DiscardUnknownFields()
        return batch.SerializeToString()  # type: ignore[no-any-return]

    def apply(self, stored: bytes) -> bytes:
        """One stored event -> the projected event, framed the same way."""
        return self.apply_many((stored,))


def mask_tree(paths: Sequence[str]) -> Tree:
    """Paths -> a tree in which a whole field covers any sub-path of it, in any order
    (the semantics of `FieldMask.MergeMessage`)."""
    tree: Tree = {}
    for path in paths:
        node = tree
        names = path.split(".")
        for depth, name in enumerate(names):
            if depth == len(names) - 1:
                node[name] = None
                break
            child = node.setdefault(name, {})
            if child is None:  # an ancestor is kept whole
                break
            node = child
    return tree


_Key = tuple[tuple[str, Any], ...]


def _key(tree: Tree) -> _Key:
    """A hashable, order-free form of a tree, for the cache of built types."""
    return tuple(sorted((name, None if sub is None else _key(sub)) for name, sub in tree.items()))


_CACHE: dict[_Key, Any] = {}
#: Distinct masks kept built; past it, the cache starts over (a type costs ~0.1 ms to build).
_CACHE_LIMIT = 256


def _wrapper_class(key: _Key) -> Any:
    cls = _CACHE.get(key)
    if cls is None:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        cls = _CACHE[key] = _build(key)
    return cls


def _build(key: _Key) -> Any:
    """The wrapper message class for one mask, in a pool of its own."""
    file = descriptor_pb2.FileDescriptorProto(
        name="mailevents_projection.proto", package="mailevents_projection", syntax="proto2"
    )
    counter = iter(range(1_000_000))
    event_name = _add_message(file, _DESCRIPTOR, key, counter)
    wrapper = file.message_type.add(name="Batch")
    wrapper.field.add(
        name="events",
        number=1,
        label=_FDP.LABEL_REPEATED,
        type=_FDP.TYPE_MESSAGE,
        type_name=f".mailevents_projection.{event_name}",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("mailevents_projection.Batch")
    )


def _add_message(
    file: descriptor_pb2.FileDescriptorProto,
    source: Descriptor,
    key: _Key,
    counter: Any,
) -> str:
    """Declare the pruned form of `source` (top level of the file); returns its name."""
    name = f"M{next(counter)}"
    message = file.message_type.add(name=name)
    for field_name, sub in key:
        field = source.fields_by_name[field_name]
        out = message.field.add(name=field.name, number=field.number)
        if sub is not None:  # a singular message field, pruned one level down
            out.label = _FDP.LABEL_OPTIONAL
            out.type = _FDP.TYPE_MESSAGE
            assert field.message_type is not None  # only message fields have sub-paths
            sub_name = _add_message(file, field.message_type, sub, counter)
            out.type_name = f".mailevents_projection.{sub_name}"
            continue
        out.label = _FDP.LABEL_REPEATED if field.is_repeated else _FDP.LABEL_OPTIONAL
        out.type = _PASS_THROUGH.get(field.type, field.type)
        if field.is_repeated and field.is_packed and out.type != _FDP.TYPE_BYTES:
            out.options.packed = True  # proto2 defaults to unpacked; keep the wire form
    return name
