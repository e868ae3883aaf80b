"""Bags of rclpy messages without a ROS install: rosbags handles the files (rosbag2 mcap / sqlite3 and
ROS 1 .bag), rclpy's own serialiser handles the bytes, so messages are the very classes the node uses."""
from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rclpy.serialization import deserialize_message, serialize_message
from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from ..errors import ConfigError, DataError
from ..resources import package_path

STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def typestore() -> Typestore:
    """Jazzy's message types plus this package's own (msg/*.msg), for bag metadata and ROS 1 bags."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for path in sorted(package_path("msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"amodal_depth_ros/msg/{path.stem}"))
    store.register(types)
    return store


def type_name(msg_or_class: Any) -> str:
    """'sensor_msgs/msg/Image' for an rclpy message (class or instance)."""
    cls = msg_or_class if isinstance(msg_or_class, type) else type(msg_or_class)
    package = cls.__module__.split(".")[0]
    return f"{package}/msg/{cls.__name__}"


def message_class(name: str) -> type:
    """The rclpy class of 'pkg/msg/Type'; ValueError if its Python package is not installed."""
    package, kind, type_ = name.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), type_)
    except (ImportError, AttributeError) as exc:
        raise DataError(f"message type {name} is not available in this Python environment ({exc})") from exc


class BagWriter:
    """rosbag2 writer (mcap by default) taking rclpy messages; topics are added on first use."""

    def __init__(self, path: Path, storage: str = "mcap"):
        if storage not in STORAGE:
            raise ConfigError(f"storage must be one of {sorted(STORAGE)}, got {storage!r}")
        self._store = typestore()
        self._writer = Writer(path, version=9, storage_plugin=STORAGE[storage])
        self._connections: dict[str, Connection] = {}
        self._writer.open()

    def write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, type_name(msg), typestore=self._store)
            self._connections[topic] = connection
        self._writer.write(connection, stamp_ns, serialize_message(msg))

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def topics_of(path: Path) -> dict[str, tuple[str, int]]:
    """topic -> (type name, message count) of a bag."""
    with AnyReader([Path(path)], default_typestore=typestore()) as reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}


def read_messages(path: Path, topics: Iterable[str]) -> Iterator[tuple[str, int, Any]]:
    """(topic, bag time ns, rclpy message) of ``topics`` in bag-time order. ROS 1 bags are converted to
    CDR on the way. A missing bag or a topic of an unknown type raises ValueError."""
    wanted = set(topics)
    store = typestore()
    try:
        reader = AnyReader([Path(path)], default_typestore=store)
        reader.open()
    except Exception as exc:   # rosbags raises its own error types for every kind of unreadable bag
        raise DataError(f"{path}: cannot open as a bag ({exc})") from exc
    try:
        connections = [c for c in reader.connections if c.topic in wanted]
        classes = {c.msgtype: message_class(c.msgtype) for c in connections}
        ros1 = reader.is2 is False
        for connection, timestamp, raw in reader.messages(connections=connections):
            data = store.ros1_to_cdr(raw, connection.msgtype) if ros1 else raw
            yield connection.topic, timestamp, deserialize_message(bytes(data), classes[connection.msgtype])
    finally:
        reader.close()
