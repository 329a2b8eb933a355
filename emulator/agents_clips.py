"""Procedural outputs of the Agents API: ray-3.2 clips, uni-1 stills, edits and reframes.

ray-3.2's look differs from ray-2's (clips.py: a flat colour with two moving boxes) so a
side-by-side shows two models: smooth animated colour gradients (ffmpeg's ``gradients``
source, colours and pattern from the request's hash), a bold ``ray-3.2`` label at the top
centre and the prompt under it. Keyframed clips (start/end frames or keyframes pinned on
the 24 fps grid) hold and crossfade the images so that each one is on screen exactly at
its frame. A video_edit is the source re-coloured and blurred by its strength; a
video_reframe is the source fitted into the new aspect over a blurred fill of itself.
uni-1 stills are a radial gradient with the prompt and the reference images inset.
Every output is deterministic: bitexact flags, no metadata, pinned x264 threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from reelflow._binaries import ffmpeg_exe, font_file
from reelflow.errors import FfmpegError

from reelflow.emulator import agents_spec as aspec
from reelflow.emulator.clips import _wrap

__all__ = ["EXR_MAGIC", "make_exr", "make_image", "make_video"]

_FFMPEG = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-fflags", "+bitexact"]
_MP4 = ["-c:v", "libx264", "-preset", "ultrafast", "-threads", "2", "-pix_fmt", "yuv420p",
        "-r", "24", "-flags:v", "+bitexact", "-map_metadata", "-1", "-movflags", "+faststart",
        "-f", "mp4"]
_STRENGTH = {"adhere": 0, "flex": 1, "reimagine": 2}


def _digest(request: dict[str, Any]) -> bytes:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def _colour(digest: bytes, offset: int) -> str:
    return "0x" + "".join(f"{40 + digest[offset + i] * 200 // 255:02X}" for i in range(3))


def _text(label: str, width: int, height: int, *, prompt: bool = True) -> str:
    """drawtext filters: the bold label top centre, the prompt under it, a frame counter."""
    short = min(width, height)
    big, small = max(12, short // 16), max(10, short // 30)
    chain = (f"drawtext=fontfile=bold.ttf:textfile=label.txt:expansion=none:fontsize={big}"
             f":fontcolor=white:borderw=2:bordercolor=black@0.6:x=(w-tw)/2:y={short // 20}")
    if prompt:
        chain += (f",drawtext=fontfile=font.ttf:textfile=prompt.txt:expansion=none"
                  f":fontsize={small}:fontcolor=white:box=1:boxcolor=black@0.35"
                  f":boxborderw={small // 3}:x=(w-tw)/2:y={short // 20 + big * 2}")
    return chain + (f",drawtext=fontfile=font.ttf:text='%{{n}}':fontsize={small}"
                    f":fontcolor=white@0.8:x=w-tw-{small}:y=h-th-{small}")


def _run(argv: list[str], workdir: Path) -> None:
    proc = subprocess.run(argv, cwd=workdir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FfmpegError(argv, proc.returncode, proc.stderr[-4000:])


def _workdir(out: Path, request: dict[str, Any], label: str, width: int) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".render-", dir=out.parent))
    for name, bold in (("font.ttf", False), ("bold.ttf", True)):
        shutil.copyfile(font_file(bold), workdir / name)
    prompt = request.get("prompt") or "(no prompt)"
    (workdir / "prompt.txt").write_text(_wrap(prompt, width, max(10, width // 40)),
                                        encoding="utf-8")
    (workdir / "label.txt").write_text(label, encoding="utf-8")
    return workdir


def _fit(index: int, width: int, height: int, name: str) -> str:
    """One image input, cover-cropped to the frame at 24 fps."""
    return (f"[{index}:v]scale={width}:{height}:force_original_aspect_ratio=increase,"
            f"crop={width}:{height},setsar=1,fps=24,format=yuv420p[{name}]")


def _anchors(request: dict[str, Any], inputs: dict[str, Any], frames: int) -> list:
    """(frame, image path) pins: start at 0, end at the last frame, keyframes where set."""
    video = request["video"]
    pins = []
    if "video.start_frame" in inputs:
        pins.append((0, inputs["video.start_frame"]))
    if "video.end_frame" in inputs:
        pins.append((frames - 1, inputs["video.end_frame"]))
    for i, index in enumerate(video.get("keyframe_indexes") or []):
        if f"video.keyframes[{i}]" in inputs:
            pins.append((min(index, frames - 1), inputs[f"video.keyframes[{i}]"]))
    return sorted(pins, key=lambda pin: pin[0])


def _keyframe_graph(pins: list, frames: int, width: int, height: int) -> tuple[list, list]:
    """Inputs and filters: hold the first pin, crossfade pin to pin, hold the last."""
    argv, graph, parts = [], [], []
    segments = [("hold", [pins[0][1]], pins[0][0])] if pins[0][0] > 0 else []
    for (a, pa), (b, pb) in zip(pins, pins[1:]):
        segments.append(("fade", [pa, pb], b - a))
    segments.append(("hold", [pins[-1][1]], frames - pins[-1][0]))
    n = 0
    for k, (kind, paths, length) in enumerate(segments):
        if length <= 0:
            continue
        names = []
        for path in paths:
            argv += ["-loop", "1", "-framerate", "24", "-i", str(path)]
            names.append(f"i{n}")
            graph.append(_fit(n, width, height, names[-1]))
            n += 1
        if kind == "fade":
            graph.append(f"[{names[0]}][{names[1]}]xfade=transition=fade:duration="
                         f"{length / 24:.6f}:offset=0,trim=end_frame={length},"
                         f"setpts=PTS-STARTPTS[g{k}]")
        else:
            graph.append(f"[{names[0]}]trim=end_frame={length},setpts=PTS-STARTPTS[g{k}]")
        parts.append(f"[g{k}]")
    graph.append(f"{''.join(parts)}concat=n={len(parts)}:v=1:a=0[base]")
    return argv, graph


def _source_graph(request: dict[str, Any], width: int, height: int) -> str:
    """video_edit: recolour + blur by strength; video_reframe: fit over a blurred fill."""
    video = request["video"]
    if request["type"] == "video_edit":
        strength = (video.get("edit") or {}).get("strength") or "flex_2"
        kind, level = strength.split("_")
        amount = _STRENGTH[kind] * 3 + int(level)  # 1..9
        hue = 20 * amount + _digest(request)[0] % 40
        return (f"[0:v]fps=24,scale={width}:{height},setsar=1,hue=h={hue}:s=1.3,"
                f"gblur=sigma={amount * 0.6:.1f},format=yuv420p[base]")
    pos = video.get("source_position")
    if pos:
        w, h = max(2, int(width * pos["w_norm"]) // 2 * 2), max(2, int(height * pos["h_norm"]) // 2 * 2)
        x, y = int(width * pos["x_norm"]), int(height * pos["y_norm"])
        fit = f"scale={w}:{h},setsar=1"
    else:
        fit = f"scale={width}:{height}:force_original_aspect_ratio=decrease,setsar=1"
        x, y = "(W-w)/2", "(H-h)/2"
    return (f"[0:v]fps=24,split[bg0][fg0];[bg0]scale={width}:{height}:"
            f"force_original_aspect_ratio=increase,crop={width}:{height},setsar=1,"
            f"boxblur=20:2,eq=brightness=-0.15[bg];[fg0]{fit}[fg];"
            f"[bg][fg]overlay=x={x}:y={y},format=yuv420p[base]")


def make_video(request: dict[str, Any], inputs: dict[str, Path], size: tuple[int, int],
                 frames: int, out: Path) -> None:
    """Render a ray-3.2 video/video_edit/video_reframe to ``out`` (MP4), atomically."""
    width, height = size
    video = request["video"]
    label = f"ray-3.2  {video['resolution']}  {request.get('aspect_ratio') or ''}  " \
            f"{frames / 24:g}s{'  HDR' if video.get('hdr') else ''}"
    if request["type"] != "video":
        label = f"{request['type']}  " + label
    workdir = _workdir(out, request, " ".join(label.split()), width)
    try:
        argv = [ffmpeg_exe(), *_FFMPEG]
        pins = _anchors(request, inputs, frames)
        if request["type"] != "video":
            argv += ["-i", str(inputs["source"])]
            graph = [_source_graph(request, width, height)]
        elif pins:
            extra, graph = _keyframe_graph(pins, frames, width, height)
            argv += extra
        else:
            digest = _digest(request)
            pattern = ("radial", "circular", "spiral", "square")[digest[9] % 4]
            argv += ["-f", "lavfi", "-i",
                     f"gradients=s={width}x{height}:r=24:c0={_colour(digest, 0)}"
                     f":c1={_colour(digest, 3)}:c2={_colour(digest, 6)}:nb_colors=3"
                     f":type={pattern}:x0={width // 2}:y0={height // 2}:x1=0:y1=0"
                     f":speed={0.01 + digest[10] / 255 * 0.04:.4f}"
                     f":seed={int.from_bytes(digest[11:15], 'big')}"]
            graph = ["[0:v]format=yuv420p[base]"]
        graph.append(f"[base]{_text(label, width, height)},format=yuv420p[v]")
        argv += ["-filter_complex", ";".join(graph), "-map", "[v]", "-frames:v", str(frames),
                 *_MP4, "out.mp4"]
        _run(argv, workdir)
        os.replace(workdir / "out.mp4", out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


#: The first four bytes of every OpenEXR file.
EXR_MAGIC = b"\x76\x2f\x31\x01"
#: The emulator's EXR frames keep 1/EXR_DETAIL of the clip's detail (blocks of that many
#: pixels), so that a 5 s export stays a few MB: real exports are full detail and far larger.
EXR_DETAIL = 16


def make_exr(clip: Path, out: Path) -> None:
    """The EXR export of a rendered HDR clip (``exr_export``): a ZIP of one half-float
    OpenEXR image per frame (``frame_0001.exr``...), the clip's own frames at its size."""
    workdir = Path(tempfile.mkdtemp(prefix=".exr-", dir=out.parent))
    try:
        blocks = f"scale=iw/{EXR_DETAIL}:ih/{EXR_DETAIL}:flags=area," \
                 f"scale=iw*{EXR_DETAIL}:ih*{EXR_DETAIL}:flags=neighbor"
        _run([ffmpeg_exe(), *_FFMPEG, "-i", str(clip), "-vf", blocks, "-pix_fmt", "gbrpf32le",
              "-c:v", "exr", "-compression", "zip16", "-format", "half", "frame_%04d.exr"],
             workdir)
        staged = workdir / "out.zip"
        with zipfile.ZipFile(staged, "w", zipfile.ZIP_STORED) as archive:
            for frame in sorted(workdir.glob("frame_*.exr")):
                archive.write(frame, frame.name)
        os.replace(staged, out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def make_image(request: dict[str, Any], inputs: dict[str, Path], size: tuple[int, int],
                 out: Path) -> None:
    """Render a uni-1 still (PNG or JPEG by ``out``'s suffix), atomically."""
    width, height = size
    digest = _digest(request)
    label = f"{request['model']}  {request.get('aspect_ratio')}  {request['type']}"
    workdir = _workdir(out, request, label, width)
    try:
        argv = [ffmpeg_exe(), *_FFMPEG]
        if "source" in inputs:
            argv += ["-i", str(inputs["source"])]
            graph = [f"[0:v]scale={width}:{height}:force_original_aspect_ratio=increase,"
                     f"crop={width}:{height},setsar=1,hue=h={digest[0] % 180 + 90}[base0]"]
        else:
            argv += ["-f", "lavfi", "-i",
                     f"gradients=s={width}x{height}:r=1:c0={_colour(digest, 0)}"
                     f":c1={_colour(digest, 3)}:type=radial:seed={digest[6]}:duration=1"]
            graph = ["[0:v]null[base0]"]
        refs = sorted(k for k in inputs if k.startswith("image_ref"))
        inset = max(16, min(width, height) // 5) // 2 * 2
        for n, key in enumerate(refs, start=1):
            argv += ["-i", str(inputs[key])]
            graph.append(f"[{n}:v]scale={inset}:{inset}:force_original_aspect_ratio=increase,"
                         f"crop={inset}:{inset},setsar=1[r{n}];[base{n - 1}][r{n}]overlay="
                         f"x={(n - 1) * (inset + inset // 8) + inset // 8}:"
                         f"y=H-{inset + inset // 8}[base{n}]")
        graph.append(f"[base{len(refs)}]{_text(label, width, height)}[v]")
        codec = ["-c:v", "png", "-pix_fmt", "rgb24"] if out.suffix == ".png" else \
            ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj444p"]
        name = f"out{out.suffix}"
        argv += ["-filter_complex", ";".join(graph), "-map", "[v]", "-frames:v", "1",
                 *codec, "-flags", "+bitexact", "-map_metadata", "-1", "-update", "1",
                 "-f", "image2", name]
        _run(argv, workdir)
        os.replace(workdir / name, out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def output_size(request: dict[str, Any], source_size: tuple[int, int] | None,
                image_long_side: int) -> tuple[int, int]:
    """The pixel size of a request's output (a video_edit keeps its source's aspect)."""
    if request["type"] in aspec.IMAGE_TYPES:
        return aspec.image_size(request.get("aspect_ratio") or "1:1", image_long_side)
    res = request["video"]["resolution"]
    if request["type"] == "video_edit" and source_size:
        sw, sh = source_size
        short = int(res[:-1])
        long_side = round(short * max(sw, sh) / min(sw, sh) / 2) * 2
        return (long_side, short) if sw >= sh else (short, long_side)
    return aspec.video_size(request.get("aspect_ratio") or "16:9", res)
