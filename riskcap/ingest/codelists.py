"""Codelists: which published codes make each register, read from OpenCodelists CSV files.

The mapping file (``configs/codelists.txt``, in the style of OpenSAFELY's ``codelists.txt``)
names, per line, a register, the codelist's role and its OpenCodelists id::

    ckd      include  nhsd-primary-care-domain-refsets/ckd_cod/20200812
    ckd      exclude  nhsd-primary-care-domain-refsets/ckd1and2_cod/20250912
    acs      include  user/mgreen/ambulatory-care-sensitive-conditions-chronic/506ec0fe

Each id's file is looked up in the codelists folder under the name ``opensafely codelists
pull`` gives it (``<organisation>-<codelist>.csv``, ``user-<name>-<codelist>.csv``), read as
OpenCodelists CSV (a ``code`` column; SNOMED CT concept ids for registers, ICD-10 for ``acs``),
fingerprinted (SHA-256) and, when the folder holds OpenSAFELY's ``codelists.json``, checked
against the version and checksum recorded there at download.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from riskcap.config import shipped_config
from riskcap.errors import ConfigError, DataError
from riskcap.schema import CONDITION_CODES

ROLES = ("include", "exclude")
#: The mapping's name for the ICD-10 list of ambulatory-care-sensitive conditions.
ACS = "acs"
TARGETS = (*CONDITION_CODES, ACS)
#: At most this many SNOMED CT codelists (each is one bit of a code's membership mask).
MAX_SNOMED_LISTS = 64
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*){2,3}$")
_SNOMED = re.compile(r"^[0-9]{6,18}$")
#: A compact ICD-10 code (no dot or spaces): letter, two digits, an optional fourth character
#: (digit, or the X or - that pads 3-character codes) and an optional fifth (a UK fifth digit or
#: HES's dagger/asterisk marks D, A, *, +) that the contract does not keep.
_ICD10 = re.compile(r"^([A-Z][0-9]{2})([0-9]|X|-)?([0-9]|[DA*+\u2020])?$")


def default_mapping() -> Path:
    """The shipped mapping, ``configs/codelists.txt``."""
    return shipped_config("codelists.txt")


# --- ICD-10 -------------------------------------------------------------------------------

def normalise_icd10(text: str | None) -> str | None:
    """An ICD-10 code in the contract's form (``I50.0``, or ``I10`` for a 3-character code), or
    None when ``text`` is not one.

    Accepts the forms hospital extracts use: with or without the dot, any case, surrounding
    spaces, 3-character codes padded with ``X`` or ``-`` (HES ``I10X``), and a fifth character
    (a UK fifth digit or HES's dagger/asterisk marks ``D``/``A``), which is dropped; a dagger or
    asterisk sign may follow a 3-character code too (``G01*``).
    """
    if text is None:
        return None
    compact = text.strip().upper().replace(".", "").replace(" ", "")
    match = _ICD10.match(compact)
    if match is None or (match.group(3) and match.group(3).isalnum() and not match.group(2)):
        return None
    stem, fourth = match.group(1), match.group(2)
    return f"{stem}.{fourth}" if fourth and fourth.isdigit() else stem


# --- the mapping file ---------------------------------------------------------------------

@dataclass(frozen=True)
class MappingLine:
    """One line of the mapping: a register (or ``acs``), a role and an OpenCodelists id."""

    register: str
    role: str
    codelist_id: str  # organisation/codelist/version (or user/name/codelist/version)
    line: int

    @property
    def slug(self) -> str:
        return self.codelist_id.rsplit("/", 1)[0]

    @property
    def version(self) -> str:
        return self.codelist_id.rsplit("/", 1)[1]

    @property
    def filename(self) -> str:
        """The file's name as ``opensafely codelists pull`` saves it."""
        return self.slug.replace("/", "-") + ".csv"

    @property
    def url(self) -> str:
        return f"https://www.opencodelists.org/codelist/{self.codelist_id}/"


def read_mapping(path: str | Path) -> list[MappingLine]:
    """Parse a mapping file; ConfigError naming the file and line for anything wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: codelist mapping file not found") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    lines, seen = [], set()
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{path}: line {number}"
        if len(words) != 3:
            raise ConfigError(f"{where}: expected '<register> <role> <organisation>/<codelist>/<version>', "
                              f"got {raw.strip()!r}")
        register, role, codelist_id = words
        if register not in TARGETS:
            raise ConfigError(f"{where}: unknown register {register!r}; allowed: {', '.join(TARGETS)}")
        if role not in ROLES:
            raise ConfigError(f"{where}: unknown role {role!r}; allowed: {', '.join(ROLES)}")
        if register == ACS and role != "include":
            raise ConfigError(f"{where}: the {ACS} list can only be 'include'")
        if not _SLUG.match(codelist_id):
            raise ConfigError(f"{where}: {codelist_id!r} is not an OpenCodelists id "
                              f"(organisation/codelist/version, e.g. nhsd-primary-care-domain-refsets/hf_cod/20250912)")
        if (register, codelist_id) in seen:
            raise ConfigError(f"{where}: {codelist_id} is listed twice for {register}")
        seen.add((register, codelist_id))
        lines.append(MappingLine(register, role, codelist_id, number))
    if not lines:
        raise ConfigError(f"{path}: no codelists listed")
    included = {m.register for m in lines if m.role == "include"}
    for m in lines:
        if m.register not in included:
            raise ConfigError(f"{path}: line {m.line}: {m.register} has an exclude list but no include list")
    versions: dict[str, str] = {}
    for m in lines:
        if versions.setdefault(m.filename, m.codelist_id) != m.codelist_id:
            raise ConfigError(f"{path}: line {m.line}: {m.codelist_id} and {versions[m.filename]} are two versions "
                              f"of one file ({m.filename}); use one")
    return lines


# --- the codelist files -------------------------------------------------------------------

@dataclass
class Codelist:
    """One codelist file as read: its codes, fingerprint and how its version was checked."""

    codelist_id: str
    file: Path
    system: str  # "snomed" or "icd10"
    codes: np.ndarray  # int64 SNOMED CT ids, or ICD-10 codes (compact, no dot) as str
    sha256: str
    verified: str  # how the version and checksum were checked

    def as_dict(self) -> dict:
        return {"codelist": self.codelist_id, "file": self.file.name, "coding_system": self.system,
                "codes": int(len(self.codes)), "sha256": self.sha256, "verified": self.verified}


def _read_codes(path: Path, system: str) -> np.ndarray:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text; download the codelist again from OpenCodelists") from exc
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "code" not in reader.fieldnames:
        raise DataError(f"{path}: no 'code' column (the file has: {', '.join(reader.fieldnames or []) or 'nothing'}); "
                        f"is it an OpenCodelists CSV download?")
    codes, bad = [], []
    for row_number, row in enumerate(reader, start=1):
        code = (row.get("code") or "").strip()
        if system == "snomed":
            ok = bool(_SNOMED.match(code))
            value = code
        else:
            normal = normalise_icd10(code)
            ok = normal is not None
            value = normal.replace(".", "") if normal else code
        if ok:
            codes.append(value)
        else:
            bad.append(f"row {row_number}: {code!r}")
    if bad:
        kind = "a SNOMED CT concept id (6 to 18 digits)" if system == "snomed" else "an ICD-10 code"
        raise DataError(f"{path}: column 'code': not {kind} - {len(bad)} row(s), e.g. {'; '.join(bad[:5])}")
    if not codes:
        raise DataError(f"{path}: the codelist has no codes")
    if system == "snomed":
        return np.unique(np.array(codes, dtype=np.int64))
    return np.array(sorted(set(codes)), dtype=object)


def _downloads(directory: Path) -> dict | None:
    """OpenSAFELY's ``codelists.json`` of the folder (file -> id, sha), or None when absent."""
    path = directory / "codelists.json"
    if not path.exists():
        return None
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        return {name: (str(meta["id"]), str(meta["sha"])) for name, meta in files.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not the codelists.json 'opensafely codelists pull' writes ({exc})") from exc


def _load_file(directory: Path, m: MappingLine, downloads: dict | None) -> Codelist:
    path = directory / m.filename
    if not path.is_file():
        raise DataError(f"{directory}: codelist {m.codelist_id} (mapping line {m.line}, {m.register} {m.role}) not "
                        f"found: expected {m.filename}; download it from {m.url} (Download CSV) into {directory}")
    system = "icd10" if m.register == ACS else "snomed"
    codes = _read_codes(path, system)
    data = path.read_bytes()
    verified = "not checked: no codelists.json in the folder"
    if downloads is not None:
        if m.filename not in downloads:
            verified = "not checked: the file is not in codelists.json"
        else:
            recorded_id, recorded_sha = downloads[m.filename]
            if recorded_id != m.codelist_id:
                raise DataError(f"{path}: codelists.json says this file is {recorded_id}, but the mapping (line "
                                f"{m.line}) asks for {m.codelist_id}: download that version, or change the mapping")
            if hashlib.sha1(data.strip()).hexdigest() != recorded_sha:
                raise DataError(f"{path}: changed since it was downloaded (its SHA-1 differs from codelists.json); "
                                f"download {m.codelist_id} again")
            verified = "codelists.json: version and checksum match"
    return Codelist(m.codelist_id, path, system, codes, hashlib.sha256(data).hexdigest(), verified)


@dataclass
class Codelists:
    """The codelists of a mapping, loaded, with a fast index of SNOMED CT codes to registers.

    ``codes`` (sorted, unique int64) are every SNOMED CT code of every register list;
    ``masks[i]`` has bit ``k`` set when ``codes[i]`` is in ``snomed[k]``; ``include_bits`` and
    ``exclude_bits`` give each register's lists as such a mask. ``acs`` holds the compact
    ICD-10 codes (prefixes) of the ``acs`` lists.
    """

    mapping: list[MappingLine]
    mapping_file: Path
    lists: dict[str, Codelist]  # by codelist id
    snomed: list[str]  # codelist ids of the SNOMED CT lists, in bit order
    codes: np.ndarray
    masks: np.ndarray
    include_bits: dict[str, int]
    exclude_bits: dict[str, int]
    acs: tuple[str, ...]
    registers: tuple[str, ...] = field(default=())  # registers with at least one include list

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """The membership mask (uint64) of each SNOMED CT code; 0 for a code in no list."""
        codes = np.asarray(codes, dtype=np.int64)
        if len(self.codes) == 0:
            return np.zeros(len(codes), dtype=np.uint64)
        pos = np.searchsorted(self.codes, codes).clip(max=len(self.codes) - 1)
        return np.where(self.codes[pos] == codes, self.masks[pos], np.uint64(0))

    def is_acs(self, compact_codes) -> np.ndarray:
        """Whether each compact ICD-10 code (no dot) starts with a code of the ``acs`` lists."""
        prefixes = self.acs
        return np.array([bool(c) and c.startswith(prefixes) for c in compact_codes], dtype=bool) \
            if prefixes else np.zeros(len(compact_codes), dtype=bool)

    def manifest(self) -> dict:
        """What the run manifest and the report record: the mapping and every file's fingerprint."""
        return {"mapping_file": str(self.mapping_file),
                "mapping": [{"register": m.register, "role": m.role, "codelist": m.codelist_id} for m in self.mapping],
                "files": [c.as_dict() for c in self.lists.values()]}


def load_codelists(directory: str | Path, mapping: str | Path | None = None) -> Codelists:
    """Read the mapping (default: the shipped one) and every codelist it names from ``directory``.

    Raises ConfigError for a bad mapping and DataError for a missing, unreadable, malformed or
    (per ``codelists.json``) wrong-version file, each naming the file and what to do.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: codelists folder not found")
    mapping_file = Path(mapping) if mapping is not None else default_mapping()
    lines = read_mapping(mapping_file)
    downloads = _downloads(directory)
    lists: dict[str, Codelist] = {}
    for m in lines:
        if m.codelist_id not in lists:
            lists[m.codelist_id] = _load_file(directory, m, downloads)
    snomed = [cid for cid, c in lists.items() if c.system == "snomed"]
    if len(snomed) > MAX_SNOMED_LISTS:
        raise ConfigError(f"{mapping_file}: {len(snomed)} SNOMED CT codelists; at most {MAX_SNOMED_LISTS}")
    bit = {cid: np.uint64(1) << np.uint64(k) for k, cid in enumerate(snomed)}
    all_codes = np.concatenate([lists[cid].codes for cid in snomed]) if snomed else np.zeros(0, np.int64)
    all_bits = np.concatenate([np.full(len(lists[cid].codes), bit[cid], dtype=np.uint64) for cid in snomed]) \
        if snomed else np.zeros(0, np.uint64)
    codes, inverse = np.unique(all_codes, return_inverse=True)
    masks = np.zeros(len(codes), dtype=np.uint64)
    np.bitwise_or.at(masks, inverse, all_bits)
    include_bits: dict[str, int] = {}
    exclude_bits: dict[str, int] = {}
    for m in lines:
        if m.register == ACS:
            continue
        target = include_bits if m.role == "include" else exclude_bits
        target[m.register] = int(target.get(m.register, 0) | int(bit[m.codelist_id]))
    acs = tuple(sorted({c for m in lines if m.register == ACS for c in lists[m.codelist_id].codes}))
    registers = tuple(r for r in CONDITION_CODES if r in include_bits)
    return Codelists(lines, mapping_file, lists, snomed, codes, masks, include_bits, exclude_bits, acs, registers)
