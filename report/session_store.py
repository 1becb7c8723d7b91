"""Pinned findings that survive a page reload and travel in a link: a server-side store of findings lists, each kept
under a random id that the Report page carries in its URL (``?report=<id>``). No streamlit.

Streamlit's ``session_state`` is lost on a reload; the URL is not. A page creates an id once (``new_id``), puts it in
``st.query_params["report"]``, and reads and edits the list through the store; reopening the URL (after a reload, or
on another machine's browser pointed at the same server) finds the same findings.

    from report.session_store import default_store, finding_query_params, parse_report_param
    store = default_store()
    report_id, warning = parse_report_param(st.query_params)    # None: no (valid) id in the URL
    report_id = report_id or store.new_id()
    store.append(report_id, report.pin_view(payload, pictures, note))
    findings = store.load(report_id)
    store.move(report_id, 2, 0, expected=findings[2]); store.update_note(...); store.remove(...)
    st.page_link(..., query_params=finding_query_params(findings[0]))   # reopens the view in the explorer

Each list is one file ``<id>.json`` in ``$GRADCAM_CACHE_DIR/reports`` (else ``~/.cache/gradcam-dashboard/reports``),
written whole through a temporary file and a rename (``report.write_atomically``); its text is a findings.json
(``report.findings_to_json``, pictures kept), so ``gradcam report --findings <that file>`` rebuilds the report.
Edits are read-modify-write under a lock: a thread lock per folder and, where the OS has it, an exclusive
``flock`` on the folder's ``_lock`` file, so several sessions (threads) of one server, and several servers sharing
the folder, never lose each other's findings. A list holds at most ``MAX_FINDINGS``; files unused for
``MAX_AGE_DAYS`` are deleted (``prune``, run at most hourly when an id is created).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from report.findings import Finding, FindingError, findings_from_json, findings_to_json, write_atomically

try:  # POSIX: lock across processes too; elsewhere the thread lock covers one server process
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

CACHE_ENV = "GRADCAM_CACHE_DIR"
REPORT_PARAM = "report"
MAX_FINDINGS = 200
MAX_AGE_DAYS = 30
MAX_NOTE_CHARS = 10_000
PRUNE_EVERY_S = 3600.0
#: Temporary files of a write that did not finish (a killed process) are removed after this long.
STALE_TEMP_S = 3600.0
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # used with fullmatch: "$" would let a trailing newline in
_LOCK_FILE = "_lock"
_folder_locks: dict[Path, threading.Lock] = {}
_folder_locks_guard = threading.Lock()


class ReportStoreError(ValueError):
    """A request the store cannot carry out; the message says what was wrong and what to do."""


class ReportFullError(ReportStoreError):
    """The report already holds ``MAX_FINDINGS`` findings."""


class StaleReportError(ReportStoreError):
    """The finding a page asked to change is no longer in the report (another tab or session changed it)."""


def default_folder() -> Path:
    """``$GRADCAM_CACHE_DIR/reports``, else ``~/.cache/gradcam-dashboard/reports``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "gradcam-dashboard") / "reports"


def check_id(report_id: object) -> str:
    """The id itself if it is one the store makes (16 to 64 of A-Z a-z 0-9 _ -); else ``ReportStoreError``.
    Nothing else reaches the file system, so an id cannot name a path outside the store."""
    if not isinstance(report_id, str) or not _ID.fullmatch(report_id):
        raise ReportStoreError(f"report id {str(report_id)[:80]!r} is not valid: expected 16 to 64 letters, digits, "
                               "'-' or '_' (as made by new_id); open the Report page without ?report= to start a "
                               "new report")
    return report_id


def parse_report_param(params: Mapping[str, object]) -> tuple[str | None, str | None]:
    """(report id or None, warning or None) from a page's query parameters; a bad id gives None and a warning
    for the page to show (it then starts a new report)."""
    value = params.get(REPORT_PARAM)
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    if value in (None, ""):
        return None, None
    try:
        return check_id(str(value)), None
    except ReportStoreError as error:
        return None, f"The link's report id is not valid ({error}); starting a new report."


