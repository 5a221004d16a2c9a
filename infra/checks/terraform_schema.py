"""Checks infra/terraform's resources, data sources and provider blocks against provider schemas.

    python -m infra.checks.terraform_schema [DIR]    (default: infra/terraform)

Every `resource`, `data` and `provider` block must name a type the provider has, and every
argument and nested block inside it (recursively, `dynamic` blocks' `content` included)
must be one the schema allows, with the schema's required arguments and blocks present.
The schemas come from the pinned cdktf packages (provider_schema.py), so this runs where
`terraform validate` cannot download providers. It checks names and required-ness, not
value types, conflicts between arguments, or references between resources.

Exit codes: 0 clean, 1 problems found, 2 the schema could not be obtained or read.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

from infra.checks.provider_schema import (
    REPO_ROOT,
    BlockSchema,
    Kind,
    SchemaParseError,
    SchemaStore,
    SchemaUnavailable,
    normalize_source,
)

DEFAULT_DIR = REPO_ROOT / "infra" / "terraform"

# Terraform language meta-arguments: the language defines them, not the provider schema.
META: Mapping[Kind, frozenset[str]] = {
    "resource": frozenset(
        {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
    ),
    "data": frozenset({"count", "for_each", "depends_on", "provider", "lifecycle"}),
    "provider": frozenset({"alias", "version"}),
}
DYNAMIC_KEYS = frozenset({"for_each", "iterator", "labels", "content"})


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    address: str
    message: str

    def __str__(self) -> str:
        return f"{_display(self.path)}:{self.line}: {self.address}: {self.message}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # addresses whose schema was applied
    providers: dict[str, str] = field(default_factory=dict)  # source -> schema label


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _unquote(value: Any) -> str:
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _similar(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(candidates), n=3, cutoff=0.6)
    return "; did you mean " + " or ".join(close) + "?" if close else ""


# --- reading HCL -------------------------------------------------------------------------


def _load_hcl(text: str) -> tuple[dict[str, Any], bool]:
    """The parsed file, and whether blocks carry python-hcl2's explicit `__is_block__` marker.

    python-hcl2 7+ marks blocks, so `x { }` and `x = [{ }]` can be told apart; older
    versions cannot, and then a list of objects counts as a block wherever the schema has one.
    """
    try:
        from hcl2 import SerializationOptions  # noqa: PLC0415 - exists from python-hcl2 7 on
    except ImportError:
        legacy: dict[str, Any] = hcl2.loads(text)
        return legacy, False
    options = SerializationOptions(with_comments=False, explicit_blocks=True)
    parsed: dict[str, Any] = hcl2.loads(text, serialization_options=options)
    return parsed, True


def _labelled(entries: Any, depth: int) -> Iterable[tuple[list[str], dict[str, Any]]]:
    """(labels, body) of `resource "a" "b" { }` style blocks as python-hcl2 nests them."""
    for entry in entries if isinstance(entries, list) else [entries]:
        if not isinstance(entry, dict):
            continue
        if depth == 0:
            yield [], entry
            continue
        for label, inner in entry.items():
            if str(label).startswith("__"):
                continue
            for labels, body in _labelled(inner, depth - 1):
                yield [_unquote(label), *labels], body


class _File:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        self.lines = self.text.splitlines()

    def line_of(self, header: str, *names: str) -> int:
        """Line of the block header (a regex), then of each nested name after it."""
        match = re.search(header, self.text, re.M)
        if match is None:
            return 1
        line = self.text.count("\n", 0, match.start())
        for name in names:
            pattern = re.compile(
                rf'^\s*(?:dynamic\s+"{re.escape(name)}"|{re.escape(name)}(?![\w-]))'
            )
            for number in range(line + 1, len(self.lines)):
                if pattern.match(self.lines[number]):
                    line = number
                    break
        return line + 1


@dataclass
class _Block:
    kind: Kind
    type_name: str  # resource/data type, or the provider's local name
    name: str
    body: dict[str, Any]
    file: _File
    explicit: bool

    @property
    def address(self) -> str:
        if self.kind == "provider":
            return f'provider "{self.type_name}"'
        prefix = "data." if self.kind == "data" else ""
        return f"{prefix}{self.type_name}.{self.name}"

    @property
    def header(self) -> str:
        labels = [self.type_name] if self.kind == "provider" else [self.type_name, self.name]
        quoted = r"\s+".join(rf'"?{re.escape(label)}"?' for label in labels)
        return rf"^\s*{self.kind}\s+{quoted}\s*\{{"

    def provider_name(self) -> str:
        """Local name of the provider that serves this block."""
        if self.kind == "provider":
            return self.type_name
        explicit = self.body.get("provider")
        if explicit is not None:
            reference = _unquote(explicit).removeprefix("${").removesuffix("}")
            return reference.split(".", 1)[0]
        return self.type_name.split("_", 1)[0]


@dataclass
class _Config:
    blocks: list[_Block] = field(default_factory=list)
    # local name -> (source, version constraint, file, line)
    required: dict[str, tuple[str, str | None, _File, int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def _read_config(directory: Path) -> _Config:
    config = _Config()
    paths = sorted(directory.glob("*.tf"))
    if not paths:
        config.findings.append(Finding(directory, 0, "-", "no *.tf files"))
    for path in paths:
        file = _File(path)
        try:
            parsed, explicit = _load_hcl(file.text)
        except Exception as exc:  # python-hcl2 raises lark's errors, not one base class
            config.findings.append(Finding(path, 1, "-", f"cannot parse: {exc}"))
            continue
        kinds: tuple[tuple[Kind, int], ...] = (("resource", 2), ("data", 2), ("provider", 1))
        for kind, depth in kinds:
            for labels, body in _labelled(parsed.get(kind, []), depth):
                name = labels[1] if depth == 2 else ""
                config.blocks.append(_Block(kind, labels[0], name, body, file, explicit))
        for _, terraform in _labelled(parsed.get("terraform", []), 0):
            for _, providers in _labelled(terraform.get("required_providers", []), 0):
                for local, spec in providers.items():
                    if str(local).startswith("__"):
                        continue
                    line = file.line_of(r"^\s*required_providers\s*\{", str(local))
                    if isinstance(spec, dict):
                        source = _unquote(spec.get("source", f"hashicorp/{local}"))
                        version = spec.get("version")
                        constraint = None if version is None else _unquote(version)
                    else:  # the pre-0.13 form: `google = "~> 6.0"`
                        source, constraint = f"hashicorp/{local}", _unquote(spec)
                    config.required[str(local)] = (source, constraint, file, line)
    return config


# --- versions ----------------------------------------------------------------------------

_CONSTRAINT = re.compile(r"\s*(~>|>=|<=|!=|=|>|<)?\s*v?(\d+(?:\.\d+)*)(?:-[0-9A-Za-z.-]+)?\s*")


def _numbers(version: str) -> tuple[int, ...]:
    match = re.fullmatch(r"v?(\d+(?:\.\d+)*)(?:[-+].*)?", version.strip())
    if match is None:
        raise ValueError(f"unreadable version {version!r}")
    return tuple(int(n) for n in match.group(1).split("."))


def _compare(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return (a > b) - (a < b)


def satisfies(version: str, constraint: str) -> bool:
    """Terraform's version constraint syntax: `~> 6.0`, `>= 1.2, < 2`, `= 1.0.0`, ..."""
    have = _numbers(version)
    for part in constraint.split(","):
        match = _CONSTRAINT.fullmatch(part)
        if match is None:
            raise ValueError(f"unreadable version constraint {constraint!r}")
        op, want = match.group(1) or "=", tuple(int(n) for n in match.group(2).split("."))
        order = _compare(have, want)
        if op == "~>":
            # The rightmost given component may grow: ~> 6.0 is >= 6.0, < 7.
            stem = want[:-1] if len(want) > 1 else want
            upper = (*stem[:-1], stem[-1] + 1)
            ok = order >= 0 and _compare(have, upper) < 0
        else:
            ok = {
                "=": order == 0,
                "!=": order != 0,
                ">": order > 0,
                ">=": order >= 0,
                "<": order < 0,
                "<=": order <= 0,
            }[op]
        if not ok:
            return False
    return True


