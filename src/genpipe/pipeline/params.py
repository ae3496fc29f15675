"""params.yaml loading and validation against ``workflow/schemas/params.schema.yaml``.

The schema's root holds the top level and the shared ``$defs``; each rule group's sections live in
``workflow/schemas/params/<group>.schema.yaml`` and :func:`load_schema` merges their
``properties`` into it.

Snakemake validates the whole file before any job starts; each script validates its own section
(as DVC runs scripts directly). Errors name the dotted key, e.g.
``params.yaml: train_classifier.mnist.epochs: 0 is less than the minimum of 1``.

After the schema, :data:`CROSS_KEY_RULES` checks constraints between keys that a JSON schema
cannot express (``evaluate_samples.same_n`` against each sampler's ``n``, ...); their messages
name both keys and values. A script validating only its section runs every cross-key rule that
names a key inside that section, with the other key read from the same (whole) file: the
constraint is checked by the first stage that reads either key, before any work, as Snakemake
does for the whole file. A rule whose other key is missing or not a number is skipped there (that
key's own section reports it).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import jsonschema
import yaml

SCHEMA_RELPATH = Path("workflow/schemas/params.schema.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or violates the schema."""


def schema_path(params_path: str | Path = "params.yaml") -> Path:
    return Path(params_path).resolve().parent / SCHEMA_RELPATH


def load_schema(path: str | Path) -> dict[str, Any]:
    """The root schema at ``path`` with the ``properties`` of every ``params/<group>.schema.yaml`` beside it."""
    schema = load_yaml(path)
    for part in sorted((Path(path).parent / "params").glob("*.schema.yaml")):
        props = load_yaml(part).get("properties", {})
        if clash := sorted(set(props) & set(schema["properties"])):
            raise ParamsError(f"{part}: sections {', '.join(clash)} are also defined in another schema file")
        schema["properties"].update(props)
    return schema


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


@dataclass(frozen=True)
class CrossKeyRule:
    """``left_factor * left <op> right_factor * right`` for every value of two dotted keys.

    A key part ``*`` stands for every key of that mapping (``sample_ddpm.samplers.*.n``); each
    value of ``left`` is checked against each value of ``right``. ``message`` is formatted with
    ``left``, ``right`` (the dotted keys) and ``lv``, ``rv`` (their values).
    """

    left: str
    op: Callable[[Any, Any], bool]
    right: str
    message: str
    left_factor: int = 1
    right_factor: int = 1

    def violations(self, doc: Any, section: tuple[str, ...] = ()) -> Iterator[str]:
        for lkey, lv in _values(doc, self.left.split(".")):
            for rkey, rv in _values(doc, self.right.split(".")):
                if section and not (_within(lkey, section) or _within(rkey, section)):
                    continue
                if not self.op(self.left_factor * lv, self.right_factor * rv):
                    yield self.message.format(left=_dotted(lkey), right=_dotted(rkey), lv=lv, rv=rv)


def _values(node: Any, parts: list[str], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every number at the dotted ``parts`` ("*" = every key); absent keys give nothing."""
    if not parts:
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            yield path, node
        return
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    for key in sorted(node, key=str) if head == "*" else [head] if head in node else []:
        yield from _values(node[key], rest, path + (str(key),))


def _within(key: tuple[str, ...], section: tuple[str, ...]) -> bool:
    """``key`` lies inside ``section`` or is one of the keys ``section`` lies in."""
    n = min(len(key), len(section))
    return key[:n] == section[:n]


# Constraints between keys, checked after the schema (messages name both keys and values).
# Each is a failure or a silent change of meaning in the code today, not a matter of taste.
CROSS_KEY_RULES: tuple[CrossKeyRule, ...] = (
    # evaluate_samples scores the first min(same_n, n) samples of each set; compare_samplers then
    # stops at its end ("samplers were compared at different N") when a sampler's set is smaller.
    CrossKeyRule("evaluate_samples.same_n", operator.le, "sample_ddpm.samplers.*.n",
                 "{left}: {lv} is more than {right}: {rv} (compare_samplers scores every sampler's conditional set "
                 "at its first same_n samples)"),
    # grid.png takes grid_per_class samples of each digit from the balanced labels 0..9, 0..9, ...:
    # fewer than 10 * grid_per_class samples shrink the grid or fail np.stack after all the sampling.
    CrossKeyRule("sample_ddpm.grid_per_class", operator.le, "sample_ddpm.samplers.*.n",
                 "{left}: {lv} is more than {right}: {rv} / 10 (grid.png shows grid_per_class samples of each of "
                 "the 10 digits)", left_factor=10),
    # the ViT splits its dim channels evenly over the heads (genpipe.models.vit.ViTConfig)
    CrossKeyRule("train_vit.dim", lambda dim, heads: dim % heads == 0, "train_vit.heads",
                 "{left}: {lv} is not a multiple of {right}: {rv} (each attention head takes dim / heads channels)"),
    # FID (genpipe.scoring.evaluation.fid_kid) needs more samples than the classifier's features,
    # 4 * width: every set scored in that space, its same_n prefix and the floor's training subset.
    *(CrossKeyRule(key, operator.gt, f"train_classifier.{dataset}.width",
                   "{left}: {lv} is not more than 4 x {right}: {rv} (FID needs more samples than the classifier's "
                   "4 x width features)", right_factor=4)
      for key, dataset in (
          ("sample_ddpm.samplers.*.n", "mnist"),
          ("sample_ddpm.samplers.*.n_unconditional", "mnist"),
          ("sample_vae.n", "fashion_mnist"),
          ("evaluate_samples.same_n", "*"),
          ("evaluate_samples.floor_n", "*"),
      )),
)


def cross_key_errors(doc: Any, section: str | None = None) -> list[str]:
    """Messages of every :data:`CROSS_KEY_RULES` violation (only rules naming a key in ``section``)."""
    keys = tuple(section.split(".")) if section else ()
    return [msg for rule in CROSS_KEY_RULES for msg in rule.violations(doc, keys)]


def validate(doc: Any, schema: dict[str, Any], section: str | None = None, source: str = "params.yaml") -> None:
    """Validate ``doc`` (or only its dotted ``section``) and raise :class:`ParamsError` listing every problem.

    The schema first; then, when it passes, :data:`CROSS_KEY_RULES` (see the module docstring).
    """
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
    cross = cross_key_errors(doc, section)
    if cross:
        lines = "\n".join(f"  {m}" for m in cross)
        raise ParamsError(f"{source}: parameters that contradict each other:\n{lines}")


def load_params(section: str | None = None, path: str | Path = "params.yaml") -> Any:
    """Load params.yaml, validate it (or only ``section``), and return that section."""
    doc = load_yaml(path)
    schema = load_schema(schema_path(path))
    validate(doc, schema, section, source=str(path))
    node = doc
    for key in section.split(".") if section else ():
        node = node[key]
    return node
