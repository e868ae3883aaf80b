"""The package's one log sink in the node: records of the ``amodal_depth_ros`` logger (every library
module logs through ``logging.getLogger(__name__)``, a child of it) go to the node's rclpy logger, so
they reach the console and /rosout with the node's name, under its ``--log-level``."""
from __future__ import annotations

import logging
from typing import Any

PACKAGE_LOGGER = __name__.split(".")[0]   # "amodal_depth_ros"


class RclpyHandler(logging.Handler):
    def __init__(self, logger: Any):   # an rclpy RcutilsLogger
        super().__init__(logging.DEBUG)   # rclpy's own severity threshold decides what is shown
        self.logger = logger
        self.restore = (logging.NOTSET, True)   # the package logger's level and propagation before routing

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"[{record.name}] {self.format(record)}"
            if record.levelno >= logging.CRITICAL:
                self.logger.fatal(text)
            elif record.levelno >= logging.ERROR:
                self.logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.logger.warning(text)
            elif record.levelno >= logging.INFO:
                self.logger.info(text)
            else:
                self.logger.debug(text)
        except Exception:   # a failing log call must never take the node down
            self.handleError(record)


def route_to_rclpy(logger: Any) -> RclpyHandler:
    """Send the package's log records to ``logger`` (only there: they do not also reach the root logger)."""
    handler = RclpyHandler(logger)
    package = logging.getLogger(PACKAGE_LOGGER)
    handler.restore = (package.level, package.propagate)
    package.addHandler(handler)
    package.setLevel(logging.DEBUG)
    package.propagate = False
    return handler


def stop_routing(handler: RclpyHandler) -> None:
    package = logging.getLogger(PACKAGE_LOGGER)
    package.removeHandler(handler)
    package.level, package.propagate = handler.restore
