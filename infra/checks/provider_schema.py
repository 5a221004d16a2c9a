"""Terraform provider schemas (argument and block names), read from cdktf's prebuilt packages.

`terraform validate` needs the provider binaries, which cannot be downloaded where our
checks run: only package registries are reachable. The npm packages @cdktf/provider-* are
generated from the provider's own schema, so their JavaScript names every resource and
data source type (`X.tfResourceType = "google_pubsub_topic"`), every argument and nested
block by its Terraform name (the keys of `synthesizeHclAttributes()` and of the
`...ToHclTerraform(struct)` function of each nested block, with `isBlock` telling the two
apart), and their .d.ts declarations mark which of them are required (no `?`).

The pinned package is fetched once with `npm pack` into a git-ignored cache; only the
generated code is kept, without its inline source maps (they are most of the bytes).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Kind = Literal["resource", "data", "provider"]

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ENV = "PROVIDER_SCHEMA_CACHE"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "provider-schema"

# The cache layout or the index below changed: extracted packages are indexed again.
INDEX_FORMAT = 1
NPM_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Package:
    """A cdktf prebuilt provider package, pinned to one version and its tarball digest."""

    source: str  # provider source address as written in required_providers
    npm_name: str
    version: str
    # npm's dist.integrity of the tarball: a registry (or mirror) serving other bytes for
    # the same version must not silently change what we validate against.
    integrity: str

    @property
    def cache_name(self) -> str:
        return f"{self.npm_name.lstrip('@').replace('/', '-')}-{self.version}"


# 16.12.1 is the newest @cdktf/provider-google and was generated from google 6.50.0, the
# last 6.x the generator saw, so it matches versions.tf's "~> 6.0" (a 7.x schema would
# already miss arguments 7.0 removed and accept ones it added). 11.0.1 is built from
# archive 2.7.1, inside "~> 2.4". The check compares each package's provider version
# with the constraint in versions.tf, so a provider bump there fails until this is re-pinned.
PACKAGES: Mapping[str, Package] = {
    p.source: p
    for p in (
        Package(
            source="hashicorp/google",
            npm_name="@cdktf/provider-google",
            version="16.12.1",
            integrity="sha512-KqNA/5RiFT07r0PSZ6/07cJ2zESUgbj1JchVj21iBFBZVUbD+578xA/k8eq/r0cbyEgLmg9eYWeVslaYah4DCQ==",
        ),
        Package(
            source="hashicorp/archive",
            npm_name="@cdktf/provider-archive",
            version="11.0.1",
            integrity="sha512-2Plwhj1hVUOYmQrxNbBvy2nrw/gyHZKnQFauPCwjhQX+MpRImF7cceKgX8zZgBPvB5YEP75MIFPbr4sjxDWeHw==",
        ),
    )
}


class SchemaUnavailable(RuntimeError):
    """The package could not be obtained (no npm, registry unreachable, wrong digest)."""


class SchemaParseError(RuntimeError):
    """The generated code does not have the shape this parser reads; never guess around it."""


def normalize_source(source: str) -> str:
    """`google`, `hashicorp/google` and `registry.terraform.io/hashicorp/google` are one source."""
    parts = source.strip().lower().split("/")
    if len(parts) == 3 and parts[0] == "registry.terraform.io":
        parts = parts[1:]
    if len(parts) == 1:
        parts = ["hashicorp", *parts]
    return "/".join(parts)


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else DEFAULT_CACHE


# --- fetching ----------------------------------------------------------------------------

_MEMBER = re.compile(r"package/lib/([a-z0-9-]+)/((?:[a-z0-9-]+/)*[a-z0-9-]+\.(?:js|d\.ts))")
_SOURCE_MAP = "\n//# sourceMappingURL="
_MAIN_CLASS = re.compile(
    r"^class ([\w$]+) extends cdktf\.(TerraformResource|TerraformDataSource|TerraformProvider) \{",
    re.M,
)
_KIND_OF_BASE: Mapping[str, Kind] = {
    "TerraformResource": "resource",
    "TerraformDataSource": "data",
    "TerraformProvider": "provider",
}


def ensure_package(package: Package, root: Path | None = None) -> Path:
    """The extracted package under the cache, downloading it on first use."""
    root = cache_dir() if root is None else root
    target = root / package.cache_name
    if (target / "index.json").is_file():
        if _read_index(target).get("format") != INDEX_FORMAT:
            _write_index(target, package)
        return target

    npm = shutil.which("npm")
    if npm is None:
        raise SchemaUnavailable(
            f"npm is not on PATH; it is needed once to download {package.npm_name}"
            f"@{package.version} (the provider schema). Install Node.js with npm "
            "(Debian/Ubuntu: apt-get install npm) and run the check again."
        )
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        work = Path(tmp)
        spec = f"{package.npm_name}@{package.version}"
        try:
            result = subprocess.run(  # noqa: S603 - argv built here from pinned names, no shell
                [npm, "pack", spec, "--ignore-scripts", "--pack-destination", str(work)],
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SchemaUnavailable(
                f"`npm pack {spec}` did not finish in {NPM_TIMEOUT_SECONDS}s"
            ) from exc
        tarballs = sorted(work.glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            detail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
            raise SchemaUnavailable(
                f"`npm pack {spec}` failed (exit {result.returncode}). It needs the npm "
                f"registry (registry.npmjs.org, or the one set in .npmrc); npm said:\n{detail}"
            )
        digest = hashlib.sha512(tarballs[0].read_bytes()).digest()
        integrity = "sha512-" + base64.b64encode(digest).decode()
        if integrity != package.integrity:
            raise SchemaUnavailable(
                f"{spec}: tarball digest {integrity} differs from the pinned {package.integrity}"
            )
        staging = work / "extracted"
        _extract(tarballs[0], staging, package)
        _write_index(staging, package)
        try:
            staging.rename(target)
        except OSError:
            # Another run extracted the same immutable version meanwhile; keep theirs.
            if not (target / "index.json").is_file():
                raise
    return target


def _extract(tarball: Path, dest: Path, package: Package) -> None:
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            if member.name == "package/package.json":
                out = dest / "package.json"
            elif (m := _MEMBER.fullmatch(member.name)) is not None:
                out = dest / "lib" / m.group(1) / m.group(2)
            else:
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            text = handle.read().decode("utf-8")
            if out.suffix == ".js":
                text = text.split(_SOURCE_MAP, 1)[0] + "\n"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
    if not (dest / "package.json").is_file():
        raise SchemaUnavailable(f"{tarball.name} is not an npm package (no package.json)")
    meta = json.loads((dest / "package.json").read_text(encoding="utf-8"))
    if (meta.get("name"), meta.get("version")) != (package.npm_name, package.version):
        raise SchemaUnavailable(
            f"{tarball.name} holds {meta.get('name')}@{meta.get('version')}, "
            f"not {package.npm_name}@{package.version}"
        )


def _write_index(root: Path, package: Package) -> None:
    """type name -> directory under lib/, per kind, plus the provider the package was built from."""
    meta = json.loads((root / "package.json").read_text(encoding="utf-8"))
    provider = meta.get("cdktf", {}).get("provider", {})
    types: dict[str, dict[str, str]] = {"resource": {}, "data": {}, "provider": {}}
    for path in sorted((root / "lib").glob("*/index.js")):
        text = path.read_text(encoding="utf-8")
        classes = _MAIN_CLASS.findall(text)
        if not classes:
            continue  # lib/<dir>/index-structs and the like: no Terraform type of their own
        if len(classes) != 1:
            raise SchemaParseError(f"{path}: {len(classes)} Terraform classes, expected one")
        name, base = classes[0]
        found = re.findall(rf'^{re.escape(name)}\.tfResourceType = "([^"]+)";', text, re.M)
        if len(found) != 1:
            raise SchemaParseError(f"{path}: no single tfResourceType for class {name}")
        kind = _KIND_OF_BASE[base]
        if found[0] in types[kind]:
            raise SchemaParseError(f"{path}: {kind} {found[0]} also in {types[kind][found[0]]}")
        types[kind][found[0]] = path.parent.name
    if not types["resource"] or not types["provider"]:
        raise SchemaParseError(f"{root}: no resource or provider classes found")
    index = {
        "format": INDEX_FORMAT,
        "package": f"{package.npm_name}@{package.version}",
        "provider_name": provider.get("name", ""),
        "provider_version": provider.get("version", ""),
        "types": types,
    }
    (root / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True), encoding="utf-8")


def _read_index(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "index.json").read_text(encoding="utf-8"))
    return data


# --- reading generated code --------------------------------------------------------------

# Comments and string literals. The generated files have no regex or template literals,
# which this does not lex; _TypeReader's cross-checks (HCL against plain synthesis, code
# against declarations) would fail on a misread rather than return a wrong schema.
_LEXEME = re.compile(r"""//[^\n]*|/\*.*?\*/|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'""", re.S)
_BRACKET = re.compile(r"[(){}\[\],]")
_PAIRS = {")": "(", "}": "{", "]": "["}
_KEY = re.compile(r'\s*(?:"([^"\\]+)"|([A-Za-z_$][\w$]*))\s*:', re.S)


