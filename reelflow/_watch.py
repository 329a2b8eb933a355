"""`reelflow watch FILE`: re-render on every save of a shot list or a file it names.

One long-lived process keeps Python, Prefect (reelflow's local server, or the configured
one), the embedded emulator and the media cache warm. Every ~0.5 s it compares the
mtime and size of the list and of every input file the list names (images, keyframes,
music, edit sources); on a change it waits for the file to settle, says what changed,
validates and plans exactly as `render` does (budget, credentials, keyframe checks), and
renders. A save that changes no bytes renders nothing. A bad save prints the validation
lines and keeps watching; a failed render prints one line and keeps watching.

``--budget`` is for the whole session: each render may pay at most what is left of it.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reelflow.errors import ReelflowError, ShotListError

__all__ = ["Watch"]

#: How often the files are looked at (seconds).
POLL_S = 0.5
#: A changed file must keep its size and mtime this long before it is read (half-written saves).
SETTLE_S = 0.15


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _digest(paths: list[Path]) -> str:
    """SHA-256 over the watched files' bytes: an unchanged save (touch) renders nothing."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<missing>")
    return digest.hexdigest()


def _shot_fields(shotlist) -> dict[str, dict]:
    shots = {shot.id: shot.model_dump(mode="json") for shot in shotlist.shots}
    shots["(output)"] = shotlist.output.model_dump(mode="json")
    return shots


def describe_change(before, after) -> str:
    """``shot two: text; shot three: added``: what a save changed, shot by shot."""
    if before is None:
        return "first render"
    old, new = _shot_fields(before), _shot_fields(after)
    parts = []
    for key in [*new, *(k for k in old if k not in new)]:
        label = key if key == "(output)" else f"shot {key}"
        if key not in old:
            parts.append(f"{label}: added")
        elif key not in new:
            parts.append(f"{label}: removed")
        elif old[key] != new[key]:
            fields = sorted(f for f in new[key] if old[key].get(f) != new[key].get(f))
            parts.append(f"{label}: {', '.join(fields)}")
    if [s.id for s in before.shots] != [s.id for s in after.shots] and not parts:
        parts.append("shot order")
    return "; ".join(parts) or "no shot or output field (an input file's bytes)"


@dataclass
class Watch:
    """The watch loop. ``check(path, profile, budget)`` validates and plans as `render`
    does (raising ShotListError / ReelflowError) and returns ``(shotlist, plan)``;
    ``render(path, profile, budget, plan)`` runs the flow on that plan (opaque here: the
    CLI's ``PlannedRender``) and returns its RenderReport."""

    path: Path
    profile: str
    budget_usd: float | None
    check: Callable
    render: Callable
    say: Callable[[str], None]
    poll_s: float = POLL_S
    spent_usd: float = 0.0
    renders: int = 0
    _stamps: dict = field(default_factory=dict)
    _inputs: list[Path] = field(default_factory=list)
    _rendered: str | None = None       # digest of the files the last good render read
    _output: tuple | None = None       # (path, stamp) of the last output written
    _shotlist: object = None

    def watched(self) -> list[Path]:
        return [self.path, *self._inputs]

    def run(self, keys=None) -> int:
        """Render now, then on every change, until Ctrl-C; returns the exit code (0).

        ``keys`` (a text stream, e.g. stdin): a line ``d`` toggles draft/final and renders.
        """
        self.say(f"watch: {self.path} ({self.profile}); Ctrl-C stops"
                 + ("; d + Enter toggles draft/final" if keys is not None else ""))
        toggles: list[str] = []
        if keys is not None:
            threading.Thread(target=_read_keys, args=(keys, toggles), daemon=True).start()
        for sig in (signal.SIGINT, signal.SIGTERM):  # (a shell may start us with SIGINT ignored)
            signal.signal(sig, _interrupt)
        try:
            self._stamps = self._look()
            self.cycle([self.path])
            while True:
                time.sleep(self.poll_s)
                changed = self._changed()
                if toggles:
                    toggles.clear()
                    self.profile = "final" if self.profile == "draft" else "draft"
                    self.say(f"watch: profile {self.profile}")
                    changed = changed or [self.path]
                if changed:
                    self.cycle(changed)
        except KeyboardInterrupt:
            self.say(f"watch: stopped after {self.renders} renders, ${self.spent_usd:.2f} paid")
            return 0

    def _look(self) -> dict:
        return {path: _stamp(path) for path in self.watched()}

    def _changed(self) -> list[Path]:
        now = self._look()
        if now == self._stamps:
            return []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # let the editor finish writing
            time.sleep(SETTLE_S)
            settled = self._look()
            if settled == now:
                break
            now = settled
        changed = [p for p in now if now[p] != self._stamps.get(p)]
        self._stamps = now
        return changed

    def cycle(self, changed: list[Path]) -> None:
        """Validate, plan and render after a change; never raises but KeyboardInterrupt."""
        started = time.monotonic()
        names = ", ".join(p.name for p in changed)
        try:
            shotlist, plan = self.check(self.path, self.profile, self._budget_left())
        except ShotListError as exc:
            for line in exc.problems:
                self.say(line)
            count = len(exc.problems)
            self.say(f"watch: {names} not rendered ({count} problem{'s' * (count != 1)}); "
                     "watching for the next save")
            return
        except ReelflowError as exc:
            self.say(f"watch: {names} not rendered: {exc}")
            return
        self._inputs = sorted({p for _s, name, p in _files(shotlist) if name != "output.path"})
        self._stamps = self._look()
        digest = f"{self.profile}:{_digest(self.watched())}"
        if digest == self._rendered and self._output_intact():
            self.say(f"watch: {names} saved, nothing changed: no render "
                     f"({time.monotonic() - started:.2f} s)")
            return
        what = describe_change(self._shotlist, shotlist)
        if self._rendered and not self._rendered.startswith(f"{self.profile}:"):
            what = f"profile {self.profile}"
        self.say(f"watch: {names} changed ({what}); rendering...")
        try:
            report = self.render(self.path, self.profile, self._budget_left(), plan)
        except ShotListError as exc:
            for line in exc.problems:
                self.say(line)
            return
        except Exception as exc:  # noqa: BLE001 - a failed render is one line, the watch goes on
            self.say(f"watch: render failed: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}")
            return
        self._done(report, shotlist, digest, started)

    def _done(self, report, shotlist, digest: str, started: float) -> None:
        self.renders += 1
        self.spent_usd += report.cost_usd
        self._rendered, self._shotlist = digest, shotlist
        self._output = (report.output, _stamp(report.output))
        self.say(f"render {self.renders}: {time.monotonic() - started:.1f} s, "
                 f"{report.generated} paid (${report.cost_usd:.2f}), {report.cached} cached, "
                 f"{report.encoded_pieces} encoded, {report.reused_pieces} reused pieces "
                 f"-> {report.output}")

    def _output_intact(self) -> bool:
        return self._output is not None and _stamp(self._output[0]) == self._output[1]

    def _budget_left(self) -> float | None:
        return None if self.budget_usd is None else max(0.0, self.budget_usd - self.spent_usd)


def _read_keys(keys, toggles: list[str]) -> None:
    for line in keys:
        if line.strip().lower() == "d":
            toggles.append("d")


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _files(shotlist):
    from reelflow.flows._shotlist_checks import file_fields

    return file_fields(shotlist)
