"""What every stored JSON format shares, in asv's style: a schema id, the version this release
writes, and a chain of small migrations that bring an older file up to it on read.

Each format is one `Format`, defined once, by its owner (docs/layout.md names them; docs/formats.md
lists them). A file's ``"version"`` is a whole number; reading it runs ``migrations[v]`` (version v
to v + 1), then ``migrations[v + 1]`` and so on, so the rest of the code only ever sees the current
version. A file newer than this release is refused in one line that says to upgrade; one older than
the oldest migration in one line that says which release reads it.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causvid_perf.files import write_json_atomic

Migration = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Format:
    schema: str  # "causvid-perf/<kind>", the file's "schema" field
    version: int  # the version this release writes
    error: type[Exception]  # what a file this format cannot read raises (a one-line CausvidPerfError)
    kind: str = ""  # how messages name it ("session"); the schema's last part by default
    migrations: Mapping[int, Migration] = field(default_factory=dict)  # v -> the step from v to v + 1
    fix: str = "point at a file the suite wrote"  # what to do with a file of another kind
    old_fix: str = "use the causvid-perf release that wrote it"  # ... with one older than it reads

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", self.schema.rsplit("/", 1)[-1])
        steps = sorted(self.migrations)
        if steps != list(range(self.version - len(steps), self.version)) or (steps and steps[0] < 1):
            raise ValueError(f"{self.schema}: migrations {steps} are not one step each up to version {self.version}")

    @property
    def oldest(self) -> int:
        """The oldest version this release reads."""
        return self.version - len(self.migrations)

    @property
    def readable(self) -> str:
        """'version 1' or 'versions 1 to 4'."""
        return f"version {self.version}" if self.oldest == self.version else f"versions {self.oldest} to {self.version}"

    def header(self) -> dict[str, Any]:
        """{"schema", "version"} as this release writes them."""
        return {"schema": self.schema, "version": self.version}

    def stamp(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A document of this format: "schema" and "version" first, then `body`."""
        return {**self.header(), **{k: v for k, v in body.items() if k not in _HEADER}}

    def is_one(self, data: Any) -> bool:
        return isinstance(data, Mapping) and data.get("schema") == self.schema

    def upgrade(self, data: Any, where: str) -> dict[str, Any]:
        """`data` read from `where`, brought to the current version; `error` (one line) when it is
        not of this format or of a version this release cannot read."""
        if not self.is_one(data):
            raise self.error(f"{where} is not a causvid-perf {self.kind} file; {self.fix}")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            shown = json.dumps(version) if "version" in data else "missing"
            raise self.error(
                f"{where}: {self.kind} version {shown}, this causvid-perf reads {self.readable}; {self.fix}"
            )
        if version > self.version:
            raise self.error(
                f"{where}: {self.kind} version {version} was written by a newer causvid-perf (this one reads "
                f"{self.readable}); upgrade causvid-perf to read it"
            )
        if version < self.oldest:
            raise self.error(
                f"{where}: {self.kind} version {version}, this causvid-perf reads {self.readable}; {self.old_fix}"
            )
        document = dict(data)
        for step in range(version, self.version):
            document = self.migrations[step](document)
            document["version"] = step + 1
        return document

    def read(self, path: str | os.PathLike) -> dict[str, Any]:
        """The file at `path`, read and upgraded; `error` (one line) when it cannot be."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise self.error(f"no such {self.kind} file {path}; {self.fix}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self.error(f"{path} is not valid JSON ({exc}); {self.fix}") from None
        except OSError as exc:
            raise self.error(
                f"cannot read {path} ({exc.strerror or exc}); check the path and its permissions"
            ) from None
        return self.upgrade(data, str(path))

    def write(self, path: str | os.PathLike, document: Mapping[str, Any]) -> Path:
        """Write `document` (made by `stamp`) atomically, as strict JSON; a document of another
        format or version is a bug, refused before anything is written."""
        if document.get("schema") != self.schema or document.get("version") != self.version:
            raise ValueError(f"not a {self.schema} version {self.version} document: {document.get('schema')!r}")
        return write_json_atomic(path, document)


_HEADER = ("schema", "version")


def schema_problem(schema_file: Path, data: Any) -> str | None:
    """Where `data` first breaks the JSON schema in `schema_file` ('message at $.path', the most
    telling error); None when it meets it."""
    jsonschema = importlib.import_module("jsonschema")  # on first use: `causvid-perf --help` reads formats, not schemas
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    return None if error is None else f"{error.message} at {error.json_path}"
