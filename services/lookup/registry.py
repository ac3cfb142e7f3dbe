"""The mock national registry: who exists, under which name, in which state, with which photo.

File format (UTF-8 JSON)::

    {"version": 1, "people": [{"id_number": "...", "name": "张三",
                               "status": "valid" | "cancelled" | "deceased",
                               "photo_embedding": [128 floats] | null}]}

Entries are validated into frozen :class:`Person` objects keyed by the upper-case ID
number. The :class:`Registry` is shared by the request handlers and the admin endpoints
of one process, so reads and updates go through a lock.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, cast

from services import privacy

FORMAT_VERSION: Final = 1
EMBEDDING_DIM: Final = 128
NAME_MAX_CHARS: Final = 64

Status: TypeAlias = Literal["valid", "cancelled", "deceased"]
STATUSES: Final[tuple[Status, ...]] = ("valid", "cancelled", "deceased")

# [0-9], not \d: \d also matches full-width and other Unicode digits.
ID_NUMBER_PATTERN: Final = r"^[0-9]{17}[0-9Xx]$"
_ID_NUMBER_RE: Final = re.compile(ID_NUMBER_PATTERN)


class RegistryError(ValueError):
    """The registry file or an entry is malformed."""


def normalize_id_number(id_number: str) -> str:
    """The key form of an ID number: surrounding whitespace removed, check character upper-case."""
    return id_number.strip().upper()


def is_valid_id_number(id_number: str) -> bool:
    return _ID_NUMBER_RE.fullmatch(id_number) is not None


def mask_id_number(id_number: str) -> str:
    """The only form of an ID number that may be logged (one rule for the whole product)."""
    return privacy.mask_id_number(id_number) or ""


def normalize_name(name: str) -> str:
    """Names compare with all whitespace removed (ASCII and full-width): "张 三" is "张三"."""
    return "".join(name.split())


@dataclass(frozen=True)
class Person:
    id_number: str
    name: str
    status: Status
    photo_embedding: tuple[float, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id_number": self.id_number,
            "name": self.name,
            "status": self.status,
            "photo_embedding": None if self.photo_embedding is None else list(self.photo_embedding),
        }


def parse_embedding(value: object, *, what: str = "photo_embedding") -> tuple[float, ...]:
    """Exactly EMBEDDING_DIM finite numbers (bools refused: JSON true is not a number)."""
    if not isinstance(value, list | tuple):
        raise RegistryError(f"{what} must be a list of {EMBEDDING_DIM} numbers or null")
    if len(value) != EMBEDDING_DIM:
        raise RegistryError(f"{what} must have {EMBEDDING_DIM} values, got {len(value)}")
    out: list[float] = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise RegistryError(f"{what}[{i}] is not a number")
        number = float(item)
        if not math.isfinite(number):
            raise RegistryError(f"{what}[{i}] is not finite")
        out.append(number)
    return tuple(out)


def parse_person(entry: object) -> Person:
    """One registry entry, validated. Error messages carry only the masked ID number."""
    if not isinstance(entry, Mapping):
        raise RegistryError("an entry must be a JSON object")
    unknown = set(entry) - {"id_number", "name", "status", "photo_embedding"}
    if unknown:
        raise RegistryError(f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
    raw_id = entry.get("id_number")
    if not isinstance(raw_id, str) or not is_valid_id_number(raw_id.strip()):
        raise RegistryError("id_number must be 17 digits followed by a digit or X")
    id_number = normalize_id_number(raw_id)
    where = mask_id_number(id_number)
    name = entry.get("name")
    if not isinstance(name, str) or not normalize_name(name) or len(name) > NAME_MAX_CHARS:
        raise RegistryError(f"{where}: name must be a non-blank string of 1-{NAME_MAX_CHARS} chars")
    status = entry.get("status")
    if status not in STATUSES:
        raise RegistryError(f"{where}: status must be one of {', '.join(STATUSES)}")
    raw_embedding = entry.get("photo_embedding")
    try:
        embedding = None if raw_embedding is None else parse_embedding(raw_embedding)
    except RegistryError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    return Person(id_number, name.strip(), cast(Status, status), embedding)


class Registry:
    """Thread-safe in-memory map from ID number to :class:`Person`."""

    def __init__(self, people: Iterable[Person] = ()) -> None:
        self._lock = threading.Lock()
        self._people: dict[str, Person] = {}
        for person in people:
            key = normalize_id_number(person.id_number)
            if key in self._people:
                raise RegistryError(f"duplicate id_number {mask_id_number(key)}")
            self._people[key] = person

    @classmethod
    def from_json(cls, data: object) -> Registry:
        if not isinstance(data, Mapping):
            raise RegistryError("the registry must be a JSON object")
        if data.get("version") != FORMAT_VERSION:
            raise RegistryError(f"unsupported registry version {data.get('version')!r}")
        people = data.get("people")
        if not isinstance(people, list):
            raise RegistryError('"people" must be a list')
        parsed: list[Person] = []
        for index, entry in enumerate(people):
            try:
                parsed.append(parse_person(entry))
            except RegistryError as exc:
                raise RegistryError(f"people[{index}]: {exc}") from None
        return cls(parsed)

    @classmethod
    def load(cls, path: str | Path) -> Registry:
        """Read and validate a registry file; every problem is a :class:`RegistryError`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RegistryError(f"cannot read registry {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise RegistryError(f"registry {path} is not UTF-8") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RegistryError(f"registry {path} is not valid JSON: {exc}") from None
        try:
            return cls.from_json(data)
        except RegistryError as exc:
            raise RegistryError(f"registry {path}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "people": [p.to_json() for p in self.snapshot()]}

    def save(self, path: str | Path) -> None:
        text = json.dumps(self.to_json(), ensure_ascii=False, indent=1)
        Path(path).write_text(text + "\n", encoding="utf-8")

    def get(self, id_number: str) -> Person | None:
        key = normalize_id_number(id_number)
        with self._lock:
            return self._people.get(key)

    def upsert(self, person: Person) -> bool:
        """Insert or replace; True when the person was new."""
        key = normalize_id_number(person.id_number)
        with self._lock:
            created = key not in self._people
            self._people[key] = person
        return created

    def remove(self, id_number: str) -> bool:
        """Delete; True when the person existed."""
        key = normalize_id_number(id_number)
        with self._lock:
            return self._people.pop(key, None) is not None

    def snapshot(self) -> list[Person]:
        with self._lock:
            return list(self._people.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._people)

    def __contains__(self, id_number: object) -> bool:
        return isinstance(id_number, str) and self.get(id_number) is not None

    def __iter__(self) -> Iterator[Person]:
        return iter(self.snapshot())
