"""The media layer against real ffmpeg on small synthetic clips (320x180, 24 fps)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import av
import pytest
from prefect.cache_policies import NO_CACHE
from prefect.logging import disable_run_logger

from reelflow._binaries import ffmpeg_exe
from reelflow.errors import FfmpegError, ReelflowError
from reelflow.tasks import media
from reelflow.tasks._assemble import _single_pass_reference
from reelflow.tasks._pieces import CopyPiece, EncodePiece, pieces_for, slots_for
from reelflow.tasks.media import OutputFormat, TimelineItem, assemble, conform, probe
from tests.tasks.conftest import (
    FMT,
    audio_seconds,
    item,
    pixel,
    psnr,
    rgb_frame,
    sha256,
    video_pts,
)

TICKS = FMT.timescale // FMT.fps  # pts step of one frame in our mp4s (512)


def assert_exact(path: Path, frames: int) -> None:
    """Decoded frame count, constant pts steps, and audio within one frame of video."""
    pts = video_pts(path)
    assert len(pts) == frames
    assert {b - a for a, b in zip(pts, pts[1:])} == {TICKS}
    assert abs(audio_seconds(path) - frames / FMT.fps) <= 1 / FMT.fps


def is_red(rgb) -> bool:
    return rgb[0] > 200 and rgb[1] < 40 and rgb[2] < 40


def is_blue(rgb) -> bool:
    return rgb[2] > 200 and rgb[0] < 40 and rgb[1] < 40


# --- models and probing -------------------------------------------------------------------

def test_output_format_key_and_gop():
    fmt = OutputFormat(width=1920, height=1080, fps=24)
    assert fmt.gop == 12 and fmt.timescale == 12288
    assert fmt.key() == OutputFormat(width=1920, height=1080, fps=24).key()
    assert fmt.key() != OutputFormat(width=1920, height=1080, fps=24, crf=18).key()
    with pytest.raises(ValueError, match="must be even"):
        OutputFormat(width=1921, height=1080, fps=24)
    with pytest.raises(ValueError, match="not an x264 preset"):
        OutputFormat(width=1920, height=1080, fps=24, preset="turbo")


def test_probe_counts_frames_and_streams(clips):
    info = probe(clips["pattern"])
    assert (info.width, info.height, info.fps, info.frames) == (320, 180, 24.0, 120)
    assert info.duration_s == 5.0 and info.video_codec == "h264"
    assert not info.has_audio and info.audio_codec is None
    tone = probe(clips["tone"])
    assert tone.has_audio and tone.audio_codec == "aac"
    wide = probe(clips["wide"], decode=False)
    assert (wide.width, wide.height, wide.fps, wide.frames) == (640, 480, 30.0, 150)


def test_probe_refuses_audio_only(tmp_path):
    path = tmp_path / "tone.m4a"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=0.2",
                    str(path)], check=True)
    with pytest.raises(ValueError, match="no video stream"):
        probe(path)


# --- conform --------------------------------------------------------------------------------

def test_conform_covers_retimes_and_is_cached(clips, tmp_path, ffmpeg_calls):
    out = conform(clips["wide"], sha256(clips["wide"]), FMT, tmp_path)
    info = probe(out)
    assert (info.width, info.height, info.fps, info.frames) == (320, 180, 24.0, 120)
    assert not info.has_audio
    # cover: 640x480 -> 320x240 then centre-crop 30 rows off the top, so the green
    # band (top 60 of 480 rows = 30 of 240) is gone; a stretch would keep it.
    top = pixel(rgb_frame(out, 0), 160, 1)
    assert is_blue(top), top
    # closed GOPs of exactly fmt.gop frames, each starting with a key frame
    with av.open(str(out)) as container:
        keys = sorted((p.pts, p.is_keyframe) for p in container.demux(video=0) if p.size)
    assert [i for i, (_, key) in enumerate(keys) if key] == list(range(0, 120, FMT.gop))
    stat, data = out.stat(), out.read_bytes()
    assert len(ffmpeg_calls) == 1

    again = conform(clips["wide"], sha256(clips["wide"]), FMT, tmp_path)
    assert again == out and len(ffmpeg_calls) == 1  # no second encode
    assert out.stat().st_mtime_ns == stat.st_mtime_ns and out.read_bytes() == data
    assert len(list(out.parent.glob("*.mp4"))) == 1


@pytest.mark.parametrize("fit", ["contain", "blur"])
def test_conform_contain_and_blur_keep_the_whole_picture(clips, tmp_path, fit):
    fmt = FMT.model_copy(update={"fit": fit})
    assert fmt.key() != FMT.key()
    out = conform(clips["wide"], sha256(clips["wide"]), fmt, tmp_path)
    assert probe(out).frames == 120  # the blur graph must not drop the last frame
    frame = rgb_frame(out, 119)
    assert pixel(frame, 160, 1)[1] > 100  # the green band is inside the 240x180 picture
    assert is_blue(pixel(frame, 160, 90))
    side = pixel(frame, 5, 90)  # the 40-pixel side bars: black, or the blurred copy
    assert max(side) < 20 if fit == "contain" else side[2] > 100, side


def test_ffmpeg_failure_raises_with_argv_and_stderr(tmp_path):
    bogus = tmp_path / "not-a-video.mp4"
    bogus.write_text("hello")
    with pytest.raises(FfmpegError) as caught:
        conform(bogus, sha256(bogus), FMT, tmp_path / "cache")
    err = caught.value
    assert err.argv[0] == ffmpeg_exe() and "-nostdin" in err.argv and str(bogus) in err.argv
    assert err.returncode != 0 and "not-a-video.mp4" in err.stderr_tail
    assert not list((tmp_path / "cache" / "conform").glob("*.mp4"))  # nothing half-written


def test_conform_refuses_a_source_that_is_not_its_hash(tmp_path, clips):
    """What is conformed must be the bytes its hash names: nothing is made from others."""
    with pytest.raises(ReelflowError, match="no longer matches its SHA-256"):
        conform(clips["red"], sha256(clips["blue"]), FMT, tmp_path / "cache")
    assert not (tmp_path / "cache" / "conform").exists()


# --- title cards ---------------------------------------------------------------------------

def test_title_card_renders_text_literally(tmp_path, ffmpeg_calls):
    text = 'He said: "100% \\o/ {x}"'
    cache = tmp_path / "it's a:cache [dir]"  # filter-argument escaping of the text file path
    card = media.render_title_card(text, background="#202020", duration_s=1.5, fmt=FMT,
                                   cache_dir=cache)
    empty = media.render_title_card("", background="#202020", duration_s=1.5, fmt=FMT,
                                    cache_dir=cache)
    info = probe(card)
    assert (info.width, info.height, info.frames, info.has_audio) == (320, 180, 36, False)
    with_text, blank = rgb_frame(card, 0), rgb_frame(empty, 0)
    changed = [i // 3 for i in range(0, len(blank), 3) if abs(with_text[i] - blank[i]) > 60]
    assert len(changed) > 300, "no text drawn"
    assert all(abs(v - 0x20) <= 3 for v in pixel(blank, 10, 10))
    xs, ys = [i % FMT.width for i in changed], [i // FMT.width for i in changed]
    assert abs((min(xs) + max(xs)) / 2 - FMT.width / 2) < 8  # centred
    assert abs((min(ys) + max(ys)) / 2 - FMT.height / 2) < 8
    # cached: the same card again runs no ffmpeg
    calls = len(ffmpeg_calls)
    assert media.render_title_card(text, background="#202020", duration_s=1.5, fmt=FMT,
                                   cache_dir=cache) == card
    assert len(ffmpeg_calls) == calls


def test_title_card_centres_each_line(tmp_path):
    card = media.render_title_card("Hi\na much longer line", duration_s=0.5, fmt=FMT,
                                   cache_dir=tmp_path)
    rgb = rgb_frame(card, 0)
    ink = [(i % FMT.width, i // FMT.width) for i in range(FMT.width * FMT.height)
           if rgb[3 * i] > 128]
    rows = sorted({y for _, y in ink})
    gap = next(b for a, b in zip(rows, rows[1:]) if b - a > 2)  # first row of line 2
    for line in ([x for x, y in ink if y < gap], [x for x, y in ink if y >= gap]):
        assert abs((min(line) + max(line)) / 2 - FMT.width / 2) < 4
    assert abs((rows[0] + rows[-1]) / 2 - FMT.height / 2) < 10


def test_title_card_does_not_expand_text(tmp_path):
    # With drawtext expansion on, %{pts} would print a different time on every frame.
    card = media.render_title_card("%{pts} %{n}", duration_s=0.5, fmt=FMT, cache_dir=tmp_path)
    assert rgb_frame(card, 0) == rgb_frame(card, 11)


def test_title_card_refuses_bad_colour(tmp_path):
    with pytest.raises(ValueError, match="not a colour"):
        media.render_title_card("x", background="red:y=1", duration_s=1, fmt=FMT,
                                cache_dir=tmp_path)


# --- assemble: exactness and transitions ----------------------------------------------------

def test_assemble_cuts_with_trims(clips, tmp_path):
    items = [item(clips["pattern"], start_s=0.3, length_s=2.0),
             item(clips["tone"], start_s=0.5, length_s=1.5),
             item(clips["wide"], length_s=2.0)]
    result = assemble(items, FMT, tmp_path / "out.mp4", tmp_path / "cache")
    assert result.frames == 48 + 36 + 48 and result.duration_s == pytest.approx(5.5)
    assert_exact(result.path, result.frames)


@pytest.mark.parametrize(("transition", "mid"), [("crossfade", "mixed"), ("fade", "dark"),
                                                 ("wipeleft", "split"), ("cut", "pure")])
def test_transition_midpoint(clips, tmp_path, transition, mid):
    items = [item(clips["red"], length_s=2, transition=transition, transition_s=1.0),
             item(clips["blue"], length_s=2)]
    result = assemble(items, FMT, tmp_path / "out.mp4", tmp_path / "cache")
    overlap = 0 if transition == "cut" else 24
    assert result.frames == 96 - overlap
    assert_exact(result.path, result.frames)
    frame = rgb_frame(result.path, 48 - overlap // 2)  # middle of the transition
    centre = pixel(frame, 160, 90)
    if mid == "mixed":  # crossfade: purple, both shots at once
        assert 90 < centre[0] < 170 and 90 < centre[2] < 170 and centre[1] < 40
    elif mid == "dark":  # through black: it gets near black, never purple
        brightness = [max(pixel(rgb_frame(result.path, n), 160, 90)) for n in range(28, 45, 2)]
        assert min(brightness) < 30 and max(centre) < 100 and centre[0] < 10, brightness
    elif mid == "split":  # a wipe: pure red on one side, pure blue on the other
        left, right = pixel(frame, 5, 90), pixel(frame, 314, 90)
        assert {is_red(left), is_blue(left)} == {True, False}
        assert {is_red(right), is_blue(right)} == {True, False}
        assert is_red(left) != is_red(right)
    else:  # a cut never shows a mixed frame
        colours = [pixel(rgb_frame(result.path, n), 160, 90) for n in (46, 47, 48, 49)]
        assert [is_red(c) for c in colours] == [True, True, False, False]
        assert all(is_red(c) or is_blue(c) for c in colours)


def test_smart_render_matches_single_pass(clips, tmp_path):
    """Copied spans, widened seams and a shot too short for its own span vs one graph."""
    items = [
        item(clips["pattern"], start_s=0.3, length_s=2.1, transition="crossfade",
             transition_s=0.4, label="a"),
        # 0.9 s between two transitions leaves no whole GOP: one seam spans three clips
        item(clips["tone"], start_s=1.05, length_s=0.9, transition="wipeleft",
             transition_s=0.3, label="short"),
        item(clips["tone2"], start_s=0.2, length_s=1.7, transition="cut", label="c"),
        item(clips["pattern"], start_s=2.0, length_s=1.0, transition="fade",
             transition_s=0.5, label="again"),
        # transitions in and out use every frame of this one: nothing of it is solo
        item(clips["tone2"], start_s=3.0, length_s=1.0, transition="crossfade",
             transition_s=0.5, label="tight"),
        item(clips["wide"], length_s=1.5, label="last"),
    ]
    result = assemble(items, FMT, tmp_path / "smart.mp4", tmp_path / "cache")
    frames = sum(round(it.length_s * 24) for it in items) - (10 + 7 + 0 + 12 + 12)
    assert result.frames == frames
    assert_exact(result.path, frames)
    reference = _single_pass_reference(items, FMT, tmp_path / "reference.mp4")
    assert_exact(reference, frames)
    average, per_frame = psnr(result.path, reference)
    assert average >= 40, per_frame
    assert min(per_frame) >= 30, per_frame  # an off-by-one seam drops far below this
    # every piece shares one SPS/PPS, which is what lets the concat copy them
    pieces = list((tmp_path / "cache").glob("pieces/*.mp4"))
    extradata = set()
    for piece in pieces:
        with av.open(str(piece)) as container:
            extradata.add(bytes(container.streams.video[0].codec_context.extradata))
    assert len(pieces) > 5 and len(extradata) == 1


def test_audio_follows_items_without_gaps(clips, tmp_path):
    items = [item(clips["pattern"], length_s=1.0), item(clips["tone"], length_s=1.0),
             item(clips["tone2"], length_s=1.0)]
    result = assemble(items, FMT, tmp_path / "out.mp4", tmp_path / "cache")
    with av.open(str(result.path)) as container:
        stream = container.streams.audio[0]
        assert (stream.rate, stream.channels) == (48000, 2)
        pcm = [abs(v) for f in container.decode(stream) for v in _floats(f)]
    window = 480  # 10 ms
    levels = [max(pcm[i:i + window]) for i in range(0, len(pcm) - window, window)]
    assert max(levels[:95]) < 0.001  # silent shot stays silent
    assert min(levels[101:295]) > 0.05, "a gap of silence in the tones or at their join"


def _floats(frame) -> list[float]:
    import array

    samples = array.array("f", bytes(frame.planes[0]))  # planar float: left channel
    return list(samples[:frame.samples])


# --- assemble: caching ----------------------------------------------------------------------

def test_rerun_encodes_nothing_and_gives_same_bytes(clips, tmp_path, ffmpeg_calls):
    items = [item(clips["pattern"], start_s=0.25, length_s=2, transition="crossfade",
                  transition_s=0.5),
             item(clips["tone"], length_s=2, transition="slideright", transition_s=0.25),
             item(clips["red"], length_s=1)]
    first = assemble(items, FMT, tmp_path / "out.mp4", tmp_path / "cache")
    data = first.path.read_bytes()
    assert first.encoded_pieces > 0
    calls = len(ffmpeg_calls)
    second = assemble(items, FMT, tmp_path / "out.mp4", tmp_path / "cache")
    assert second.encoded_pieces == 0 and len(ffmpeg_calls) == calls
    assert second.path.read_bytes() == data
    # the output's hash comes from the cache entry's record (deliverables key on it, unhashed)
    assert first.sha256 == second.sha256 == hashlib.sha256(data).hexdigest()
    # a fresh cache rebuilds the very same bytes
    third = assemble(items, FMT, tmp_path / "again.mp4", tmp_path / "cache2")
    assert third.path.read_bytes() == data


def test_changing_one_item_reencodes_only_its_pieces(clips, tmp_path):
    base = [item(clips["pattern"], length_s=3, transition="crossfade", transition_s=0.5),
            item(clips["tone"], start_s=0.5, length_s=3, transition="crossfade",
                 transition_s=0.5),
            item(clips["tone2"], length_s=3)]
    cache = tmp_path / "cache"
    assemble(base, FMT, tmp_path / "a.mp4", cache)
    changed = [base[0], item(clips["red"], start_s=0.5, length_s=3, transition="crossfade",
                             transition_s=0.5), base[2]]
    result = assemble(changed, FMT, tmp_path / "b.mp4", cache)
    red = sha256(clips["red"])
    touching = [p for p in _pieces(changed, cache) if isinstance(p, EncodePiece)
                and any(r.sha256 == red for r in p.runs)]
    assert len(touching) == 2  # its two seams (its trim edges are inside them)
    assert result.encoded_pieces == 1 + len(touching)  # its conform + those seams
    assert_exact(result.path, 3 * 72 - 24)


def test_reordering_reencodes_only_the_affected_seams(clips, tmp_path):
    a, b, c, d = (item(clips[name], length_s=3, transition="crossfade", transition_s=0.5,
                       label=name) for name in ("pattern", "tone", "tone2", "wide"))
    cache = tmp_path / "cache"
    assemble([a, b, c, d], FMT, tmp_path / "abcd.mp4", cache)
    reordered = [a, b, d, c]
    seams = [p for p in _pieces(reordered, cache) if isinstance(p, EncodePiece)]
    labels = [[next(it.label for it in reordered if it.source_sha256 == r.sha256)
               for r in p.runs] for p in seams]
    assert labels == [["pattern", "tone"], ["tone", "wide"], ["wide", "tone2"]]
    result = assemble(reordered, FMT, tmp_path / "abdc.mp4", cache)
    assert result.encoded_pieces == 2  # a->b is reused; b->d and d->c are new
    assert_exact(result.path, 4 * 72 - 3 * 12)


def _pieces(items: list[TimelineItem], cache: Path):
    slots = slots_for(items, FMT.fps)
    clips = [conform(it.source, it.source_sha256, FMT, cache) for it in items]
    return pieces_for(slots, clips, [probe(c, decode=False).frames for c in clips], FMT)


def test_plan_copies_whole_gops_and_reencodes_only_edges(clips, tmp_path):
    items = [item(clips["pattern"], length_s=5), item(clips["tone"], start_s=0.25, length_s=4)]
    pieces = _pieces(items, tmp_path)
    kinds = [(type(p).__name__, p.frames) for p in pieces]
    # whole clip: one copy; frames 6..102: partial GOPs at both trim edges encoded,
    # the whole GOPs between (12..96) copied
    assert kinds == [("CopyPiece", 120), ("EncodePiece", 6), ("CopyPiece", 84),
                     ("EncodePiece", 6)]
    assert all(p.run.start % FMT.gop == 0 for p in pieces if isinstance(p, CopyPiece))


# --- validation -----------------------------------------------------------------------------

def test_transition_must_fit_neighbours(clips):
    with pytest.raises(ValueError, match=r"item 1 \(a\): crossfade of 1.5s \(36 frames\) "
                                         r"into item 2 \(b\) does not fit: item 2 \(b\) has "
                                         r"only 24 frames"):
        slots_for([item(clips["red"], 2, transition="crossfade", transition_s=1.5, label="a"),
                   item(clips["blue"], 1, label="b")], 24)
    with pytest.raises(ValueError, match=r"item 2 \(mid\): incoming \(12\) and outgoing "
                                         r"\(18\) transition frames overlap"):
        slots_for([item(clips["red"], 2, transition="crossfade", transition_s=0.5),
                   item(clips["blue"], 1, transition="wipeleft", transition_s=0.75,
                        label="mid"),
                   item(clips["red"], 2)], 24)


def test_trim_past_clip_end_is_refused(clips, tmp_path):
    with pytest.raises(ValueError, match=r"item 1 \(long\): frames 48..168 \(2s \+ 5s\) run "
                                         r"past the end of the clip \(120 frames, 5s\)"):
        assemble([item(clips["red"], start_s=2, length_s=5, label="long")], FMT,
                 tmp_path / "out.mp4", tmp_path / "cache")
    assert not (tmp_path / "out.mp4").exists()


def test_unknown_transition_is_refused(clips):
    with pytest.raises(ValueError, match="unknown transition 'swirl'"):
        item(clips["red"], transition="swirl", transition_s=1)


# --- the Prefect task wrappers ------------------------------------------------------------

def test_tasks_are_thin_wrappers(clips, tmp_path):
    for task in (media.probe_clip, media.conform_clip, media.make_title_card,
                 media.assemble_sequence):
        assert task.cache_policy is NO_CACHE
    with disable_run_logger():
        assert media.probe_clip.fn(clips["red"]).frames == 120
        card = media.make_title_card.fn("Coming 2027", duration_s=1, fmt=FMT,
                                        cache_dir=tmp_path)
        clip = media.conform_clip.fn(clips["red"], sha256(clips["red"]), FMT, tmp_path)
        result = media.assemble_sequence.fn(
            [TimelineItem(source=card, source_sha256=f"card:{card.stem}", length_s=1,
                          transition="crossfade", transition_s=0.5),
             TimelineItem(source=clip, source_sha256=sha256(clip), length_s=1)],
            FMT, tmp_path / "out.mp4", tmp_path)
    assert result.frames == 36 and result.path.exists()
