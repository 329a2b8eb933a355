"""The audio mix of an assembled sequence, built as ffmpeg filtergraphs (no samples in Python).

One track for the whole sequence (shared/media-notes.md, step 4):

* the clip bus: each item's own audio (silence where it has none) cut and padded to its
  video span, acrossfaded where the video crossfades;
* an optional music bed, looped or trimmed to the sequence, scaled by ``music_volume``,
  faded in and out, and ducked under the clip bus with ``sidechaincompress``;
* two-pass EBU R128 ``loudnorm``: pass 1 measures the mix (``print_format=json`` into a
  ``stats_file``), pass 2 applies the measured values with ``linear=true`` in the final
  mux, so the AAC encode happens once. A silent mix is left silent.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import av
import ffmpeg
from pydantic import BaseModel, ConfigDict, Field

from reelflow import defaults as builtin
from reelflow.tasks._ffmpeg import cache_output, cached_file, content_key, run_stream
from reelflow.tasks._pieces import Slot
from reelflow.tasks._encode import fan_out
from reelflow.tasks._verify import sha256_file

__all__ = ["AUDIO_RATE", "AudioMix", "audio_output_args", "audio_track", "check_music",
           "encoded_track", "master_track", "sequence_samples"]

logger = logging.getLogger("reelflow.tasks.media")

#: The delivery audio: AAC, 48 kHz stereo.
AUDIO_RATE = 48000
AUDIO_BITRATE = "192k"

#: Bump when the mix recipe (fades, ducking, loudnorm settings) changes.
MIX_VERSION = 2
#: Bump when how the finished track is encoded and kept (:func:`encoded_track`) changes.
TRACK_RECIPE = 1
FADE_IN_S = 1.0
FADE_OUT_S = 2.0
#: Ceiling for true peaks after normalisation (dBTP), the usual streaming spec.
TRUE_PEAK = -1.0
#: loudnorm's LRA target, at its maximum: loudness range is the editor's choice, and a
#: mix wider than the target would stop loudnorm from normalising linearly.
LOUDNESS_RANGE = 50.0
#: Below this a mix is treated as silence: there is nothing to normalise.
SILENCE_LUFS = -70.0
#: Ducking: about -40 dBFS threshold at 6:1 takes ~15 dB off the music under dialogue-level
#: clip audio (-20 dBFS RMS); 20 ms attack, 400 ms release so it does not pump on words.
DUCK = {"threshold": 0.01, "ratio": 6, "attack": 20, "release": 400}


class AudioMix(BaseModel):
    """How the sequence's audio is mixed: music bed, ducking and loudness target.

    ``music`` is looped or trimmed to the sequence and faded in (1 s) and out (2 s);
    ``music_volume`` is a linear gain. With ``duck`` the music is lowered wherever clip
    audio plays. ``loudness`` is the integrated LUFS target of the final mix (None
    leaves levels as mixed). ``music_sha256`` is the music's content hash (computed
    from the file when omitted); it, not the path, goes into the cache key.
    """

    model_config = ConfigDict(frozen=True)

    music: Path | None = Field(default=None, description="Music bed file (any audio ffmpeg reads).")
    music_sha256: str | None = Field(default=None, description="Content hash of the music.")
    music_volume: float = Field(default=builtin.OUTPUT["music_volume"], ge=0, le=4,
                                description="Linear music gain.")
    duck: bool = Field(default=builtin.OUTPUT["duck"], description="Lower the music under clip audio.")
    loudness: float | None = Field(default=builtin.OUTPUT["loudness"], ge=-70, le=-5,
                                   description="Integrated LUFS target; None: no normalisation.")

    def key(self) -> dict:
        """What decides the mixed audio: settings, recipe and the music's content hash."""
        sha = None
        if self.music is not None:
            sha = self.music_sha256 or sha256_file(self.music)
        return {"music": sha, "volume": self.music_volume, "duck": self.duck,
                "loudness": self.loudness, "version": MIX_VERSION}