# --- checking ----------------------------------------------------------------------------


def _is_block(value: Any, explicit: bool, schema: BlockSchema, key: str) -> bool:
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        return False
    if explicit:
        return all(v.get("__is_block__") is True for v in value)
    return key in schema.blocks


class _Checker:
    def __init__(self, block: _Block, report: Report) -> None:
        self.block = block
        self.report = report

    def add(self, path: Sequence[str], message: str, name: str | None = None) -> None:
        """Records a problem at path, pointing at the line of name when it is written there."""
        line = self.block.file.line_of(self.block.header, *path, *([name] if name else []))
        where = f"{self.block.address}" + (f" ({'.'.join(path)})" if path else "")
        self.report.findings.append(Finding(self.block.file.path, line, where, message))

    def body(
        self,
        body: Mapping[str, Any],
        schema: BlockSchema,
        path: tuple[str, ...],
        meta: frozenset[str] = frozenset(),
    ) -> None:
        present: set[str] = set()
        for key, value in body.items():
            if key.startswith("__") or key in meta:
                continue
            if key == "dynamic":
                present.update(self.dynamic(value, schema, path))
            elif _is_block(value, self.block.explicit, schema, key):
                present.add(key)
                if key in schema.blocks:
                    for instance in value:
                        self.body(instance, schema.blocks[key], (*path, key))
                elif key in schema.arguments:
                    self.add(path, f"{key} is an argument: write `{key} = ...`, not a block", key)
                else:
                    hint = _similar(key, schema.blocks) or _similar(key, schema.names)
                    self.add(path, f"unknown block {key}{hint}", key)
            elif key in schema.arguments:
                present.add(key)
            elif key in schema.blocks:
                present.add(key)
                self.add(path, f"{key} is a block: write `{key} {{ ... }}`, not `{key} = ...`", key)
            else:
                hint = _similar(key, schema.arguments) or _similar(key, schema.names)
                self.add(path, f"unknown argument {key}{hint}", key)
        for missing in sorted(schema.required - present):
            what = "block" if missing in schema.blocks else "argument"
            self.add(path, f"required {what} {missing} is missing")

    def dynamic(self, value: Any, schema: BlockSchema, path: tuple[str, ...]) -> set[str]:
        names: set[str] = set()
        for labels, spec in _labelled(value, 1):
            name = labels[0]
            names.add(name)
            if name not in schema.blocks:
                if name in schema.arguments:
                    problem = f"{name} is an argument, not a block"
                else:
                    problem = f"unknown block {name}{_similar(name, schema.blocks)}"
                self.add(path, f'dynamic "{name}": {problem}', name)
                continue
            for key in spec:
                if not key.startswith("__") and key not in DYNAMIC_KEYS:
                    self.add((*path, name), f'{key} is not valid in dynamic "{name}"', key)
            contents = spec.get("content")
            if not isinstance(contents, list) or not contents:
                self.add((*path, name), f'dynamic "{name}" has no content block')
                continue
            for content in contents:
                if isinstance(content, dict):
                    self.body(content, schema.blocks[name], (*path, name))
        return names


