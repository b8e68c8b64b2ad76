#!/usr/bin/env python3
"""GIF quality and speed benchmark: ours vs ffmpeg's two-pass palette vs Pillow vs libimagequant.

Builds test sequences from real photos (Debian's python3-skimage data, fetched with
`apt-get download` and unpacked with `dpkg -x`, nothing installed) and from ffmpeg's
`gradients` source, encodes each with every encoder, decodes every GIF with ffmpeg (which
honours disposal and transparency) and reports, against the source frames:

  PSNR           RGB, pooled over all frames
  blurred PSNR   both sides through a 5x5 box blur first (colour fidelity, banding)
  temporal PSNR  10*log10(255^2 / mean(((O_t - O_t-1) - (S_t - S_t-1))^2))  (flicker)
  size, encode time (wall clock of the whole encoder run, PNG decoding included)

The libimagequant row is pngquant's and gifski's quantizer, through Debian's python3-pil (built with
it; scripts/setup.sh installs it): each frame quantized to 256 colours, then Pillow's GIF writer.
libimagequant is GPL-3: measured against, never linked.

Run from the repository root after building the sinks library:
  cmake -S . -B build-sinks -DSDINTERP_WITH_TORCH=OFF -DSDINTERP_BUILD_BENCH=OFF
  cmake --build build-sinks --target sdinterp_sinks sdinterp_codecs -j
  .venv/bin/python bench/gif_quality.py --build build-sinks
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FPS = 10
SIZE = 512
# Debian's Pillow (python3-pil), built with libimagequant; the .venv's PyPI Pillow is not.
LIQ_PYTHON = "/usr/bin/python3"


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def skimage_data(work):
    """The skimage sample photos, unpacked from the Debian package without installing it."""
    data = os.path.join(work, "skimage", "usr", "lib", "python3", "dist-packages", "skimage", "data")
    if not os.path.isdir(data):
        os.makedirs(os.path.join(work, "skimage"), exist_ok=True)
        run(["apt-get", "download", "python3-skimage"], cwd=work, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deb = sorted(glob.glob(os.path.join(work, "python3-skimage_*.deb")))[-1]
        run(["dpkg", "-x", deb, os.path.join(work, "skimage")])
    return data


def crossfade(photos, out_dir):
    """30 frames of 512x512 at 10 fps: photo, fade (1 s), photo, fade (1 s), photo."""
    if os.path.isdir(out_dir) and len(glob.glob(os.path.join(out_dir, "*.png"))) == 30:
        return
    os.makedirs(out_dir, exist_ok=True)
    fit = f"scale={SIZE}:{SIZE}:force_original_aspect_ratio=increase,crop={SIZE}:{SIZE},fps={FPS},format=rgb24,setsar=1"
    inputs = []
    for photo, seconds in zip(photos, (1.5, 1.5, 1.6)):
        inputs += ["-loop", "1", "-t", str(seconds), "-i", photo]
    graph = (f"[0]{fit}[a];[1]{fit}[b];[2]{fit}[c];"
             "[a][b]xfade=transition=fade:duration=1:offset=0.2[ab];"
             "[ab][c]xfade=transition=fade:duration=1:offset=1.4,format=rgb24[out]")
    run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]",
         "-frames:v", "30", os.path.join(out_dir, "%04d.png")])


def gradients(out_dir):
    if os.path.isdir(out_dir) and len(glob.glob(os.path.join(out_dir, "*.png"))) == 30:
        return
    os.makedirs(out_dir, exist_ok=True)
    run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"gradients=s={SIZE}x{SIZE}:r={FPS}:d=3:seed=1:speed=0.03:nb_colors=4,format=rgb24",
         "-frames:v", "30", os.path.join(out_dir, "%04d.png")])


def tiny_sd_walk(sdinterp, out_dir):
    """The product's own output: a 30-frame circular walk on the bundled tiny-sd (64x64)."""
    if os.path.isdir(out_dir) and len(glob.glob(os.path.join(out_dir, "*.png"))) == 30:
        return
    shutil.rmtree(out_dir, ignore_errors=True)
    rendered = out_dir + ".render"
    run([sdinterp, "generate", "--bundle", os.path.join(ROOT, "models", "tiny-sd"), "--mode", "circular",
         "--prompt", "sea sunset", "--seed", "2024", "--frames", "30", "--png-dir", rendered, "--progress", "none",
         "--overwrite"], stdout=subprocess.DEVNULL)
    os.makedirs(out_dir)
    # Named as the other sequences' frames (0001.png, ...): ffmpeg's two-pass reads them by pattern.
    for i, frame in enumerate(sorted(glob.glob(os.path.join(rendered, "frame_*.png")))):
        os.rename(frame, os.path.join(out_dir, f"{i + 1:04d}.png"))