def check_music(mix: AudioMix | None) -> None:
    """Refuse a music bed that is missing or has no audio before any encoding starts."""
    if mix is None or mix.music is None:
        return
    path = Path(mix.music)
    if not path.is_file():
        raise ValueError(f"music: {path} does not exist or is not a file")
    try:
        with av.open(str(path)) as container:
            has_audio = bool(container.streams.audio)
    except av.FFmpegError as exc:
        raise ValueError(f"music: {path} is not a media file ffmpeg can read: {exc}") from exc
    if not has_audio:
        raise ValueError(f"music: {path} has no audio stream")


def samples_for(frames: int, fps: int) -> int:
    """Audio samples that last exactly as long as ``frames`` video frames."""
    return round(frames * AUDIO_RATE / fps)


def sequence_samples(slots: Sequence[Slot], fps: int) -> int:
    """Samples in the whole sequence (transitions overlap their neighbours)."""
    return samples_for(sum(sl.frames for sl in slots) - sum(sl.t_out for sl in slots), fps)


def audio_output_args() -> dict:
    """The one AAC encode of the track: 48 kHz stereo."""
    return {"c:a": "aac", "b:a": AUDIO_BITRATE, "ar": AUDIO_RATE, "ac": 2}


def _stereo(stream):
    return stream.filter("aformat", sample_fmts="fltp", sample_rates=AUDIO_RATE,
                         channel_layouts="stereo")


def audio_track(sources: Sequence[Path | None], slots: Sequence[Slot], fps: int):
    """Build the clip bus as one filter chain (48 kHz stereo, float).

    ``sources[i]`` is item i's file, or None for silence. Each item's audio is cut to
    its video span, padded/trimmed to exactly its video length, and joined with
    acrossfade where the video has a transition, so audio and video lengths agree.
    Each file is opened once and split when several items use it; each silent item
    gets its own ``anullsrc``: a split of that endless source, read in lockstep by
    sidechaincompress, ended the sidechain early (measured: the music fell silent).
    """
    groups: dict[Path | int, list[int]] = {}
    for i, src in enumerate(sources):
        groups.setdefault(i if src is None else src, []).append(i)
    parts: list = [None] * len(slots)
    for src, members in groups.items():
        if isinstance(src, int):  # the instance name keeps ffmpeg-python from merging them
            stream = ffmpeg.input(f"anullsrc@item{src}=r={AUDIO_RATE}:cl=stereo",
                                  f="lavfi").audio
        else:
            # -vn keeps ffmpeg from demuxing and queueing the file's video packets.
            stream = ffmpeg.input(str(src), vn=None).audio
        for i, branch in zip(members, fan_out(stream, len(members), audio=True)):
            sl, n = slots[i], samples_for(slots[i].frames, fps)
            if not isinstance(src, int):
                branch = (branch
                          .filter("atrim", start=f"{sl.start / fps:.6f}",
                                  end=f"{sl.end / fps:.6f}")
                          .filter("asetpts", "PTS-STARTPTS")
                          .filter("aresample", AUDIO_RATE)
                          .filter("apad", whole_len=n))
            parts[i] = _stereo(branch.filter("atrim", end_sample=n))
    track = parts[0]
    for part, prev in zip(parts[1:], slots):
        if prev.t_out:
            track = ffmpeg.filter([track, part], "acrossfade",
                                  nb_samples=samples_for(prev.t_out, fps))
        else:
            track = ffmpeg.concat(track, part, n=2, v=0, a=1)
    return track


def _exact(stream, n: int):
    """Pad or cut a stream to exactly ``n`` samples, timestamps from zero."""
    return (stream.filter("asetpts", "N/SR/TB")
            .filter("apad", whole_len=n).filter("atrim", end_sample=n))