class SessionStore:
    """The findings lists of one folder (default ``default_folder()``). Safe to share between threads; several
    instances (and processes) on one folder coordinate through the folder's lock file."""

    def __init__(self, folder: str | os.PathLike | None = None, max_findings: int = MAX_FINDINGS,
                 max_age_days: float = MAX_AGE_DAYS, prune_every_s: float = PRUNE_EVERY_S):
        self.folder = Path(folder).expanduser() if folder is not None else default_folder()
        self.max_findings = int(max_findings)
        self.max_age_s = float(max_age_days) * 86400.0
        self.prune_every_s = float(prune_every_s)
        self._last_prune = float("-inf")

    def __repr__(self) -> str:
        return f"SessionStore({str(self.folder)!r}, max_findings={self.max_findings})"

    # --------------------------------------------------------------------------------------- files, locks
    def path(self, report_id: str) -> Path:
        return self.folder / f"{check_id(report_id)}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive access to the folder: this process's threads, then (POSIX) other processes."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.folder.resolve()
        with _folder_locks_guard:
            thread_lock = _folder_locks.setdefault(key, threading.Lock())
        with thread_lock, open(self.folder / _LOCK_FILE, "a+b") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _read(self, report_id: str) -> list[Finding]:
        path = self.path(report_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            return findings_from_json(text, source=f"report {report_id}")
        except FindingError as error:
            raise ReportStoreError(f"the stored report {str(path)!r} cannot be read ({error}); it was left as it is; "
                                   "start a new report (open the Report page without ?report=)") from None

    def _write(self, report_id: str, findings: Sequence[Finding]) -> None:
        findings = list(findings)
        if len(findings) > self.max_findings:
            raise ReportFullError(f"report {report_id} would hold {len(findings)} findings, more than the "
                                  f"{self.max_findings} a report keeps; remove some, or download this report "
                                  "(HTML or findings JSON) and start a new one")
        for finding in findings:
            if not isinstance(finding, Finding):
                raise ReportStoreError(f"got {type(finding).__name__} in the findings of report {report_id}; "
                                       "expected report.Finding (report.pin_view makes one)")
        write_atomically(self.path(report_id), findings_to_json(findings, pictures=True) + "\n")

    def _edit(self, report_id: str, change: Callable[[list[Finding]], list[Finding]]) -> list[Finding]:
        """Read, change and write the list as one step under the lock; returns the new list."""
        check_id(report_id)
        with self._locked():
            findings = change(self._read(report_id))
            self._write(report_id, findings)
        return findings

    # ----------------------------------------------------------------------------------------- the API
    def new_id(self) -> str:
        """A fresh random id (128 bits, URL-safe) for a new report; prunes old reports at most hourly."""
        if time.monotonic() - self._last_prune >= self.prune_every_s:
            self.prune()
        return secrets.token_urlsafe(16)

    def exists(self, report_id: str) -> bool:
        return self.path(report_id).is_file()

    def load(self, report_id: str) -> list[Finding]:
        """The findings of a report in order ([] for an id with nothing stored yet, or one pruned). Reading
        counts as use: it keeps the report from being pruned."""
        findings = self._read(report_id)
        if findings:
            with contextlib.suppress(OSError):
                os.utime(self.path(report_id))
        return findings

    def save(self, report_id: str, findings: Sequence[Finding]) -> list[Finding]:
        """Replace the whole list (at most ``max_findings``)."""
        return self._edit(report_id, lambda _old: list(findings))

    def append(self, report_id: str, finding: Finding) -> list[Finding]:
        """Pin one more finding at the end ("Add to report"); ``ReportFullError`` when the report is full."""
        return self._edit(report_id, lambda findings: [*findings, finding])

    def move(self, report_id: str, index: int, to: int, expected: Finding | None = None) -> list[Finding]:
        """Move the finding at ``index`` to position ``to`` (both 0-based). With ``expected`` (the finding the
        page showed at ``index``), the finding is found where it is now; ``StaleReportError`` if it is gone."""
        def change(findings: list[Finding]) -> list[Finding]:
            position = _locate(findings, index, expected, report_id)
            if not 0 <= int(to) < len(findings):
                raise ReportStoreError(f"cannot move finding {position + 1} to position {int(to) + 1}: report "
                                       f"{report_id} holds {len(findings)} findings (positions 1 to {len(findings)})")
            moved = findings.pop(position)
            findings.insert(int(to), moved)
            return findings

        return self._edit(report_id, change)

    def update_note(self, report_id: str, index: int, note: str, expected: Finding | None = None) -> list[Finding]:
        """Replace the note of the finding at ``index`` (see ``move`` for ``expected``)."""
        if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
            raise ReportStoreError(f"a note must be text of at most {MAX_NOTE_CHARS} characters; got "
                                   f"{type(note).__name__} of length {len(note) if isinstance(note, str) else '-'}")

        def change(findings: list[Finding]) -> list[Finding]:
            position = _locate(findings, index, expected, report_id)
            findings[position] = replace(findings[position], note=note)
            return findings

        return self._edit(report_id, change)

    def remove(self, report_id: str, index: int, expected: Finding | None = None) -> list[Finding]:
        """Remove the finding at ``index`` (see ``move`` for ``expected``)."""
        def change(findings: list[Finding]) -> list[Finding]:
            del findings[_locate(findings, index, expected, report_id)]
            return findings

        return self._edit(report_id, change)

    def prune(self, now: float | None = None) -> list[str]:
        """Delete reports unused (not written or read) for ``max_age_days`` and leftover temporary files; returns
        the ids deleted."""
        self._last_prune = time.monotonic()
        if not self.folder.is_dir():
            return []
        now = time.time() if now is None else now
        removed = []
        with self._locked():
            for path in self.folder.iterdir():
                is_report = path.suffix == ".json" and _ID.fullmatch(path.stem) is not None
                is_temp = path.name.startswith(".") and path.name.endswith(".tmp")
                with contextlib.suppress(FileNotFoundError):
                    age = now - path.stat().st_mtime
                    if (is_report and age > self.max_age_s) or (is_temp and age > STALE_TEMP_S):
                        path.unlink()
                        if is_report:
                            removed.append(path.stem)
        return sorted(removed)


def _locate(findings: list[Finding], index: int, expected: Finding | None, report_id: str) -> int:
    """Where the finding to change is now: ``index``, or where ``expected`` moved to."""
    index = int(index)
    if expected is None or (0 <= index < len(findings) and findings[index] == expected):
        if not 0 <= index < len(findings):
            raise ReportStoreError(f"report {report_id} has no finding {index + 1}: it holds {len(findings)} "
                                   "findings; reload the page to see it as it is now")
        return index
    for position, finding in enumerate(findings):
        if finding == expected:
            return position
    raise StaleReportError(f"finding {index + 1} of report {report_id} was changed or removed in another tab or "
                           "session; reload the page to see the report as it is now")


_default_store: SessionStore | None = None
_default_guard = threading.Lock()


def default_store() -> SessionStore:
    """The process's store on ``default_folder()`` (made on first use, after ``$GRADCAM_CACHE_DIR`` is read)."""
    global _default_store
    with _default_guard:
        if _default_store is None or _default_store.folder != default_folder():
            _default_store = SessionStore()
        return _default_store


# ------------------------------------------------------------------------------------- links to the views
def finding_query_params(finding: Finding, side: str = "first") -> dict[str, str]:
    """The explorer's URL query parameters that reopen a finding's view (``dashboard.view_state``'s ``ws``,
    ``seed``, ``filter``, ``sample``, ``layer``, ``method``, ``target``, ``opacity``, ``colormap``); ``side="compare"``
    for the second model of a comparison. ``seed`` and ``filter`` (the explorer's gallery) come from the finding's
    link when it has one, else their defaults."""
    if side not in ("first", "compare"):
        raise ValueError(f"side {side!r}: expected 'first' or 'compare'")
    if side == "compare" and finding.compare is None:
        raise ValueError(f"side 'compare' of a {finding.kind!r} finding, which has no second model; use 'first'")
    gallery = {key: values[-1] for key, values in parse_qs(urlsplit(finding.link).query).items()
               if key in ("seed", "filter") and values}
    view = finding.compare if side == "compare" else finding
    sample = finding.sample
    target = view.target_mode if view.target_mode in ("pred", "true") else str(view.target_class)
    return {
        "ws": view.workspace,
        "seed": gallery.get("seed", "0"),
        "filter": gallery.get("filter", "all"),
        "sample": f"upload:{sample.upload_sha256[:12]}" if sample.is_upload else str(sample.index),
        "layer": view.layer,
        "method": finding.method,
        "target": target,
        "opacity": f"{finding.opacity:g}",
        "colormap": finding.colormap,
    }


def finding_link(finding: Finding, base_url: str = "", side: str = "first") -> str:
    """``base_url`` (the explorer's address, e.g. "http://localhost:8501/") with the view's query parameters."""
    return f"{base_url}?{urlencode(finding_query_params(finding, side))}"


__all__ = [
    "MAX_AGE_DAYS",
    "MAX_FINDINGS",
    "REPORT_PARAM",
    "ReportFullError",
    "ReportStoreError",
    "SessionStore",
    "StaleReportError",
    "check_id",
    "default_folder",
    "default_store",
    "finding_link",
    "finding_query_params",
    "parse_report_param",
]