def _blank(match: re.Match[str]) -> str:
    text = match.group()
    if text[0] in "\"'":
        return text[0] + " " * (len(text) - 2) + text[0]
    return re.sub(r"[^\n]", " ", text)


@dataclass(frozen=True)
class _Entry:
    key: str
    start: int  # value span in the source text
    end: int


class _Source:
    """A generated file, and a copy of equal length with comments and string contents blanked.

    Brackets and commas are then structure wherever they appear in the copy, and any
    position in it is the same position in the original text.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        self.masked = _LEXEME.sub(_blank, self.text)

    def fail(self, pos: int, what: str) -> SchemaParseError:
        line = self.text.count("\n", 0, pos) + 1
        return SchemaParseError(f"{self.path}:{line}: {what}")

    def _top_level(self, open_pos: int) -> Iterator[tuple[int, str]]:
        """Commas and the closing bracket directly inside the bracket at open_pos."""
        stack = [self.masked[open_pos]]
        for m in _BRACKET.finditer(self.masked, open_pos + 1):
            char = m.group()
            if char == ",":
                if len(stack) == 1:
                    yield m.start(), char
            elif char in "({[":
                stack.append(char)
            else:
                if stack.pop() != _PAIRS[char]:
                    raise self.fail(m.start(), "unbalanced brackets")
                if not stack:
                    yield m.start(), char
                    return
        raise self.fail(open_pos, "unterminated bracket")

    def closing(self, open_pos: int) -> int:
        *_, (pos, _) = self._top_level(open_pos)  # the last one is the closing bracket
        return pos

    def object_entries(self, open_pos: int) -> list[_Entry]:
        """The `key: value` entries of the object literal whose `{` is at open_pos."""
        if self.masked[open_pos] != "{":
            raise self.fail(open_pos, "expected an object literal")
        entries: list[_Entry] = []
        start = open_pos + 1
        for pos, _ in self._top_level(open_pos):
            if self.masked[start:pos].strip():
                key = _KEY.match(self.text, start, pos)
                if key is None:
                    raise self.fail(start, f"not a `key: value` entry: {self.text[start:pos]!r}")
                entries.append(_Entry(key.group(1) or key.group(2), key.end(), pos))
            start = pos + 1
        return entries

    def value(self, entry: _Entry) -> str:
        return self.text[entry.start : entry.end].strip()

    def value_open(self, entry: _Entry) -> int:
        """Position of the `{` that starts entry's value."""
        value = self.masked[entry.start : entry.end]
        return entry.start + len(value) - len(value.lstrip())

    def find_one(self, pattern: str, start: int = 0, end: int | None = None) -> re.Match[str]:
        """The single match of pattern (on the masked text) between start and end."""
        found = list(
            re.compile(pattern, re.M).finditer(self.masked, start, end or len(self.masked))
        )
        if len(found) != 1:
            raise self.fail(start, f"{len(found)} matches of {pattern!r}, expected one")
        return found[0]


