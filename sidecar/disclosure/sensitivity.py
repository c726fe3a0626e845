"""Is this resource sensitive in itself: a security label, a code in a sensitive value set, or a Part 2 program?

The value sets, labels and Part 2 organizations are JSON files (`sidecar/disclosure/data`, replaceable by a payer
with `sensitive_data_dir`); each category file (sud, hiv, mental-health, reproductive-health...) lists codes and
code prefixes per code system, and words matched in displays and texts for data coded in other systems. Code
systems are compared by meaning (`code_systems.py`): `urn:oid:2.16.840.1.113883.6.90` is ICD-10-CM.

Speed matters here: every NDJSON line of an export passes through. So sensitive codes and words are looked for
with a regular-expression pass over the resource's JSON bytes (in C), and only a hit is confirmed by walking the
resource, which checks the code system and names the element for the audit log.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import orjson

from sidecar.config import ConfigError
from sidecar.disclosure.code_systems import canonical_system

PACKAGED_DATA = Path(__file__).parent / "data"
_NOT_CATEGORIES = frozenset({"security-labels", "part2-organizations"})

# A JSON string's content, written "unrolled" (runs of plain characters between escapes): Python's engine is
# several times faster on it than on an alternation per character.
_STRING = rb'"([^"\\]*(?:\\.[^"\\]*)*)"'
_REFERENCES = re.compile(rb'"reference"\s*:\s*' + _STRING)
_DISPLAYS = re.compile(rb'"display"\s*:\s*' + _STRING)
_TEXT_VALUES = re.compile(rb'"text"\s*:\s*' + _STRING)
_UNSEEN = object()
_TEXT_MEMORY = 50_000


class Reason(NamedTuple):
    """Why a resource was withheld or changed: the rule, and where it looked (element, code) for the audit log."""
    rule: str
    element: str | None = None
    code: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in (("rule", self.rule), ("element", self.element), ("code", self.code)) if v}


class SensitiveDataError(ConfigError):
    """A value-set file is missing or malformed."""


def references_in(raw: bytes) -> list[bytes]:
    """Every `reference` value in a resource's JSON."""
    return _REFERENCES.findall(raw)


def _spellings(code: str) -> set[str]:
    """How a code may be written: as listed, in lower case, and for ICD-style codes with the dot (`F10.20`)."""
    forms = {code}
    if len(code) > 3 and code[0].isalpha():
        forms.add(f"{code[:3]}.{code[3:]}")
    return forms | {form.lower() for form in forms}


