// A torch-free stand-in for `sdinterp encode`, used by bench/gif_quality.py so the benchmark
// runs without LibTorch: encode_frames_tool OUT [--fps F] [--dither D] [--loop N] FRAME...
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sdinterp/errors.h"
#include "sinks/encode_frames.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OUT [--fps F] [--dither D] [--loop N] FRAME...\n", argv[0]);
    return 2;
  }
  sdinterp::FrameSinkOptions options;
  options.overwrite = true;
  std::vector<std::string> frames;
  try {
    for (int i = 2; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--fps" && i + 1 < argc) {
        options.fps = std::atof(argv[++i]);
      } else if (arg == "--dither" && i + 1 < argc) {
        options.dither = sdinterp::parse_dither(argv[++i]);
      } else if (arg == "--loop" && i + 1 < argc) {
        options.loop = std::atoi(argv[++i]);
      } else {
        frames.push_back(arg);
      }
    }
    std::printf("%s\n", sdinterp::sinks::encode_frames(frames, argv[1], options).c_str());
  } catch (const sdinterp::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return e.code();
  }
  return 0;
}
