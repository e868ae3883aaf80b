"""Declares the pipeline's parameters (core/config.py) on a node, with descriptors and validation."""
from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..core import config
from ..errors import ConfigError

_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def _descriptor(spec: config.ParamSpec) -> ParameterDescriptor:
    description = spec.description
    if spec.choices:
        description += f" One of: {', '.join(spec.choices)}."
    description += {config.READ_ONLY: " Read-only.", config.LIVE: " Applies live.",
                    config.REBUILD: " A change reloads the pipeline."}[spec.change]
    # An explicit type makes rclpy refuse e.g. `use_depth:=1` instead of silently retyping the parameter.
    descriptor = ParameterDescriptor(description=description, read_only=spec.name in config.READ_ONLY_NAMES,
                                     type=_TYPES[type(spec.default)])
    if isinstance(spec.default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high, step=0.0)]
    elif isinstance(spec.default, int) and not isinstance(spec.default, bool):
        low, high = int(spec.low or 0), int(spec.high or 0)   # every integer parameter has a range
        descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
    return descriptor


def declare_pipeline_parameters(node: Node) -> dict[str, Any]:
    """Declare every parameter and return the validated values; raise ConfigError naming a bad one."""
    values: dict[str, Any] = {}
    for spec in config.PARAMS:
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default, _descriptor(spec)).value
        except (InvalidParameterValueException, InvalidParameterTypeException) as error:
            raise ConfigError(
                f"invalid value for parameter '{spec.name}' ({error}); expected {_expectation(spec)}"
            ) from None
    return config.validated(values)


def _expectation(spec: config.ParamSpec) -> str:
    kind = type(spec.default).__name__
    if spec.choices:
        return f"{kind} in {list(spec.choices)}"
    if spec.low is not None:
        return f"{kind} in [{spec.low}, {spec.high}]"
    return kind


def validate_update(parameters: list[Parameter]) -> SetParametersResult:
    """on-set-parameters callback body: refuse values outside the spec with the spec's message."""
    for parameter in parameters:
        spec = config.SPECS.get(parameter.name)
        if spec is None:
            continue
        try:
            spec.validate(parameter.value)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
    return SetParametersResult(successful=True)
