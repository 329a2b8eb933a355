"""The audio mix: music bed, fades, ducking, two-pass loudness, caching. Real ffmpeg encodes.

Levels are measured on the decoded output: band levels with an FFT around the music's
frequency (220 Hz; the clips' tones are 440/660 Hz) and integrated loudness with ffmpeg's
own ``ebur128`` scanner, independent of the loudnorm filter that set it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from prefect.logging import disable_run_logger

from reelflow._binaries import ffmpeg_exe
from reelflow.tasks import media
from reelflow.tasks.media import AudioMix, assemble
from tests.helpers import damage
from tests.tasks.conftest import FMT, audio_seconds, item, sha256

MUSIC_HZ = 220


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> Path:
    """A 3 s 220 Hz tone at 44.1 kHz mono AAC: shorter than the sequences, so it loops."""
    path = tmp_path_factory.mktemp("music") / "bed.m4a"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"sine=frequency={MUSIC_HZ}:sample_rate=44100",
                    "-t", "3", "-c:a", "aac", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache for the module, so clips are conformed once."""
    return tmp_path_factory.mktemp("audio-cache")


def samples(path: Path) -> np.ndarray:
    """The decoded audio, channels averaged, after checking it is 48 kHz stereo AAC."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.rate, stream.channels) == ("aac", 48000, 2)
        return np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1).mean(0)


def rms_db(x: np.ndarray, start: float, end: float) -> float:
    """RMS level of seconds [start, end) in dBFS."""
    seg = x[int(start * 48000):int(end * 48000)]
    return 20 * np.log10(np.sqrt(np.mean(seg ** 2)) + 1e-12)


def band_db(x: np.ndarray, start: float, end: float, hz: float = MUSIC_HZ) -> float:
    """Level of the spectrum within 15 Hz of ``hz`` over seconds [start, end), in dB."""
    seg = x[int(start * 48000):int(end * 48000)]
    window = np.hanning(len(seg))
    spectrum = np.abs(np.fft.rfft(seg * window)) / window.sum()  # independent of length
    freqs = np.fft.rfftfreq(len(seg), 1 / 48000)
    band = spectrum[np.abs(freqs - hz) <= 15]
    return 10 * np.log10(np.sum(band ** 2) + 1e-20)


def integrated_lufs(path: Path) -> float:
    """Integrated loudness of the file by ffmpeg's ebur128 scanner."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-i", str(path),
                           "-map", "0:a", "-af", "ebur128", "-f", "null", "-"],
                          check=True, capture_output=True, text=True)
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", proc.stderr)[-1])


def check_lengths(result) -> np.ndarray:
    """Audio lasts as long as the video within one frame; return the samples."""
    assert abs(audio_seconds(result.path) - result.frames / FMT.fps) <= 1 / FMT.fps
    return samples(result.path)


def test_music_bed_loops_and_fades(clips, music, cache, tmp_path):
    items = [item(clips["pattern"], 2), item(clips["red"], 2), item(clips["blue"], 2)]
    result = assemble(items, FMT, tmp_path / "bed.mp4", cache,
                      mix=AudioMix(music=music, loudness=None))
    x = check_lengths(result)
    assert result.frames == 144
    middle = rms_db(x, 1.5, 2.5)
    assert middle > -40, "the music bed is missing"
    assert rms_db(x, 0, 0.2) < middle - 10, "no fade-in"
    assert rms_db(x, 5.9, 6.0) < middle - 15, "no fade-out"
    # the 3 s music file loops: 3.2..3.8 s (before the fade-out) is as loud as the middle
    assert abs(rms_db(x, 3.2, 3.8) - middle) < 1.5


@pytest.mark.parametrize("target", [-14.0, -20.0])
def test_loudness_two_pass(clips, music, cache, tmp_path, ffmpeg_calls, target):
    items = [item(clips["tone"], 2, transition="crossfade", transition_s=0.5),
             item(clips["pattern"], 2), item(clips["tone2"], 2)]
    result = assemble(items, FMT, tmp_path / "loud.mp4", cache,
                      mix=AudioMix(music=music, music_volume=0.3, loudness=target))
    check_lengths(result)
    assert abs(integrated_lufs(result.path) - target) <= 1.0
    measure = [c for c in ffmpeg_calls if any("print_format=json" in a for a in c)]
    apply = [c for c in ffmpeg_calls if any("linear=true" in a for a in c)]
    assert len(measure) == 1 and len(apply) == 1
    assert "measured_I=" in " ".join(apply[0])
    # one AAC encode in all: the measuring pass writes nothing
    assert sum(c.count("aac") for c in ffmpeg_calls) == 1


