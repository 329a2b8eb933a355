"""Deliverables against real ffmpeg and OTIO: poster, contact sheet, sequence.otio, mezzanine."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
from prefect.cache_policies import NO_CACHE
from prefect.logging import disable_run_logger

from reelflow.tasks import deliver
from reelflow.tasks.deliver import (
    SheetEntry,
    export_mezzanine,
    make_contact_sheet,
    make_poster,
    split_transition,
    write_otio,
)
from reelflow.tasks.media import assemble, probe
from tests.tasks.conftest import FMT, item


def rgb(path: Path) -> np.ndarray:
    """The first frame of an image or video as an RGB array (height, width, 3)."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def image_codec(path: Path) -> str:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.name


# --- poster ------------------------------------------------------------------------------

def test_poster_is_a_full_size_jpeg_from_a_third_in(clips, tmp_path):
    out = make_poster(clips["pattern"], tmp_path / "poster.jpg")
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG SOI
    assert image_codec(out) == "mjpeg"
    image = rgb(out)
    assert image.shape == (FMT.height, FMT.width, 3)
    assert image.std() > 30, "poster is blank"
    # testsrc2 shows a moving picture: the default frame (5 s / 3) differs from frame 0
    first = make_poster(clips["pattern"], tmp_path / "first.jpg", at_s=0)
    assert np.abs(rgb(first).astype(int) - image.astype(int)).mean() > 5


def test_poster_takes_the_asked_time_and_refuses_one_outside(clips, tmp_path):
    red = rgb(make_poster(clips["red"], tmp_path / "red.jpg", at_s=4.9))
    r, g, b = red[90, 160]
    assert r > 200 and g < 40 and b < 40
    with pytest.raises(ValueError, match=r"time 7s is outside the video \(0 to 5s\)"):
        make_poster(clips["red"], tmp_path / "late.jpg", at_s=7)
    assert not list(tmp_path.glob(".late*")), "a failed poster left a temp file"


# --- contact sheet -----------------------------------------------------------------------

def _entries(clips, labels: list[str]) -> list[SheetEntry]:
    videos = ["red", "blue", "pattern", "tone", "tone2"]
    return [SheetEntry(label=label, video=clips[v], at_s=1 + i * 0.5)
            for i, (label, v) in enumerate(zip(labels, videos))]


