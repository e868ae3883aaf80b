"""Spin a node's callbacks in a thread of its own, for the node's peers (camera client, stream probe,
test drivers) whose subscriptions must be served while their owner publishes or waits."""
from __future__ import annotations

import threading

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class SpinThread:
    """Spins ``node`` on its own executor (in the node's context) until ``stop()``."""

    def __init__(self, node: Node, period: float = 0.02) -> None:
        self.node, self.period = node, period
        self.executor = SingleThreadedExecutor(context=node.context)
        self.executor.add_node(node)
        self._stopping = False
        self._thread = threading.Thread(target=self._spin, name=f"spin {node.get_name()}", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stopping and self.node.context.ok():
            try:
                self.executor.spin_once(timeout_sec=self.period)
            except Exception as error:   # shutdown races end the thread; anything else is logged
                if not self._stopping:
                    self.node.get_logger().error(f"executor stopped: {type(error).__name__}: {error}")
                return

    def stop(self, timeout: float = 60.0) -> None:
        """End the thread and take the node off the executor (the caller destroys the node). RuntimeError when
        a callback still runs after ``timeout`` s: the node must not be destroyed under it."""
        self._stopping = True
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"{self._thread.name}: a callback still runs after {timeout:g} s")
        self.executor.remove_node(self.node)
