"""A strict YAML reader: safe tags only, duplicate keys rejected, ``1e-5`` read as a float.

YAML 1.1 surprises are settled the YAML 1.2 way or refused: only ``true``/``false`` are
booleans (``yes``/``no``/``on``/``off`` stay strings) and a leading-zero integer such as
``010`` (octal 8 in YAML 1.1) is an error asking the user to say what they mean.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tuner.errors import ConfigError, Problem


class _Loader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        # Aliases are refused: a few lines of them expand to billions of values ("billion laughs").
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not allowed; write the value out", event.start_mark
            )
        return super().compose_node(parent, index)


# Booleans: YAML 1.2 core schema only.
_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# Floats in exponent form without a dot (``1e-5``), which YAML 1.1 reads as a string.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    digits = text.lstrip("+-").replace("_", "")
    if len(digits) > 1 and digits[0] == "0" and digits.isdigit():
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"ambiguous number {text!r} (octal in YAML 1.1): quote it or drop the leading zero",
            node.start_mark,
        )
    return int(yaml.SafeLoader.construct_yaml_int(loader, node))


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) or key is None:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain scalar, got {key!r}", key_node.start_mark
            )
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a study file; any problem becomes a :class:`ConfigError` naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str = "<string>") -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark else ""
        problem = exc.problem or str(exc)
        if "could not determine a constructor" in problem:
            problem = f"YAML tag not allowed ({problem.split('tag ')[-1]}); only plain YAML is read"
        raise ConfigError([Problem(where, problem)], source=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("", f"not valid YAML: {exc}")], source=source) from None
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem("", f"the file must hold a mapping of keys, got {type(data).__name__}")], source=source
        )
    return data
