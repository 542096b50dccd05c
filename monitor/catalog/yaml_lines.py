"""Load YAML while remembering the line of every key and item, so errors can point at them."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["LocatedYAML", "YAMLLoadError", "load_located"]

Path = tuple[str | int, ...]

# libyaml's parser when PyYAML was built with it: a 10,000-target catalog loads in a fraction
# of the time and memory; the node tree and its line marks are the same.
_FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YAMLLoadError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class LocatedYAML:
    """Plain Python data plus the 1-based line of each path (`("targets", 3, "url")`)."""

    def __init__(self, data: Any, lines: dict[Path, int]) -> None:
        self.data = data
        self._lines = lines

    def line_of(self, path: Path) -> int:
        """The line of the longest prefix of `path` that exists in the file."""
        for end in range(len(path), -1, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return 1


def load_located(text: str) -> LocatedYAML:
    try:
        node = yaml.compose(text, Loader=_FastLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YAMLLoadError(line, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YAMLLoadError(1, f"invalid YAML: {exc}") from None
    lines: dict[Path, int] = {}
    if node is None:
        return LocatedYAML(None, lines)
    return LocatedYAML(_Builder(lines).build(node, ()), lines)


_MAX_NODES = 200_000  # aliases can expand a small file exponentially ("billion laughs")


class _Builder:
    def __init__(self, lines: dict[Path, int]) -> None:
        self.lines = lines
        self.constructor = yaml.SafeLoader("")
        self.open_nodes: set[int] = set()
        self.built = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        line = node.start_mark.line + 1
        self.built += 1
        if self.built > _MAX_NODES:
            raise YAMLLoadError(line, f"document too large (over {_MAX_NODES} values)")
        if id(node) in self.open_nodes:
            raise YAMLLoadError(line, "recursive alias")
        self.lines[path] = line
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        self.open_nodes.add(id(node))
        try:
            return self.collection(node, path)
        finally:
            self.open_nodes.discard(id(node))

    def collection(self, node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.scalar(key_node)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    raise YAMLLoadError(key_node.start_mark.line + 1, "mapping keys must be plain values")
                if key in result:
                    raise YAMLLoadError(key_node.start_mark.line + 1, f"duplicate key {key!r}")
                child = (*path, str(key))
                result[key] = self.build(value_node, child)
                self.lines[child] = key_node.start_mark.line + 1
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        raise YAMLLoadError(node.start_mark.line + 1, "unsupported YAML node")

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return node
        try:
            return self.constructor.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            raise YAMLLoadError(node.start_mark.line + 1, f"invalid value: {exc.problem}") from None