def check_directory(directory: Path, store: SchemaStore | None = None) -> Report:
    """Raises SchemaUnavailable or SchemaParseError when the schema itself cannot be had."""
    store = SchemaStore() if store is None else store
    config = _read_config(directory)
    report = Report(findings=list(config.findings))

    for local, (source, constraint, file, line) in sorted(config.required.items()):
        if store.package(source) is None:
            continue  # reported below for each block that needs it
        pinned = store.for_source(source)
        report.providers[pinned.package.source] = pinned.label
        if constraint is None:
            continue
        try:
            problem = None
            if not satisfies(pinned.provider_version, constraint):
                problem = (
                    f'"{constraint}" excludes {pinned.label}, the schema this check uses: '
                    "pin a matching package in infra/checks/provider_schema.py"
                )
        except ValueError as exc:
            problem = str(exc)
        if problem is not None:
            report.findings.append(Finding(file.path, line, f"required_providers.{local}", problem))

    for block in config.blocks:
        checker = _Checker(block, report)
        local = block.provider_name()
        source = config.required.get(local, (f"hashicorp/{local}",))[0]
        if store.package(source) is None:
            checker.add(
                (),
                f"provider {normalize_source(source)} has no pinned schema package, so this "
                "block is not checked: add its @cdktf/provider-* package to PACKAGES in "
                "infra/checks/provider_schema.py",
            )
            continue
        provider = store.for_source(source)
        report.providers[provider.package.source] = provider.label
        type_name = block.type_name
        if block.kind == "provider":
            # The block's label is our local name for the provider; a package has one.
            (type_name,) = provider.type_names("provider")
        schema = provider.schema(block.kind, type_name)
        if schema is None:
            other: Kind = "data" if block.kind == "resource" else "resource"
            if type_name in provider.type_names(other):
                hint = f" (it exists as a {other} type)"
            else:
                hint = _similar(type_name, provider.type_names(block.kind))
            checker.add((), f"unknown {block.kind} type {type_name} in {provider.label}{hint}")
            continue
        checker.body(block.body, schema, (), META[block.kind])
        report.checked.append(block.address)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    directory = Path(args[0]) if args else DEFAULT_DIR
    try:
        report = check_directory(directory)
    except (SchemaUnavailable, SchemaParseError) as exc:
        print(f"terraform_schema: cannot check {_display(directory)}: {exc}", file=sys.stderr)
        return 2
    for label in sorted(report.providers.values()):
        print(f"terraform_schema: schema {label}")
    print(f"terraform_schema: checked {len(report.checked)} blocks in {_display(directory)}")
    for finding in report.findings:
        print(f"terraform_schema: FAIL: {finding}", file=sys.stderr)
    if report.findings:
        print(f"terraform_schema: {len(report.findings)} problem(s)", file=sys.stderr)
        return 1
    print("terraform_schema: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