def _music_bed(music: Path, volume: float, n: int):
    """The music looped (``-stream_loop -1``) or cut to ``n`` samples, scaled and faded."""
    stream = ffmpeg.input(str(music), stream_loop=-1, vn=None).audio
    stream = _exact(_stereo(stream.filter("aresample", AUDIO_RATE)), n)
    fade_in = min(round(FADE_IN_S * AUDIO_RATE), n // 3)
    fade_out = min(round(FADE_OUT_S * AUDIO_RATE), n // 3)
    stream = stream.filter("volume", f"{volume:.6f}")
    if fade_in:
        stream = stream.filter("afade", t="in", ss=0, ns=fade_in)
    if fade_out:
        stream = stream.filter("afade", t="out", ss=n - fade_out, ns=fade_out)
    return stream


def _mixdown(bus, clip_audio: bool, mix: AudioMix, n: int):
    """Put the music under the clip bus, ducked by it when asked."""
    music = _music_bed(Path(mix.music), mix.music_volume, n)
    if mix.duck and clip_audio:
        bus, sidechain = fan_out(bus, 2, audio=True)
        # sidechaincompress ends at the first EOF of its two inputs and drops what the other
        # still queues: the last ~900 samples came out differently from run to run
        # (measured). Both run past the end on padding, then the cut keeps n exactly.
        pad = AUDIO_RATE // 2
        music = ffmpeg.filter([music.filter("apad", pad_len=pad),
                               sidechain.filter("apad", pad_len=pad)],
                              "sidechaincompress", **DUCK).filter("atrim", end_sample=n)
    return ffmpeg.filter([bus, music], "amix", inputs=2, duration="first", normalize=0)


def master_track(sources: Sequence[Path | None], slots: Sequence[Slot], fps: int,
                 mix: AudioMix | None, cache_dir: Path | None = None):
    """The final audio stream for the mux: clip bus, music, ducking, loudness, exact length.

    With ``mix`` None this is the plain clip bus. When a loudness target is set and the
    mix can make sound, the mix is rendered once here to measure it (loudnorm pass 1,
    decoded only, written nowhere); the returned stream applies pass 2. With
    ``cache_dir`` the measurement is kept there (``loudness/<key>.json``, checked like
    every cache entry), keyed by what the mix hears: a rebuild whose audio did not change
    (a title, a silent clip of the same length) skips the measuring pass.
    """
    if mix is None:
        return audio_track(sources, slots, fps)
    n = sequence_samples(slots, fps)
    clip_audio = any(src is not None for src in sources)

    def mixed():  # a fresh graph each time: pass 1 and pass 2 are separate ffmpeg runs
        track = audio_track(sources, slots, fps)
        if mix.music is not None:
            track = _mixdown(track, clip_audio, mix, n)
        return track

    track = mixed()
    if mix.loudness is not None and (clip_audio or mix.music is not None):
        key = {"mix": mix.key(), "fps": fps, "slots": [
            [sl.sha256 if src is not None else None, sl.start, sl.frames, sl.t_out]
            for src, sl in zip(sources, slots)]}
        stats = _measured(mixed, mix.loudness, key, cache_dir)
        if stats is None:
            logger.info("audio mix is silent: loudness normalisation skipped")
        else:
            track = _normalise(track, mix.loudness, stats)
    return _stereo(_exact(track.filter("aresample", AUDIO_RATE), n))


def encoded_track(sources: Sequence[Path | None], slots: Sequence[Slot], fps: int,
                  mix: AudioMix | None, cache_dir: Path) -> Path:
    """The sequence's finished audio (AAC in an .m4a), made once per distinct mix.

    Keyed by what the track hears: per slot the source's hash (None for silence: a card
    or a silent clip), its frames and transition, plus the mix. A rebuild whose audio did
    not change (a new title, a re-ordered overlay) muxes this file by stream copy and
    decodes no source; a clean render makes the same file first, so the bytes agree.
    """
    key = {"audio": [[sl.sha256 if src is not None else None, sl.start, sl.frames, sl.t_out]
                     for src, sl in zip(sources, slots)],
           "fps": fps, "mix": None if mix is None else mix.key(), "recipe": TRACK_RECIPE}
    path = Path(cache_dir, "audio", f"{content_key(key)}.m4a")
    if not cached_file(path):
        track = master_track(sources, slots, fps, mix, cache_dir)
        with cache_output(path, Path(cache_dir)) as tmp:
            run_stream(ffmpeg.output(track, str(tmp), f="mp4", **audio_output_args(),
                                     fflags="+bitexact", **{"flags:a": "+bitexact"},
                                     map_metadata=-1))
    return path


def _loudnorm_targets(target: float) -> dict:
    return {"I": f"{target:.2f}", "TP": f"{TRUE_PEAK:.2f}", "LRA": f"{LOUDNESS_RANGE:.1f}"}


def _measure(track, target: float) -> dict[str, float] | None:
    """Loudnorm pass 1: measure the mix; None when it is silent (nothing to normalise)."""
    with tempfile.TemporaryDirectory(prefix="reelflow-loudnorm-") as tmpdir:
        stats_file = Path(tmpdir, "loudnorm.json")
        measured = track.filter("loudnorm", **_loudnorm_targets(target),
                                print_format="json", stats_file=str(stats_file))
        run_stream(ffmpeg.output(measured, "-", f="null"))
        stats = {k: float(v) for k, v in json.loads(stats_file.read_text()).items()
                 if k.startswith("input_") or k == "target_offset"}
    if not math.isfinite(stats["input_i"]) or stats["input_i"] <= SILENCE_LUFS:
        return None
    return stats


def _measured(mixed, target: float, key: dict, cache_dir: Path | None) -> dict[str, float] | None:
    """Loudnorm pass 1, or its kept result for the same mix (``null`` kept for silence)."""
    if cache_dir is None:
        return _measure(mixed(), target)
    path = Path(cache_dir, "loudness", f"{content_key({**key, 'target': target})}.json")
    if cached_file(path):
        return json.loads(path.read_text())
    stats = _measure(mixed(), target)
    with cache_output(path, Path(cache_dir)) as tmp:
        tmp.write_text(json.dumps(stats))
    return stats


def _normalise(track, target: float, stats: dict[str, float]):
    """Loudnorm pass 2: the measured values and linear=true (one gain for the whole mix).

    loudnorm only stays linear when the gain keeps true peaks under TRUE_PEAK; a mix
    with stronger peaks gets loudnorm's dynamic mode, which limits them instead.
    """
    def clamp(value: float, low: float, high: float) -> float:
        return min(high, max(low, value)) if math.isfinite(value) else low

    offset = target - stats["input_i"]
    linear = stats["input_tp"] + offset <= TRUE_PEAK and stats["input_lra"] <= LOUDNESS_RANGE
    logger.info("loudnorm: measured %.2f LUFS, %.2f dBTP, LRA %.2f; target %.1f LUFS (%s)",
                stats["input_i"], stats["input_tp"], stats["input_lra"], target,
                "linear" if linear else "dynamic: peaks would pass the true-peak ceiling")
    return track.filter(
        "loudnorm", **_loudnorm_targets(target),
        measured_I=f"{clamp(stats['input_i'], -99, 0):.2f}",
        measured_TP=f"{clamp(stats['input_tp'], -99, 99):.2f}",
        # loudnorm refuses linear mode for an LRA of exactly 0 (a steady tone measures so).
        measured_LRA=f"{clamp(stats['input_lra'], 0.01, 99):.2f}",
        measured_thresh=f"{clamp(stats['input_thresh'], -99, 0):.2f}",
        offset=f"{clamp(stats.get('target_offset', 0.0), -99, 99):.2f}",
        linear="true", print_format="none")
