"""`amodal-depth`: one command with a subcommand per tool.

Each subcommand is a module exposing ``add_arguments(parser)`` and ``run(args) -> int``; its
docstring's first line is the subcommand's help. Adding a tool = one line in ``SUBCOMMANDS``. A tool
whose module cannot be imported here (rclpy missing on a machine without ROS, say) stays listed and
says why when called; the others work.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import TextIO

SUBCOMMANDS = {
    "demo": "amodal_depth_ros.tools.demo",
    "composites": "amodal_depth_ros.tools.composites",
    "eval": "amodal_depth_ros.tools.eval",
    "map-eval": "amodal_depth_ros.tools.map_eval",
    "generate": "amodal_depth_ros.tools.generate",
    "train": "amodal_depth_ros.tools.train",
    "replay": "amodal_depth_ros.tools.replay",
    "play": "amodal_depth_ros.tools.play",
    "pictures": "amodal_depth_ros.tools.pictures",
    "export": "amodal_depth_ros.tools.export",
    "engines": "amodal_depth_ros.tools.engines",
    "calibrate": "amodal_depth_ros.tools.calibrate",
    "bench": "amodal_depth_ros.tools.bench",
    "soak": "amodal_depth_ros.tools.soak",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amodal-depth", description="Visible and amodal depth for ROS 2 cameras.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            reason = f"amodal-depth {name} is unavailable here: {exc}"
            command = sub.add_parser(name, help=f"(unavailable: {exc})", add_help=False)
            # Whatever options follow are left unparsed: the reason is the answer to any of them.
            command.set_defaults(run=lambda args, reason=reason: print(reason, file=sys.stderr) or 2, unavailable=True)
            continue
        doc = (module.__doc__ or "").strip()
        command = sub.add_parser(name, help=doc.split("\n", 1)[0], description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests and callers may swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def log_to_console() -> None:
    """The tools' sink for the package's log records (library modules log through
    ``logging.getLogger(__name__)``): stderr, INFO and above; other libraries' loggers are left alone."""
    package = logging.getLogger(__name__.split(".")[0])   # "amodal_depth_ros"
    if not package.handlers:
        handler = _StderrHandler()
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package.addHandler(handler)
        package.setLevel(logging.INFO)
        package.propagate = False


def main(argv: list[str] | None = None) -> int:
    log_to_console()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "unavailable", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.command_line = ["amodal-depth", *(sys.argv[1:] if argv is None else argv)]   # for records of the run
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
