"""Text overlays on shots and preview quality, against real ffmpeg (320x180 / 640x360, 24 fps)."""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from pathlib import Path

import av
import ffmpeg
import pytest

from reelflow._binaries import ffmpeg_exe
from reelflow.tasks import media
from reelflow.tasks._ffmpeg import atomic_output, run_stream, x264_output_args
from reelflow.tasks._pieces import CopyPiece, EncodePiece, pieces_for, slots_for
from reelflow.tasks._encode import Join, chain, conform_filters, frame_range
from reelflow.tasks._text import PLACEHOLDER, TextOverlaySpec, draw_overlays, printable_text
from reelflow.tasks.media import OutputFormat, TimelineItem, assemble, conform, probe
from tests.tasks.conftest import FMT, item, psnr, sha256, video_pts

TICKS = FMT.timescale // FMT.fps


def gray_frames(path: Path, fmt: OutputFormat = FMT) -> list[bytes]:
    """Every frame's luma plane (one ffmpeg run)."""
    raw = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
                          "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         check=True, capture_output=True).stdout
    size = fmt.width * fmt.height
    return [raw[i:i + size] for i in range(0, len(raw), size)]


def changed(a: bytes, b: bytes, threshold: int = 40) -> list[tuple[int, int]]:
    """(x, y) of the pixels whose luma differs by more than ``threshold``."""
    return [(i % FMT.width, i // FMT.width) for i, (p, q) in enumerate(zip(a, b))
            if abs(p - q) > threshold]


def assert_steps(path: Path, frames: int) -> None:
    pts = video_pts(path)
    assert len(pts) == frames
    assert {b - a for a, b in zip(pts, pts[1:])} == {TICKS}


def reference_video(items: list[TimelineItem], fmt: OutputFormat, out: Path) -> Path:
    """The single-pass graph with overlays: conform, trim, draw each item's text, chain."""
    slots = slots_for(items, fmt.fps)
    with tempfile.TemporaryDirectory() as tmpdir:
        streams = []
        for it, sl in zip(items, slots):
            stream = frame_range(conform_filters(ffmpeg.input(str(it.source)).video, fmt),
                                 sl.start, sl.end, fmt)
            streams.append(draw_overlays(stream, sl.overlays, sl.frames, fmt, Path(tmpdir)))
        joins = [Join(sl.transition, sl.t_out) for sl in slots[:-1]]
        video, _ = chain(streams, [sl.frames for sl in slots], joins, fmt)
        with atomic_output(out) as tmp:
            run_stream(ffmpeg.output(video, str(tmp), **x264_output_args(fmt)))
    return out


# --- the model and the plan -----------------------------------------------------------------

def test_overlay_spec_validation():
    assert TextOverlaySpec(content="Lisbon, 6am").position == "bottom-left"
    with pytest.raises(ValueError, match="position 'middle' is not one of top-left"):
        TextOverlaySpec(content="x", position="middle")
    with pytest.raises(ValueError, match="end_s 1.0 is not after start_s 2.0"):
        TextOverlaySpec(content="x", start_s=2, end_s=1)
    with pytest.raises(ValueError, match="text colour 'red;x' is not a colour"):
        TextOverlaySpec(content="x", colour="red;x")
    with pytest.raises(ValueError, match="blank"):
        TextOverlaySpec(content="  ")


def test_overlay_must_show_on_some_frame(clips):
    late = item(clips["red"], length_s=2, label="late",
                overlays=(TextOverlaySpec(content="too late", start_s=2.5),))
    with pytest.raises(ValueError, match=r"item 1 \(late\): text 1 \('too late'\) shows on no "
                                         r"frame: from 2.5s to 2s of a 2s item"):
        slots_for([late], 24)
    # an end past the item is cut to the item
    long = item(clips["red"], length_s=2, overlays=(TextOverlaySpec(content="x", end_s=9),))
    assert [(w.start, w.end) for w in slots_for([long], 24)[0].overlays] == [(0, 48)]


def test_plan_reencodes_only_the_gops_an_overlay_touches(clips):
    spec = TextOverlaySpec(content="hi", start_s=1.1, end_s=1.6)  # frames 26..38
    items = [item(clips["pattern"], overlays=(spec,))]
    pieces = pieces_for(slots_for(items, 24), [Path("clip.mp4")], [120], FMT)
    kinds = [(type(p).__name__, p.frames) for p in pieces]
    assert kinds == [("CopyPiece", 24), ("EncodePiece", 24), ("CopyPiece", 72)]
    run = pieces[1].runs[0]
    assert (run.start, run.end) == (24, 48)
    assert [(w.start, w.end) for w in run.overlays] == [(2, 14)]  # counted from the run
    # the key follows what is drawn; the copied spans do not depend on the text
    other = pieces_for(slots_for([item(clips["pattern"], overlays=(
        spec.model_copy(update={"content": "ho"}),))], 24), [Path("clip.mp4")], [120], FMT)
    assert [p.key for p in other] != [p.key for p in pieces]
    assert other[0].key == pieces[0].key and other[2].key == pieces[2].key


def test_printable_text_replaces_missing_glyphs(caplog):
    literal = 'He said: "100% \\o/ {x}"'
    assert printable_text(literal) == literal
    with caplog.at_level(logging.WARNING, logger="reelflow.tasks.media"):
        # a ZWJ family and a skin-toned thumb are one placeholder each; CJK too
        shown = printable_text("go \U0001f468\u200d\U0001f469\u200d\U0001f467 "
                               "\U0001f44d\U0001f3fd \u4e2d!")
    assert shown == f"go {PLACEHOLDER} {PLACEHOLDER} {PLACEHOLDER}!"
    assert "U+1F468" in caplog.text and "U+4E2D" in caplog.text


# --- rendering ------------------------------------------------------------------------------

def test_overlay_drawn_only_within_its_window(clips, tmp_path):
    cache = tmp_path / "cache"
    plain = assemble([item(clips["pattern"], length_s=4)], FMT, tmp_path / "plain.mp4", cache)
    spec = TextOverlaySpec(content="Lisbon, 6am", start_s=1.0, end_s=2.0)  # frames 24..47
    text = assemble([item(clips["pattern"], length_s=4, overlays=(spec,))], FMT,
                    tmp_path / "text.mp4", cache)
    assert text.frames == plain.frames == 96
    assert_steps(text.path, 96)
    a, b = gray_frames(plain.path), gray_frames(text.path)
    assert len(a) == len(b) == 96
    for n in (24, 35, 47):
        ink = changed(a[n], b[n])
        assert len(ink) > 200, n
        assert max(x for x, _ in ink) < FMT.width * 0.75  # bottom-left
        assert min(y for _, y in ink) > FMT.height / 2
    for n in (23, 48):  # re-encoded (same GOP) but untouched: only coding noise
        assert len(changed(a[n], b[n], threshold=20)) == 0, n
    for n in list(range(0, 12)) + list(range(60, 96)):  # outside: copied, bit-identical
        assert a[n] == b[n], n


def test_positions_change_different_regions(clips, tmp_path):
    cache = tmp_path / "cache"
    plain = gray_frames(assemble([item(clips["blue"], length_s=0.5)], FMT,
                                 tmp_path / "plain.mp4", cache).path)[6]
    boxes = {}
    for position in ("top-left", "bottom-right", "center"):
        spec = TextOverlaySpec(content="Hello", position=position, colour="yellow")
        out = assemble([item(clips["blue"], length_s=0.5, overlays=(spec,))], FMT,
                       tmp_path / f"{position}.mp4", cache)
        ink = changed(plain, gray_frames(out.path)[6])
        xs, ys = [x for x, _ in ink], [y for _, y in ink]
        boxes[position] = (min(xs), min(ys), max(xs), max(ys))
    left, top, right, bottom = boxes["top-left"]
    assert right < FMT.width / 2 and bottom < FMT.height / 2
    left, top, right, bottom = boxes["bottom-right"]
    assert left > FMT.width / 2 and top > FMT.height / 2
    left, top, right, bottom = boxes["center"]
    assert abs((left + right) / 2 - FMT.width / 2) < 8
    assert abs((top + bottom) / 2 - FMT.height / 2) < 8


def test_unicode_and_emoji_render(clips, tmp_path, caplog):
    cache = tmp_path / "it's a:cache [dir]"
    plain = gray_frames(assemble([item(clips["red"], length_s=0.5)], FMT,
                                 tmp_path / "plain.mp4", cache).path)[3]
    texts = ['He said: "100% \\o/ {x}"', "\U0001f3ac\U0001f680 launch \u4e2d %{pts}"]
    with caplog.at_level(logging.WARNING, logger="reelflow.tasks.media"):
        for i, content in enumerate(texts):
            spec = TextOverlaySpec(content=content, position="top")
            out = assemble([item(clips["red"], length_s=0.5, overlays=(spec,))], FMT,
                           tmp_path / f"{i}.mp4", cache)
            frames = gray_frames(out.path)
            assert len(frames) == 12 and len(changed(plain, frames[3])) > 200
            # expansion is off: %{pts} is not a clock (only coding noise between frames)
            assert len(changed(frames[0], frames[11])) < 10
    assert "no glyph for U+1F3AC U+1F680 U+4E2D" in caplog.text
    card = media.render_title_card("\U0001f3ac Coming 2027", duration_s=0.5, fmt=FMT,
                                   cache_dir=cache)
    assert probe(card).frames == 12


def test_overlays_across_a_crossfade_match_single_pass(clips, tmp_path):
    items = [
        item(clips["pattern"], start_s=0.3, length_s=2, transition="crossfade",
             transition_s=0.5, overlays=(TextOverlaySpec(content="first", start_s=1.0),)),
        item(clips["tone"], length_s=2, transition="wipeleft", transition_s=0.25, overlays=(
            TextOverlaySpec(content="second: 50%", position="top-right", end_s=1.0),
            TextOverlaySpec(content="\u00bfd\u00f3nde?", position="center", size=30,
                            colour="#ffcc00", start_s=0.5, end_s=1.8))),
        item(clips["tone2"], length_s=1.5, overlays=(TextOverlaySpec(content="end"),)),
    ]
    frames = 48 + 48 + 36 - 12 - 6
    result = assemble(items, FMT, tmp_path / "smart.mp4", tmp_path / "cache")
    assert result.frames == frames
    assert_steps(result.path, frames)
    reference = reference_video(items, FMT, tmp_path / "reference.mp4")
    assert_steps(reference, frames)
    average, per_frame = psnr(result.path, reference)
    assert average >= 40 and min(per_frame) >= 30, per_frame
    # the text is in the crossfade: frames there differ from the same cut without text
    bare = [it.model_copy(update={"overlays": ()}) for it in items]
    plain = assemble(bare, FMT, tmp_path / "plain.mp4", tmp_path / "cache")
    a, b = gray_frames(plain.path), gray_frames(result.path)
    assert len(changed(a[40], b[40], threshold=25)) > 100  # mid-crossfade, first's text
    # a rerun finds everything in the cache
    again = assemble(items, FMT, tmp_path / "smart2.mp4", tmp_path / "cache")
    assert again.encoded_pieces == 0 and again.path.read_bytes() == result.path.read_bytes()


def test_changing_overlay_text_reencodes_only_its_pieces(clips, tmp_path):
    def timeline(text: str) -> list[TimelineItem]:
        spec = TextOverlaySpec(content=text, start_s=1.0, end_s=1.5)
        return [item(clips["pattern"], length_s=3, transition="crossfade", transition_s=0.5),
                item(clips["tone"], start_s=0.5, length_s=3, overlays=(spec,)),
                item(clips["red"], length_s=2)]

    cache = tmp_path / "cache"
    first = assemble(timeline("one"), FMT, tmp_path / "a.mp4", cache)
    slots = slots_for(timeline("two"), FMT.fps)
    pieces = pieces_for(slots, [Path(f"{i}.mp4") for i in range(3)], [120] * 3, FMT)
    overlaid = [p for p in pieces if isinstance(p, EncodePiece)
                and any(r.overlays for r in p.runs)]
    assert len(overlaid) == 1 and any(isinstance(p, CopyPiece) for p in pieces)
    second = assemble(timeline("two"), FMT, tmp_path / "b.mp4", cache)
    assert second.encoded_pieces == len(overlaid) < first.encoded_pieces
    assert_steps(second.path, 72 + 72 + 48 - 12)


# --- preview quality ------------------------------------------------------------------------

def test_preview_quality_is_cached_apart_concats_by_copy_and_is_faster(clips, tmp_path):
    preview = FMT.model_copy(update={"quality": "preview"})
    assert preview.key() != FMT.key()
    assert (preview.encode_preset, preview.encode_crf) == ("ultrafast", 28)
    items = [item(clips["pattern"], start_s=0.25, length_s=2, transition="crossfade",
                  transition_s=0.5, overlays=(TextOverlaySpec(content="draft", end_s=0.5),)),
             item(clips["tone"], length_s=2)]
    result = assemble(items, preview, tmp_path / "draft.mp4", tmp_path / "cache")
    assert_steps(result.path, 84)
    pieces = list((tmp_path / "cache").glob("pieces/*.mp4"))
    extradata = set()
    for piece in pieces:
        with av.open(str(piece)) as container:
            extradata.add(bytes(container.streams.video[0].codec_context.extradata))
    assert len(pieces) >= 3 and len(extradata) == 1
    # a 5 s 640x360 conform: preview takes less time than final (best of two each)
    big = OutputFormat(width=640, height=360, fps=24)
    source = tmp_path / "big.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=s=640x360:r=24:d=5", "-c:v", "libx264", "-preset", "ultrafast",
                    "-crf", "12", str(source)], check=True)
    timings = {}
    for fmt in (big, big.model_copy(update={"quality": "preview"})):
        runs = []
        for attempt in range(2):
            start = time.perf_counter()
            out = conform(source, sha256(source), fmt, tmp_path / f"c{attempt}")
            runs.append(time.perf_counter() - start)
        assert probe(out, decode=False).frames == 120
        timings[fmt.quality] = min(runs)
    assert timings["preview"] < timings["final"], timings