@dataclass(frozen=True)
class BlockSchema:
    """What may be written inside one block: arguments, nested blocks, and which are required."""

    arguments: frozenset[str]
    blocks: Mapping[str, BlockSchema]
    required: frozenset[str]

    @property
    def names(self) -> frozenset[str]:
        return self.arguments | frozenset(self.blocks)


@dataclass(frozen=True)
class _Field:
    name: str
    camel: str  # property name in the generated TypeScript
    nested: str | None  # struct function prefix of a nested block, None for an argument


_CAMEL = re.compile(r"(?:\bthis\._|\bstruct\.)([\w$]+)")
_NESTED = re.compile(r"(?<![\w$.])(?:([\w$]+)\.)?([\w$]+)ToHclTerraform\b")
_CONFIG_ASSIGNMENT = re.compile(r"\bthis\._([\w$]+)(?:\.internalValue)? = config\.([\w$]+);")
_STRUCT_FN = re.compile(r"^function ([\w$]+)\(struct\) \{", re.M)
_INTERFACE = re.compile(r"^export interface ([\w$]+)(?: extends [\w$.]+)? \{", re.M)
_MEMBER_DECL = re.compile(r"\breadonly ([\w$]+)(\?)?:")
_CONSTRUCTOR_DECL = re.compile(
    r"\bconstructor\(scope: Construct, id: string, config\??: ([\w$]+)\);"
)
_STRUCT_DECL = re.compile(
    r"^export declare function ([\w$]+)ToTerraform\(struct\?: ([^)]*)\)", re.M
)