def test_a_rebuild_whose_audio_is_unchanged_skips_the_measuring_pass(clips, music, tmp_path,
                                                                       ffmpeg_calls):
    """A silent clip swapped for another of the same length: the mix hears the same, so
    the kept track is copied into the mux (no measuring, no pass 2, no AAC encode); with
    the track gone the kept loudness measurement is used and only pass 2 runs."""
    cache = tmp_path / "cache"
    mix = AudioMix(music=music, music_volume=0.3, loudness=-16)
    first = assemble([item(clips["tone"], 2), item(clips["pattern"], 2)], FMT,
                     tmp_path / "a.mp4", cache, mix=mix)
    ffmpeg_calls.clear()
    second = assemble([item(clips["tone"], 2), item(clips["red"], 2)], FMT,
                      tmp_path / "b.mp4", cache, mix=mix)
    check_lengths(second)
    assert not [c for c in ffmpeg_calls if any("print_format=json" in a for a in c)]
    assert not [c for c in ffmpeg_calls if any("linear=true" in a for a in c)]
    assert not [c for c in ffmpeg_calls if "aac" in c]      # the kept track, stream-copied
    assert abs(integrated_lufs(second.path) - integrated_lufs(first.path)) <= 0.2
    shutil.rmtree(cache / "audio")
    shutil.rmtree(cache / "final")
    ffmpeg_calls.clear()
    assemble([item(clips["tone"], 2), item(clips["red"], 2)], FMT, tmp_path / "b2.mp4", cache,
             mix=mix)
    assert not [c for c in ffmpeg_calls if any("print_format=json" in a for a in c)]
    assert len([c for c in ffmpeg_calls if any("linear=true" in a for a in c)]) == 1
    [kept] = (cache / "loudness").glob("*.json")
    damage(kept, "bytes changed")                     # a damaged measurement is made again
    shutil.rmtree(cache / "final")
    shutil.rmtree(cache / "audio")
    ffmpeg_calls.clear()
    assemble([item(clips["tone"], 2), item(clips["red"], 2)], FMT, tmp_path / "c.mp4", cache,
             mix=mix)
    assert len([c for c in ffmpeg_calls if any("print_format=json" in a for a in c)]) == 1
    ffmpeg_calls.clear()
    assemble([item(clips["tone"], 2), item(clips["pattern"], 1)], FMT, tmp_path / "d.mp4",
             cache, mix=mix)                          # a length changed: measured again
    assert len([c for c in ffmpeg_calls if any("print_format=json" in a for a in c)]) == 1


def test_ducking_lowers_music_under_clip_audio(clips, music, cache, tmp_path):
    items = [item(clips["pattern"], 2), item(clips["tone2"], 2), item(clips["pattern"], 2)]
    levels = {}
    for duck in (True, False):
        result = assemble(items, FMT, tmp_path / f"duck-{duck}.mp4", cache,
                          mix=AudioMix(music=music, duck=duck, loudness=None))
        x = check_lengths(result)
        # windows clear of the fades and of the compressor's attack/release
        levels[duck] = band_db(x, 1.2, 1.8), band_db(x, 2.6, 3.6), band_db(x, 4.6, 5.0)
    (ducked_out, ducked_in, ducked_after), (plain_out, plain_in, plain_after) = (
        levels[True], levels[False])
    assert abs(plain_in - plain_out) < 1.0, levels
    assert ducked_in < ducked_out - 6, levels
    assert ducked_in < plain_in - 6, levels
    assert abs(ducked_out - plain_out) < 1.0, levels
    # and it comes back after the clip (a split silence source once cut it off for good)
    assert abs(ducked_after - plain_after) < 1.0, levels


def test_silent_sequence_stays_silent(clips, cache, tmp_path, ffmpeg_calls):
    items = [item(clips["pattern"], 1), item(clips["red"], 1)]
    result = assemble(items, FMT, tmp_path / "silent.mp4", cache, mix=AudioMix(loudness=-14))
    x = check_lengths(result)
    assert np.max(np.abs(x)) == 0
    assert not any("loudnorm" in " ".join(c) for c in ffmpeg_calls)


def test_rerun_is_cached_and_new_mix_remixes_audio_only(clips, music, cache, tmp_path,
                                                        ffmpeg_calls):
    items = [item(clips["tone"], 2), item(clips["pattern"], 2)]
    mix = AudioMix(music=music, music_volume=0.5, loudness=None)
    first = assemble(items, FMT, tmp_path / "a.mp4", cache, mix=mix)
    ffmpeg_calls.clear()
    again = assemble(items, FMT, tmp_path / "b.mp4", cache,
                     mix=mix.model_copy(update={"music_sha256": sha256(music)}))
    assert again.encoded_pieces == 0 and not ffmpeg_calls
    assert again.path.read_bytes() == first.path.read_bytes()
    quieter = assemble(items, FMT, tmp_path / "c.mp4", cache,
                       mix=mix.model_copy(update={"music_volume": 0.25}))
    assert quieter.encoded_pieces == 0
    # the track, then the mux: no video encode
    assert len(ffmpeg_calls) == 2 and not [c for c in ffmpeg_calls if "libx264" in c]
    assert quieter.path.read_bytes() != first.path.read_bytes()
    # the music (alone in the second item) is 6 dB down: music_volume is linear
    drop = band_db(samples(quieter.path), 2.5, 3.0) - band_db(samples(first.path), 2.5, 3.0)
    assert abs(drop - 20 * np.log10(0.5)) < 0.5


def test_missing_music_is_refused_before_encoding(clips, cache, tmp_path, ffmpeg_calls):
    with pytest.raises(ValueError, match="music: .*nope.mp3 does not exist"):
        assemble([item(clips["red"], 1)], FMT, tmp_path / "x.mp4", cache,
                 mix=AudioMix(music=tmp_path / "nope.mp3"))
    assert not ffmpeg_calls


def test_task_takes_the_mix_and_output_is_deterministic(clips, music, cache, tmp_path):
    items = [item(clips["tone"], 1, transition="crossfade", transition_s=0.25),
             item(clips["red"], 1)]
    mix = AudioMix(music=str(music), music_volume=0.4, loudness=-16)
    with disable_run_logger():
        result = media.assemble_sequence.fn(items, FMT, tmp_path / "task.mp4", cache, mix=mix)
    fresh = assemble(items, FMT, tmp_path / "fresh.mp4", tmp_path / "other-cache", mix=mix)
    assert fresh.path.read_bytes() == result.path.read_bytes()
    assert abs(integrated_lufs(result.path) - -16) <= 1.0