def trie_pattern(strings: Iterable[str]) -> bytes:
    """One regular expression matching any of `strings`, factored as a trie: Python's engine tries alternatives
    one by one, so a flat alternation of hundreds of codes is several times slower than branching per character."""
    trie: dict = {}
    for string in strings:
        node = trie
        for ch in string:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> bytes:
        branches = [re.escape(ch.encode()) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        if "" in node:
            body = (body if len(branches) == 1 and len(branches[0]) == 1 else b"(?:" + body + b")") + b"?"
        return body

    return build(trie)


def _normal(code: str | bytes) -> bytes:
    data = code.encode() if isinstance(code, str) else code
    return data.replace(b".", b"").upper()


def _codings(node: object, path: str) -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        if "code" in node and isinstance(node.get("code"), str):
            yield path, node
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                yield from _codings(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _codings(value, f"{path}[{i}]")


def _texts(node: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else key
            if key in ("display", "text") and isinstance(value, str):
                yield where, value
            elif isinstance(value, (dict, list)):
                yield from _texts(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _texts(value, f"{path}[{i}]")


class SensitiveData:
    def __init__(self, entries: Iterable[tuple[str, frozenset[str], list[str], list[str]]], words: dict[str, str],
                 labels: set[tuple[str, str]], part2_identifiers: set[tuple[str, str]]) -> None:
        self._exact: dict[bytes, list[tuple[frozenset[str], str]]] = {}
        self._prefixes: dict[int, dict[bytes, list[tuple[frozenset[str], str]]]] = {}
        for category, systems, codes, prefixes in entries:
            for code in codes:
                self._exact.setdefault(_normal(code), []).append((systems, category))
            for prefix in prefixes:
                normal = _normal(prefix)
                self._prefixes.setdefault(len(normal), {}).setdefault(normal, []).append((systems, category))
        self._prefix_lengths = sorted(self._prefixes)
        spellings = {form + '"' for code in self._exact for form in _spellings(code.decode())}
        spellings |= {form for by_length in self._prefixes.values() for prefix in by_length
                      for form in _spellings(prefix.decode())}
        # One C-level pass over the JSON finds any `"code": "<sensitive>"`; only then is the resource walked.
        self._code_pattern = re.compile(rb'"code"\s*:\s*"' + trie_pattern(spellings)) if spellings else None
        self._text_verdicts: dict[bytes, str | None] = {}
        self._words = words
        self._word_pattern = re.compile(rb"\b(" + b"|".join(re.escape(w.encode()) for w in sorted(words)) + rb")\b") \
            if words else None
        self._labels = labels
        self._part2 = part2_identifiers

    @classmethod
    def load(cls, directory: Path | None = None, categories: Iterable[str] | None = None) -> "SensitiveData":
        folder = directory or PACKAGED_DATA
        wanted = set(categories) if categories is not None else None
        entries, words = [], {}
        found = set()
        for path in sorted(folder.glob("*.json")):
            if path.stem in _NOT_CATEGORIES or (wanted is not None and path.stem not in wanted):
                continue
            document = _read(path)
            category = document.get("category", path.stem)
            found.add(path.stem)
            for include in document.get("include", []):
                systems = frozenset(map(canonical_system, include["systems"]))
                entries.append((category, systems, include.get("codes", []), include.get("prefixes", [])))
            for word in document.get("text", []):
                words[word.lower()] = category
        if wanted is not None and wanted - found:
            raise SensitiveDataError(f"no value-set file for {sorted(wanted - found)} in {folder}")
        labels = {(canonical_system(system), code) for entry in _read(folder / "security-labels.json").get("labels", [])
                  for system in entry["systems"] for code in entry["codes"]}
        part2 = {(i.get("system", ""), i["value"])
                 for i in _read(folder / "part2-organizations.json").get("identifiers", [])}
        return cls(entries, words, labels, part2)

    def label(self, resource: dict) -> Reason | None:
        meta = resource.get("meta")
        for i, coding in enumerate(meta.get("security") or () if isinstance(meta, dict) else ()):
            if not isinstance(coding, dict):
                continue
            if (canonical_system(coding.get("system")), coding.get("code")) in self._labels:
                return Reason("security-label", f"meta.security[{i}]", f"{coding.get('system')}|{coding.get('code')}")
        return None

    def _matches(self, system: object, code: str) -> str | None:
        normal = _normal(code)
        hits = list(self._exact.get(normal, ()))
        for n in self._prefix_lengths:
            hits += self._prefixes[n].get(normal[:n], ())
        system = canonical_system(system)
        return next((category for systems, category in hits if system in systems), None)

    def coded(self, resource: dict, raw: bytes) -> Reason | None:
        """A code from a sensitive value set anywhere in the resource (contained resources too), or a sensitive
        word in a display or text."""
        if self._code_pattern is not None and self._code_pattern.search(raw):
            for path, coding in _codings(resource, ""):
                category = self._matches(coding.get("system"), coding["code"])
                if category is not None:
                    return Reason(f"sensitive-code:{category}", path, f"{coding.get('system')}|{coding['code']}")
        if self._word_pattern is not None and self._any_sensitive_text(raw):
            for path, text in _texts(resource, ""):
                word = self._sensitive_text(text.encode())
                if word is not None:
                    return Reason(f"sensitive-text:{self._words[word]}", path, word)
        return None

    def _any_sensitive_text(self, raw: bytes) -> bool:
        verdicts = self._text_verdicts
        values = _DISPLAYS.findall(raw)
        if b'"text"' in raw:
            values += _TEXT_VALUES.findall(raw)
        for value in values:
            verdict = verdicts.get(value, _UNSEEN)
            if verdict is _UNSEEN:
                verdict = self._sensitive_text(value)
            if verdict is not None:
                return True
        return False

    def _sensitive_text(self, value: bytes) -> str | None:
        """The sensitive word in a display or text, if any; remembered, since displays repeat across resources."""
        try:
            return self._text_verdicts[value]
        except KeyError:
            match = self._word_pattern.search(value.lower()) if self._word_pattern is not None else None
            verdict = match[1].decode() if match else None
            if len(self._text_verdicts) >= _TEXT_MEMORY:
                self._text_verdicts.clear()
            self._text_verdicts[value] = verdict
            return verdict

    def part2_program(self, resource: dict) -> Reason | None:
        if resource.get("resourceType") != "Organization" or not self._part2:
            return None
        for i, identifier in enumerate(resource.get("identifier") or ()):
            if isinstance(identifier, dict) and (identifier.get("system", ""), identifier.get("value")) in self._part2:
                return Reason("part2-program", f"identifier[{i}]", f"{identifier.get('system')}|{identifier['value']}")
        return None

    def direct(self, resource: dict, raw: bytes | None = None) -> Reason | None:
        """Sensitive by itself (not through what it references)."""
        raw = orjson.dumps(resource) if raw is None else raw
        return self.label(resource) or self.part2_program(resource) or self.coded(resource, raw)


def _read(path: Path) -> dict:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SensitiveDataError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise SensitiveDataError(f"{path} must hold a JSON object")
    return document