class _TypeReader:
    """Reads one lib/<dir>/ of a package: the main class and the nested blocks it reaches."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.main = _Source(directory / "index.js")
        self.functions: dict[str, tuple[_Source, int]] = {}
        self.required_members: dict[str, frozenset[str]] = {}  # interface -> non-optional
        self.members: dict[str, frozenset[str]] = {}  # interface -> all members
        self.struct_interfaces: dict[str, str] = {}  # struct function prefix -> interface
        for path in sorted(directory.rglob("*.js")):
            source = self.main if path == self.main.path else _Source(path)
            for m in _STRUCT_FN.finditer(source.masked):
                self.functions[m.group(1)] = (source, m.end() - 1)
        for path in sorted(directory.rglob("*.d.ts")):
            self._read_declarations(_Source(path))
        self._blocks: dict[str, BlockSchema] = {}
        self._reading: set[str] = set()

    def _read_declarations(self, source: _Source) -> None:
        for m in _INTERFACE.finditer(source.masked):
            open_pos = m.end() - 1
            close = source.closing(open_pos)
            body = self._depth_one(source, open_pos, close)
            members = _MEMBER_DECL.findall(body)
            self.members[m.group(1)] = frozenset(name for name, _ in members)
            self.required_members[m.group(1)] = frozenset(n for n, opt in members if not opt)
        for m in _STRUCT_DECL.finditer(source.masked):
            union = [t.strip() for t in source.text[m.start(2) : m.end(2)].split("|")]
            plain = [t for t in union if not t.endswith("OutputReference") and "." not in t]
            if len(plain) != 1:
                raise source.fail(m.start(), f"cannot tell the interface of {m.group(1)}")
            self.struct_interfaces[m.group(1)] = plain[0]
        for m in _CONSTRUCTOR_DECL.finditer(source.masked):
            if "" in self.struct_interfaces:
                raise source.fail(m.start(), "a second Terraform class constructor")
            self.struct_interfaces[""] = m.group(1)

    @staticmethod
    def _depth_one(source: _Source, open_pos: int, close: int) -> str:
        """The body between the brackets with everything inside nested brackets blanked."""
        out: list[str] = []
        depth = 0
        start = open_pos + 1
        for m in re.compile(r"[(){}\[\]]").finditer(source.masked, open_pos + 1, close):
            if m.group() in "({[":
                if depth == 0:
                    out.append(source.masked[start : m.start()])
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    start = m.end()
        out.append(source.masked[start:close])
        return " ".join(out)

    def _fields(
        self, source: _Source, hcl_open: int, plain_open: int, config: Mapping[str, str]
    ) -> list[_Field]:
        """Fields of one block from its HCL object literal, cross-checked with the plain one.

        config maps the main class's private fields to its config properties; they differ
        where cdktf renamed a property that clashes with a construct member (`build` is
        stored in `_build` but passed as `buildAttribute`).
        """
        fields: list[_Field] = []
        for entry in source.object_entries(hcl_open):
            props = {e.key: e for e in source.object_entries(source.value_open(entry))}
            if "value" not in props or "isBlock" not in props:
                raise source.fail(entry.start, f"{entry.key}: no value/isBlock")
            expression = source.value(props["value"])
            camels = set(_CAMEL.findall(expression))
            if len(camels) != 1:
                raise source.fail(entry.start, f"{entry.key}: cannot tell its property")
            is_block = source.value(props["isBlock"])
            if is_block not in {"true", "false"}:
                raise source.fail(entry.start, f"{entry.key}: isBlock is {is_block!r}")
            nested = None
            if is_block == "true":
                refs = {m.group(2) for m in _NESTED.finditer(expression) if m.group(1) != "cdktf"}
                if len(refs) != 1:
                    raise source.fail(entry.start, f"{entry.key}: block without one struct")
                nested = refs.pop()
            camel = camels.pop()
            fields.append(_Field(entry.key, config.get(camel, camel), nested))
        plain = [e.key for e in source.object_entries(plain_open)]
        if sorted(plain) != sorted(f.name for f in fields):
            raise source.fail(hcl_open, f"HCL and plain synthesis differ: {plain}")
        return fields

    def _schema(self, fields: list[_Field], interface: str, where: str) -> BlockSchema:
        if interface not in self.members:
            raise SchemaParseError(f"{self.directory}: no declaration of {interface} ({where})")
        camels = {f.camel for f in fields}
        if camels != self.members[interface]:
            raise SchemaParseError(
                f"{self.directory}: {interface} declares {sorted(self.members[interface])}, "
                f"the code synthesizes {sorted(camels)}"
            )
        required = self.required_members[interface]
        return BlockSchema(
            arguments=frozenset(f.name for f in fields if f.nested is None),
            blocks={f.name: self._block(f.nested) for f in fields if f.nested is not None},
            required=frozenset(f.name for f in fields if f.camel in required),
        )

    def _block(self, prefix: str) -> BlockSchema:
        if prefix in self._blocks:
            return self._blocks[prefix]
        if prefix in self._reading:
            # Provider schemas are trees; a cycle means the names were misread.
            raise SchemaParseError(f"{self.directory}: {prefix} contains itself")
        self._reading.add(prefix)
        hcl = self.functions.get(f"{prefix}ToHclTerraform")
        plain = self.functions.get(f"{prefix}ToTerraform")
        if hcl is None or plain is None or hcl[0] is not plain[0]:
            raise SchemaParseError(f"{self.directory}: no {prefix}ToHclTerraform/ToTerraform pair")
        source = hcl[0]
        hcl_open = source.find_one(r"\bconst attrs = \{", hcl[1], source.closing(hcl[1])).end() - 1
        plain_open = source.find_one(r"\breturn \{", plain[1], source.closing(plain[1])).end() - 1
        interface = self.struct_interfaces.get(prefix)
        if interface is None:
            raise SchemaParseError(f"{self.directory}: no declaration of {prefix}ToTerraform")
        schema = self._schema(self._fields(source, hcl_open, plain_open, {}), interface, prefix)
        self._blocks[prefix] = schema
        return schema

    def read(self) -> tuple[str, Kind, BlockSchema]:
        """Terraform type name, kind and schema of the main class."""
        source = self.main
        cls = source.find_one(_MAIN_CLASS.pattern)
        name = source.text[cls.start(1) : cls.end(1)]
        kind = _KIND_OF_BASE[cls.group(2)]
        body_end = source.closing(cls.end() - 1)
        hcl = source.find_one(r"\bsynthesizeHclAttributes\(\) \{", cls.end(), body_end).end() - 1
        plain = source.find_one(r"\bsynthesizeAttributes\(\) \{", cls.end(), body_end).end() - 1
        hcl_open = source.find_one(r"\bconst attrs = \{", hcl, source.closing(hcl)).end() - 1
        plain_open = source.find_one(r"\breturn \{", plain, source.closing(plain)).end() - 1
        type_name = re.search(
            rf'^{re.escape(name)}\.tfResourceType = "([^"]+)";', source.text, re.M
        )
        if type_name is None:
            raise source.fail(cls.start(), f"{name}: no tfResourceType")
        interface = self.struct_interfaces.get("")
        if interface is None:
            raise SchemaParseError(f"{self.directory}: no constructor config declaration")
        config = {
            m.group(1): m.group(2)
            for m in _CONFIG_ASSIGNMENT.finditer(source.masked, cls.end(), body_end)
        }
        schema = self._schema(self._fields(source, hcl_open, plain_open, config), interface, name)
        return type_name.group(1), kind, schema


@dataclass
class ProviderSchema:
    """One extracted package: which types exist, and each type's schema on demand."""

    package: Package
    root: Path
    index: dict[str, Any]
    _schemas: dict[tuple[Kind, str], BlockSchema] = field(default_factory=dict)

    @classmethod
    def load(cls, package: Package, root: Path | None = None) -> ProviderSchema:
        directory = ensure_package(package, root)
        return cls(package, directory, _read_index(directory))

    @property
    def provider_version(self) -> str:
        return str(self.index["provider_version"])

    @property
    def label(self) -> str:
        return (
            f"{self.package.source} {self.provider_version} "
            f"({self.package.npm_name}@{self.package.version})"
        )

    def type_names(self, kind: Kind) -> frozenset[str]:
        return frozenset(self.index["types"][kind])

    def schema(self, kind: Kind, type_name: str) -> BlockSchema | None:
        """None when the package has no such type."""
        key = (kind, type_name)
        if key not in self._schemas:
            directory = self.index["types"][kind].get(type_name)
            if directory is None:
                return None
            read_name, read_kind, schema = _TypeReader(self.root / "lib" / directory).read()
            if (read_kind, read_name) != key:
                raise SchemaParseError(f"{directory}: holds {read_kind} {read_name}, not {key}")
            self._schemas[key] = schema
        return self._schemas[key]


class SchemaStore:
    """Provider schemas by source address, each package loaded (and fetched) once."""

    def __init__(
        self, root: Path | None = None, packages: Mapping[str, Package] = PACKAGES
    ) -> None:
        self.root = root
        self.packages = packages
        self._loaded: dict[str, ProviderSchema] = {}

    def package(self, source: str) -> Package | None:
        return self.packages.get(normalize_source(source))

    def for_source(self, source: str) -> ProviderSchema:
        package = self.package(source)
        if package is None:
            raise KeyError(source)
        if package.source not in self._loaded:
            self._loaded[package.source] = ProviderSchema.load(package, self.root)
        return self._loaded[package.source]