def decode(path, n_expected, height=SIZE, width=SIZE):
    raw = run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
              stdout=subprocess.PIPE).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)
    if len(frames) != n_expected:
        raise RuntimeError(f"{path}: decoded {len(frames)} frames, expected {n_expected}")
    return frames


def box5(x):
    """5x5 box blur, valid region only, over axes 1 and 2 of a float array."""
    c = np.cumsum(np.cumsum(np.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0))), axis=1), axis=2)
    return (c[:, 5:, 5:] - c[:, :-5, 5:] - c[:, 5:, :-5] + c[:, :-5, :-5]) / 25.0


def psnr(mse):
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def metrics(out, src):
    o = out.astype(np.float64)
    s = src.astype(np.float64)
    plain = psnr(np.mean((o - s) ** 2))
    blurred = psnr(np.mean((box5(o) - box5(s)) ** 2))
    temporal = psnr(np.mean((np.diff(o, axis=0) - np.diff(s, axis=0)) ** 2))
    return plain, blurred, temporal


def timed(cmds):
    """Wall-clock and CPU (user + system, all threads) seconds of running `cmds` in turn."""
    start = time.perf_counter()
    cpu = 0.0
    for cmd in cmds:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{cmd[0]} failed")
        cpu += usage.ru_utime + usage.ru_stime
    return time.perf_counter() - start, cpu


