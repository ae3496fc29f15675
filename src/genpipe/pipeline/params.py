"""params.yaml loading and validation against ``workflow/schemas/params.schema.yaml``.

Snakemake validates the whole file before any job starts; each script validates its own section
(as DVC runs scripts directly). Errors name the dotted key, e.g.
``params.yaml: train_classifier.mnist.epochs: 0 is less than the minimum of 1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_RELPATH = Path("workflow/schemas/params.schema.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or violates the schema."""


def schema_path(params_path: str | Path = "params.yaml") -> Path:
    return Path(params_path).resolve().parent / SCHEMA_RELPATH


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc


def _dotted(parts: list[Any] | tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _known_keys(node: dict[str, Any], root: dict[str, Any]) -> set[str]:
    """Property names ``node`` allows, following a local ``$ref`` (as unevaluatedProperties does)."""
    keys = set(node.get("properties", {}))
    if "$ref" in node:
        keys |= _known_keys(root["$defs"][node["$ref"].rsplit("/", 1)[-1]], root)
    return keys


def _describe(error: jsonschema.ValidationError, prefix: tuple[str, ...], root: dict[str, Any]) -> str:
    path = prefix + tuple(str(p) for p in error.absolute_path)
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        allowed = sorted(_known_keys(error.schema, root))
        extra = sorted(set(error.instance) - set(allowed))
        return "; ".join(f"{_dotted(path + (k,))}: unknown key (allowed: {', '.join(allowed)})" for k in extra)
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"{_dotted(path + (missing,))}: required key is missing"
    return f"{_dotted(path)}: {error.message}"


def _subschema(schema: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    node = schema
    for key in keys:
        node = node.get("properties", {}).get(key) or {}
    return node


def validate(doc: Any, schema: dict[str, Any], section: str | None = None, source: str = "params.yaml") -> None:
    """Validate ``doc`` (or only its dotted ``section``) and raise :class:`ParamsError` listing every problem."""
    keys = tuple(section.split(".")) if section else ()
    node = doc
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise ParamsError(f"{source}: {_dotted(keys[: i + 1])}: required key is missing")
        node = node[key]
    validator_cls = jsonschema.validators.validator_for(schema)
    sub = {**_subschema(schema, keys), "$defs": schema.get("$defs", {})} if keys else schema
    errors = sorted(validator_cls(sub).iter_errors(node), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = "\n".join(f"  {_describe(e, keys, schema)}" for e in errors)
        raise ParamsError(f"{source}: invalid parameters:\n{lines}")


def load_params(section: str | None = None, path: str | Path = "params.yaml") -> Any:
    """Load params.yaml, validate it (or only ``section``), and return that section."""
    doc = load_yaml(path)
    schema = load_yaml(schema_path(path))
    validate(doc, schema, section, source=str(path))
    node = doc
    for key in section.split(".") if section else ():
        node = node[key]
    return node