def test_contact_sheet_grid_size_and_labels(clips, tmp_path):
    labels = ["opening", "100% 'quoted': C:\\path", "{braces} %{pts}", "ünïcødé ✓", "end"]
    sheet = make_contact_sheet(_entries(clips, labels), tmp_path / "sheet.png",
                               columns=4, thumb_width=160)
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = rgb(sheet)
    thumb_h, band = 90, 16  # 160 wide at 16:9; band = 8% of the width, even
    cell_h = thumb_h + band
    assert image.shape == (2 * cell_h, 4 * 160, 3)  # 5 entries in 4 columns: 2 rows
    # cell 0 is the red clip, cell 1 the blue one, cell 4 (row 2) the negated pattern
    assert image[45, 80, 0] > 200 and image[45, 80, 2] < 40
    assert image[45, 240, 2] > 200 and image[45, 240, 0] < 40
    assert image[cell_h:cell_h + thumb_h, :160].std() > 30  # a pattern, not a flat colour
    # the empty cells of the last row are black
    assert image[cell_h:, 160:].max() == 0
    # every label band holds text; with empty labels the same bands are uniform black
    bare = rgb(make_contact_sheet(_entries(clips, [""] * 5), tmp_path / "bare.png",
                                  columns=4, thumb_width=160))
    for i in range(5):
        x, y = (i % 4) * 160, (i // 4) * cell_h + thumb_h
        assert image[y:y + band, x:x + 160].max() > 200, f"no label in cell {i}"
        assert bare[y:y + band, x:x + 160].max() == 0
    assert np.array_equal(image[:thumb_h], bare[:thumb_h])  # only the bands differ


def test_contact_sheet_shows_the_same_frame_twice(clips, tmp_path):
    """Takes that came out identical give identical entries (one split decode, two cells)."""
    entries = [SheetEntry(label=label, video=clips["red"], at_s=1) for label in ("a", "b", "")]
    entries.insert(1, SheetEntry(label="blue", video=clips["blue"], at_s=1))
    image = rgb(make_contact_sheet(entries, tmp_path / "twice.png", columns=4, thumb_width=160))
    assert image.shape == (90 + 16, 4 * 160, 3)
    for cell, red in enumerate((True, False, True, True)):
        r, _, b = image[45, cell * 160 + 80]
        assert (r > 200 and b < 40) if red else (b > 200 and r < 40), f"cell {cell}"


def test_contact_sheet_refuses_time_outside_a_video(clips, tmp_path):
    entries = [SheetEntry(label="ok", video=clips["red"], at_s=1),
               SheetEntry(label="late", video=clips["blue"], at_s=9)]
    with pytest.raises(ValueError, match=r"entry 2 \('late'.*time 9s is outside"):
        make_contact_sheet(entries, tmp_path / "sheet.png")


# --- sequence.otio -----------------------------------------------------------------------

def _sequence(clips) -> list:
    return [
        item(clips["pattern"], 2, label="opening", start_s=0.5),  # cut
        item(clips["red"], 2, label="red", transition="crossfade", transition_s=1),  # 24
        item(clips["blue"], 2, label="blue", transition="fade", transition_s=0.5),  # 12
        item(clips["tone"], 2, label="tone", transition="wipeleft", transition_s=0.375),  # 9
        item(clips["tone2"], 1.5, label="last", transition="crossfade", transition_s=1),  # ignored
    ]


def test_split_transition_gives_whole_frames():
    assert split_transition(24) == (12, 12)
    assert split_transition(9) == (4, 5)
    assert split_transition(0) == (0, 0)


def test_otio_track_is_as_long_as_the_mp4(clips, tmp_path):
    items = _sequence(clips)
    meta = [{"generation_id": f"gen-{i}", "cost": 0.5 * i} for i in range(len(items))]
    out = write_otio(items, FMT, tmp_path / "sequence.otio", name="teaser", metadata=meta)
    timeline = otio.adapters.read_from_file(str(out))
    assert timeline.name == "teaser"
    (track,) = timeline.video_tracks()
    expected = (48 + 48 + 48 + 48 + 36) - (24 + 12 + 9)
    assert timeline.duration() == otio.opentime.RationalTime(expected, FMT.fps)
    assert track.duration().to_frames() == expected

    kinds = [type(c).__name__ for c in track]
    assert kinds == ["Clip", "Clip", "Transition", "Clip", "Transition", "Clip",
                     "Transition", "Clip"]
    clips_ = list(track.find_clips())
    transitions = [c for c in track if isinstance(c, otio.schema.Transition)]
    assert [(t.name, t.transition_type) for t in transitions] == [
        ("crossfade", otio.schema.TransitionTypes.SMPTE_Dissolve),
        ("fade", otio.schema.TransitionTypes.Custom),
        ("wipeleft", otio.schema.TransitionTypes.Custom)]
    assert [(t.in_offset.to_frames(), t.out_offset.to_frames()) for t in transitions] == [
        (12, 12), (6, 6), (4, 5)]
    # each clip is shortened by the offsets beside it: tail by out_offset, head by in_offset
    ranges = [(c.source_range.start_time.to_frames(), c.source_range.duration.to_frames())
              for c in clips_]
    assert ranges == [(12, 48), (0, 48 - 12), (12, 48 - 12 - 6), (6, 48 - 6 - 5), (4, 36 - 4)]
    for clip in clips_:
        assert clip.source_range.start_time.rate == FMT.fps
        # handles the transitions read are inside the source's 5 s (120 frames)
        assert clip.media_reference.available_range.duration.to_frames() == 120
    assert clips_[0].media_reference.target_url == clips["pattern"].resolve().as_uri()
    assert clips_[3].metadata["reelflow"] == {
        "shot_id": "tone", "sha256": items[3].source_sha256, "start_frame": 0,
        "frames": 48, "generation_id": "gen-3", "cost": 1.5}
    assert transitions[2].metadata["reelflow"] == {"transition": "wipeleft",
                                                   "xfade": "wipeleft", "frames": 9}
    # the transition reads real frames: its handles end where the item's frames end
    for clip in clips_[1:]:
        head, tail = track.handles_of_child(clip)
        used = clip.source_range
        if tail is not None:
            assert used.end_time_exclusive().to_frames() + tail.to_frames() <= 120
        if head is not None:
            assert used.start_time.to_frames() - head.to_frames() >= 0


def test_otio_transitions_read_the_frames_the_mp4_blends(clips):
    # crossfade of 9 frames (odd) from red frames [0, 48) into blue frames [12, 60)
    items = [item(clips["red"], 2, transition="crossfade", transition_s=0.375),
             item(clips["blue"], 2, start_s=0.5)]
    track = deliver.build_timeline(items, FMT, name="t").tracks[0]
    assert track.range_of_child_at_index(1) == otio.opentime.TimeRange(
        otio.opentime.RationalTime(48 - 9, 24), otio.opentime.RationalTime(9, 24))
    (pre, _, post), = [x for x in otio.algorithms.track_with_expanded_transitions(track)
                       if isinstance(x, tuple)]
    assert (pre.source_range.start_time.to_frames(), pre.source_range.duration.to_frames()) \
        == (39, 9)  # the last 9 frames of red's 48
    assert (post.source_range.start_time.to_frames(),
            post.source_range.duration.to_frames()) == (12, 9)  # the first 9 of blue's


def test_otio_round_trips(clips, tmp_path):
    out = write_otio(_sequence(clips), FMT, tmp_path / "sequence.otio", name="teaser ✓",
                     metadata=[{"n": i} for i in range(5)])
    written = out.read_text(encoding="utf-8")
    again = otio.adapters.write_to_string(otio.adapters.read_from_file(str(out)), "otio_json")
    assert json.loads(again) == json.loads(written)
    assert again == written


def test_otio_duration_matches_the_assembled_mp4(clips, tmp_path):
    items = _sequence(clips)[1:4]
    result = assemble(items, FMT, tmp_path / "out.mp4", tmp_path / "cache")
    out = write_otio(items, FMT, tmp_path / "sequence.otio", name="check")
    assert otio.adapters.read_from_file(str(out)).duration().to_frames() == result.frames


def test_otio_refuses_wrong_metadata_and_unfit_transitions(clips, tmp_path):
    with pytest.raises(ValueError, match="metadata has 1 entries for 5 items"):
        write_otio(_sequence(clips), FMT, tmp_path / "a.otio", name="x", metadata=[{}])
    short = [item(clips["red"], 0.5, transition="crossfade", transition_s=1),
             item(clips["blue"], 2)]
    with pytest.raises(ValueError, match="does not fit"):
        write_otio(short, FMT, tmp_path / "b.otio", name="x")
    assert not list(tmp_path.iterdir())


# --- mezzanine ---------------------------------------------------------------------------

@pytest.mark.parametrize(("codec", "name", "pix_fmt"), [
    ("prores", "prores", "yuv422p10le"), ("dnxhr", "dnxhd", "yuv422p")])
def test_mezzanine_keeps_every_frame_with_pcm_audio(clips, tmp_path, codec, name, pix_fmt):
    out = export_mezzanine(clips["tone"], tmp_path / f"m-{codec}.mov", codec=codec)
    info, source = probe(out), probe(clips["tone"])
    assert info.video_codec == name and info.frames == source.frames == 120
    assert (info.width, info.height) == (source.width, source.height)
    assert info.audio_codec == "pcm_s24le"
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.pix_fmt == pix_fmt
        if codec == "prores":
            assert stream.codec_context.profile == "HQ"
        assert container.format.name.startswith("mov")


def test_mezzanine_refuses_unknown_codec(clips, tmp_path):
    with pytest.raises(ValueError, match="'h265' is not one of dnxhr, prores"):
        export_mezzanine(clips["red"], tmp_path / "m.mov", codec="h265")


# --- the Prefect task wrappers ------------------------------------------------------------

def test_tasks_are_thin_wrappers(clips, tmp_path):
    tasks = (deliver.poster_task, deliver.contact_sheet_task, deliver.otio_task,
             deliver.mezzanine_task)
    for task in tasks:
        assert task.cache_policy is NO_CACHE
        assert all(word in task.fn.__doc__ for word in ("Args:", "Returns:", "Example:"))
    with disable_run_logger():
        poster = rgb(deliver.poster_task.fn(clips["red"], tmp_path / "p.jpg"))
        assert poster.shape == (FMT.height, FMT.width, 3) and poster[90, 160, 0] > 200  # red
        sheet = deliver.contact_sheet_task.fn(
            [SheetEntry(label="only", video=clips["blue"], at_s=0)], tmp_path / "s.png",
            thumb_width=64)
        assert rgb(sheet).shape == (36 + 16, 64, 3)  # one entry: one cell
        otio_file = deliver.otio_task.fn([item(clips["red"], 1)], FMT, tmp_path / "t.otio",
                                         name="one")
        assert otio.adapters.read_from_file(str(otio_file)).duration().to_frames() == 24
        mezzanine = probe(deliver.mezzanine_task.fn(clips["red"], tmp_path / "m.mov"))
        assert (mezzanine.video_codec, mezzanine.frames) == ("prores", probe(clips["red"]).frames)
