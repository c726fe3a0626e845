"""One JVM running the validator jar, asked resource by resource over its line protocol (see validator/'s Main).

Starting the JVM and loading the packages takes seconds; each resource after that takes milliseconds, so a caller
starts one `Validator` and keeps it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

import orjson

VALIDATOR_DIR = Path(__file__).resolve().parents[2] / "validator"
BUILD_SCRIPT = VALIDATOR_DIR / "build"
JAVA_OPTIONS = ("-Xmx1g", "-Xss4m")
MAIN_CLASS = "dev.pdexsidecar.validator.Main"

# What the validator says when a definition a profile needs is in no package: the setup is broken, and such an
# issue hides the resource's real ones, so it is never reported as a finding about the resource.
_MISSING_DEFINITION = re.compile(r"Failed to retrieve profile|could not be resolved|"
                                 r"has not been checked because it (?:is unknown|could not be found)|"
                                 r"Unable to (?:resolve|find) (?:the )?profile", re.IGNORECASE)
# How HAPI names a profile it cannot find, once as a meta.profile element and once as a profile to validate against.
_UNKNOWN_PROFILE = re.compile(r"Profile reference '(?P<quoted>[^']+)' has not been checked|"
                              r"Failed to retrieve profile with url=(?P<bare>\S+)")
UNKNOWN_PROFILE = "UNKNOWN_PROFILE"


class ValidatorError(RuntimeError):
    """The validator could not be built or started, or stopped answering."""


class MissingDefinitions(ValidatorError):
    """A profile, or a definition one uses, is in no package of the packages folder."""


@dataclass(frozen=True)
class Issue:
    severity: str          # fatal, error, warning, information
    location: str          # FHIRPath of the element, e.g. Group.member[0].entity
    message: str
    profile: str           # the profile validated against ("" for the resource's own meta.profile and base)
    message_id: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity in ("error", "fatal")

    def __str__(self) -> str:
        return f"{self.severity}: {self.location}: {self.message}" + (f" [{self.profile}]" if self.profile else "")


@dataclass(frozen=True)
class Result:
    issues: list[Issue]
    ms: float              # the validator's own time for this resource

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.is_error]

    @property
    def unknown_profiles(self) -> list[str]:
        """The resource's meta.profiles no package defines: it was not validated against those."""
        return [i.profile for i in self.issues if i.message_id == UNKNOWN_PROFILE]


def _unknown_url(issue: Issue) -> str | None:
    found = _UNKNOWN_PROFILE.search(issue.message)
    return (found["quoted"] or found["bare"]) if found else None


def claimed_but_unknown(resource: dict, profiles: Sequence[str], issues: list[Issue]) -> list[Issue]:
    """The issues with each meta.profile no package defines turned into one warning: the resource was still
    validated against its base definition and the profiles that resolve, and a claim of a profile that no package
    defines (CARIN BB's Basis profiles, for one) is not something wrong with the resource. A profile asked for
    (`profiles`), or one a definition uses, stays an error: then the validation itself is incomplete."""
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    claimed = {p for p in meta.get("profile") or () if isinstance(p, str)} - set(profiles)
    kept: list[Issue] = []
    unknown: list[str] = []
    for issue in issues:
        url = _unknown_url(issue) if issue.is_error else None
        if url not in claimed:
            kept.append(issue)
        elif url not in unknown:
            unknown.append(url)
    location = f"{resource.get('resourceType')}.meta.profile"
    return kept + [Issue("warning", location, f"profile {url} is defined by no package in the packages folder: "
                         "not validated against it", url, UNKNOWN_PROFILE) for url in unknown]


def build_jar() -> Path:
    """The validator jar, built with Maven unless current (validator/build skips an unchanged build)."""
    if shutil.which("java") is None:
        raise ValidatorError("the FHIR validator needs Java 17 (java is not on PATH)")
    built = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True)
    if built.returncode != 0:
        raise ValidatorError(f"building the FHIR validator failed ({BUILD_SCRIPT}):\n{built.stderr[-3000:]}")
    return Path(built.stdout.strip().splitlines()[-1])


class Validator:
    """`Validator(packages_dir, jar).start()`, then `validate(resource, profiles)` as often as needed; `close()`.

    `require` names profiles that must be fully defined by the packages: start() fails (MissingDefinitions) when one
    of them, or a definition one uses, is missing. A validation that meets a missing definition fails the same way,
    but for a meta.profile no package defines: that is a warning, listed in `Result.unknown_profiles`.
    """

    def __init__(self, packages_dir: Path, jar: Path, require: Sequence[str] = (),
                 java_options: Sequence[str] = JAVA_OPTIONS) -> None:
        self.packages_dir = Path(packages_dir).resolve()
        self.jar = jar
        self.require = list(require)
        self.java_options = list(java_options)
        self.packages: list[str] = []
        self.startup_ms = 0.0
        self._process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> "Validator":
        if not self.packages_dir.is_dir():
            raise ValidatorError(f"FHIR packages folder {self.packages_dir} does not exist")
        requires = [arg for url in self.require for arg in ("--require", url)]
        # The packages folder is on the classpath: HAPI's NpmPackageValidationSupport loads packages from there.
        classpath = os.pathsep.join([str(self.jar), str(self.packages_dir)])
        self._log = tempfile.TemporaryFile()
        started = time.monotonic()
        self._process = subprocess.Popen(
            ["java", *self.java_options, "-cp", classpath, MAIN_CLASS, "--packages", str(self.packages_dir),
             *requires], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        hello = self._read_line()
        if "error" in hello:
            self.close()
            failure = MissingDefinitions if _MISSING_DEFINITION.search(hello["error"]) else ValidatorError
            raise failure(hello["error"])
        self.packages = hello["packages"]
        self.startup_ms = (time.monotonic() - started) * 1000
        return self

    def validate(self, resource: dict, profiles: Sequence[str] = ()) -> Result:
        """The issues of one resource against each of `profiles` (none: its own meta.profile and base definition)."""
        if self._process is None or self._process.stdin is None:
            raise ValidatorError("the validator is not running: start() it first")
        if any(not p or any(c.isspace() for c in p) for p in profiles):
            raise ValueError(f"profile URLs have no spaces: {profiles!r}")
        request = " ".join(profiles).encode() + b"\t" + orjson.dumps(resource) + b"\n"
        with self._lock:
            try:
                self._process.stdin.write(request)
                self._process.stdin.flush()
            except BrokenPipeError as exc:
                raise ValidatorError(f"the validator stopped: {self._log_tail()}") from exc
            answer = self._read_line()
        issues = claimed_but_unknown(resource, profiles, [
            Issue(i["severity"], i["location"] or "", i["message"] or "", i["profile"] or "", i["messageId"] or "")
            for i in answer["issues"]])
        missing = [str(i) for i in issues if i.is_error and _MISSING_DEFINITION.search(i.message)]
        if missing:
            raise MissingDefinitions("the FHIR packages lack a definition: " + "; ".join(missing))
        return Result(issues, answer["ms"])

    def _read_line(self) -> dict:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise ValidatorError(f"the validator stopped: {self._log_tail()}")
        return orjson.loads(line)

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-3000:]

    def close(self) -> None:
        if self._process is not None:
            if self._process.stdin:
                self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "Validator":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