def build_tool(build, work):
    """The stand-in for `sdinterp encode`, linked as sdinterp is: GIF in the binary, WebP and MP4
    from libsdinterp_codecs.so (found where the build put it), loaded only when asked for."""
    lib = os.path.join(build, "libsdinterp_sinks.a")
    if not os.path.exists(lib):
        sys.exit(f"{lib} missing: build the sdinterp_sinks target first (see the docstring)")
    tool = os.path.join(work, "encode_frames_tool")
    run(["g++", "-std=c++17", "-O2", "-I", os.path.join(ROOT, "include"), "-I",
         os.path.join(ROOT, "src"), os.path.join(ROOT, "bench", "encode_frames_tool.cpp"), lib,
         "-lgif", "-ldl", "-pthread", "-o", tool])
    return tool


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build-sinks"), help="build folder with libsdinterp_sinks.a")
    parser.add_argument("--work", default="/tmp/sdinterp-gif-bench", help="scratch folder (sources are cached there)")
    parser.add_argument("--only", default="", help="comma-separated encoder keys to run (ours, ours-ordered, ours-none, ffmpeg, pillow, liq)")
    parser.add_argument("--seq", default="", help="comma-separated sequence names to run")
    parser.add_argument("--sdinterp", default=os.path.join(ROOT, "build", "sdinterp"),
                        help="the sdinterp binary that renders the tiny-sd walk sequence")
    parser.add_argument("--repeat", type=int, default=3,
                        help="encode this many times and report the fastest (other load on the machine only adds time)")
    args = parser.parse_args()
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    tool = build_tool(os.path.abspath(args.build), work)

    data = skimage_data(work)
    sequences = {
        "astronaut-coffee-rocket": [os.path.join(data, n) for n in ("astronaut.png", "coffee.png", "rocket.jpg")],
        "chelsea-astronaut-coffee": [os.path.join(data, n) for n in ("chelsea.png", "astronaut.png", "coffee.png")],
    }
    seq_dirs = {}
    for name, photos in sequences.items():
        seq_dirs[name] = os.path.join(work, "seq", name)
        crossfade(photos, seq_dirs[name])
    seq_dirs["gradients4"] = os.path.join(work, "seq", "gradients4")
    gradients(seq_dirs["gradients4"])
    if os.path.exists(args.sdinterp):
        seq_dirs["tiny-sd-walk"] = os.path.join(work, "seq", "tiny-sd-walk")
        tiny_sd_walk(args.sdinterp, seq_dirs["tiny-sd-walk"])
    else:
        print(f"({args.sdinterp} not built: the tiny-sd walk is left out)")

    def ours(dither):
        def enc(frames, out):
            return [[tool, out, "--fps", str(FPS), "--dither", dither, *frames]]
        return enc

    def ffmpeg_two_pass(frames, out):
        pattern = os.path.join(os.path.dirname(frames[0]), "%04d.png")
        palette = out + ".palette.png"
        return [["ffmpeg", "-v", "error", "-y", "-framerate", str(FPS), "-i", pattern,
                 "-vf", "palettegen=stats_mode=full", palette],
                ["ffmpeg", "-v", "error", "-y", "-framerate", str(FPS), "-i", pattern, "-i", palette,
                 "-lavfi", "paletteuse=dither=sierra2_4a", out]]

    def pillow(frames, out):
        code = ("import sys; from PIL import Image; fs=[Image.open(p).convert('RGB') for p in sys.argv[2:]]; "
                f"fs[0].save(sys.argv[1], save_all=True, append_images=fs[1:], duration={1000 // FPS}, loop=0)")
        return [[sys.executable, "-c", code, out, *frames]]

    def libimagequant(frames, out):
        code = ("import sys; from PIL import Image; "
                "fs=[Image.open(p).convert('RGB').quantize(256, method=Image.Quantize.LIBIMAGEQUANT) "
                "for p in sys.argv[2:]]; "
                f"fs[0].save(sys.argv[1], save_all=True, append_images=fs[1:], duration={1000 // FPS}, loop=0)")
        return [[LIQ_PYTHON, "-c", code, out, *frames]]

    encoders = [("ours (default, diffusion)", "ours", ours("diffusion")),
                ("ours --dither ordered", "ours-ordered", ours("ordered")),
                ("ours --dither none", "ours-none", ours("none")),
                ("ffmpeg palettegen+paletteuse sierra2_4a", "ffmpeg", ffmpeg_two_pass),
                ("Pillow save_all", "pillow", pillow),
                ("libimagequant per frame + Pillow's writer", "liq", libimagequant)]
    if args.only:
        keep = set(args.only.split(","))
        encoders = [e for e in encoders if e[1] in keep]
    if any(e[1] == "liq" for e in encoders):
        check = subprocess.run([LIQ_PYTHON, "-c", "from PIL import features; "
                                "assert features.check_feature('libimagequant')"], capture_output=True)
        if check.returncode != 0:
            sys.exit(f"{LIQ_PYTHON} has no Pillow built with libimagequant: run scripts/setup.sh "
                     "(it installs Debian's python3-pil), or leave the row out with --only")

    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                         stdout=subprocess.PIPE, text=True).stdout.strip()
    print(f"machine: {cpu}, {os.cpu_count()} cores; ffmpeg: "
          + subprocess.run(["ffmpeg", "-version"], stdout=subprocess.PIPE, text=True).stdout.split("\n")[0])
    print()
    print(f"encode s: fastest wall clock of {args.repeat} runs; cpu s: user + system time of that run, all threads")
    print()
    print("| sequence | encoder | PSNR dB | blurred PSNR dB | temporal PSNR dB | size MB | encode s | cpu s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    out_dir = os.path.join(work, "out")
    os.makedirs(out_dir, exist_ok=True)
    for seq, seq_dir in seq_dirs.items():
        if args.seq and seq not in args.seq.split(","):
            continue
        frames = sorted(glob.glob(os.path.join(seq_dir, "*.png")))
        src = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frames])
        for label, key, enc in encoders:
            out = os.path.join(out_dir, f"{seq}.{key}.gif")
            runs = []
            for _ in range(args.repeat):
                if os.path.exists(out):
                    os.remove(out)
                runs.append(timed(enc(frames, out)))
            seconds, cpu = min(runs)
            p, b, t = metrics(decode(out, len(frames), src.shape[1], src.shape[2]), src)
            print(f"| {seq} | {label} | {p:.2f} | {b:.2f} | {t:.2f} | {os.path.getsize(out) / 1e6:.2f} "
                  f"| {seconds:.2f} | {cpu:.2f} |", flush=True)


if __name__ == "__main__":
    main()
