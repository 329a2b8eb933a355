"""The files written beside the video: the contact sheet shows the edit as delivered, and
every file honours the umask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from reelflow.tasks.deliver import edit_sheet_entries, frame_key, frame_time
from reelflow.tasks.media import TimelineItem
from tests.helpers import REPO, write_shotlist


def _item(label: str, length_s: float, transition_s: float = 0.0) -> TimelineItem:
    return TimelineItem(source=Path(f"/clips/{label}.mp4"), source_sha256="ab" * 32, start_s=1.0,
                        length_s=length_s, label=label,
                        transition="crossfade" if transition_s else "cut", transition_s=transition_s)


def test_sheet_cells_sit_in_the_middle_of_each_shot_of_the_edit():
    items = [_item("a", 5, 0.5), _item("b", 4, 1.0), _item("c", 3)]
    entries = edit_sheet_entries(Path("/out/edit.mp4"), items, fps=24)
    # a: frames 0-120 (12 overlap b); b: 108-204 (24 overlap c); c: 180-252 of the edit
    assert [e.at_s for e in entries] == [53.5 / 24, 149.5 / 24, 227.5 / 24]  # lands on 54 ...
    assert {e.video for e in entries} == {Path("/out/edit.mp4")}
    assert [e.label for e in entries] == ["1. a", "2. b", "3. c"]
    assert {e.key for e in entries} == {None}
    keyed = edit_sheet_entries(Path("/out/edit.mp4"), items, fps=24,
                               pieces=[("p0", 100), ("p1", 100), ("p2", 52)])
    assert [e.key for e in keyed] == ["p0@54", "p1@50", "p2@28"]   # the frame, by its piece


def test_frame_key_names_the_piece_and_offset():
    pieces = [("a", 24), ("b", 12)]
    assert [frame_key(pieces, f) for f in (0, 23, 24, 35)] == ["a@0", "a@23", "b@0", "b@11"]
    with pytest.raises(ValueError, match="past the end"):
        frame_key(pieces, 36)
    assert frame_time(0, 24) == 0.0 and frame_time(10, 24) == 9.5 / 24


@pytest.mark.usefixtures("prefect_api")
def test_contact_sheet_shows_the_fitted_edit_and_files_honour_the_umask(tmp_path, home, luma_env):
    from reelflow.flows.render import render_sequence

    path = write_shotlist(tmp_path, [
        {"id": "tall", "prompt": "A lighthouse at night, tall framing", "resolution": "540p",
         "aspect_ratio": "9:16", "duration": "5s"},
        {"id": "wide", "prompt": "Waves on black rocks", "resolution": "540p", "trim": [0, 3],
         "text": {"content": "MMMM", "position": "center", "size": 200, "colour": "#ff00ff"}},
    ], output={"path": "out.mp4", "resolution": "540p", "fps": 24, "fit": "contain"})
    report = render_sequence(str(path))

    with av.open(str(report.contact_sheet)) as sheet:
        image = next(sheet.decode(video=0)).to_ndarray(format="rgb24")
    thumb_h, band, thumb_w = 216, 30, 384                 # 960x540 edit at the default 384 wide
    assert image.shape == (thumb_h + band, 2 * thumb_w, 3)   # cells of the edit's 16:9, not 9:16
    tall = image[:thumb_h, :thumb_w]
    assert tall[:, :100].max() < 24 and tall[:, -100:].max() < 24   # fit: contain's black bars
    assert tall[:, 160:224].mean() > 24                            # the picture between them
    wide = image[:thumb_h, thumb_w:].astype(int)
    magenta = (wide[..., 0] > 200) & (wide[..., 1] < 60) & (wide[..., 2] > 200)
    assert magenta.sum() > 1000                                    # the overlay, drawn in the edit
    mask = os.umask(0o022)
    os.umask(mask)
    for written in (report.output, report.poster, report.contact_sheet, report.otio):
        assert written.stat().st_mode & 0o777 == 0o666 & ~mask, written


def test_atomic_write_path_gives_the_umask_mode(tmp_path):
    code = ("import os, sys; from pathlib import Path; os.umask(0o027); "
            "from reelflow.tasks.store import atomic_write_path; "
            "p = atomic_write_path(Path(sys.argv[1]) / 'x.json'); print(oct(p.stat().st_mode & 0o777))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.strip()
    assert out == "0o640"
