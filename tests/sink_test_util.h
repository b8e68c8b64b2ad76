// Helpers for the frame sink tests: synthetic frames, PSNR, listing a folder, ffprobe.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sdinterp/frame_sink.h"
#include "test_support.h"

namespace sdinterp::test {

// A smooth moving frame (gradients plus a soft blob), different for each `index`.
inline Frame smooth_frame(int width, int height, int index) {
  Frame f;
  f.width = width;
  f.height = height;
  f.rgb.resize(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &f.rgb[(static_cast<size_t>(y) * width + x) * 3];
      double u = static_cast<double>(x) / std::max(1, width - 1);
      double v = static_cast<double>(y) / std::max(1, height - 1);
      double blob = std::exp(-((u - 0.3 - 0.02 * index) * (u - 0.3 - 0.02 * index) + (v - 0.5) * (v - 0.5)) * 12.0);
      p[0] = static_cast<uint8_t>(std::lround(255 * u * (1 - blob) + 240 * blob));
      p[1] = static_cast<uint8_t>(std::lround(200 * v * (1 - blob) + 30 * blob));
      p[2] = static_cast<uint8_t>(std::lround(255 * (1 - u) * (0.5 + 0.5 * std::sin(index * 0.3))));
    }
  }
  return f;
}

// A frame with exactly `colors` colours (random pixels), for lossless round trips.
inline Frame few_color_frame(int width, int height, int colors, uint32_t seed) {
  Frame f;
  f.width = width;
  f.height = height;
  f.rgb.resize(static_cast<size_t>(width) * height * 3);
  uint32_t state = seed * 2654435761u + 1;
  for (size_t i = 0; i < f.rgb.size(); i += 3) {
    state = state * 1664525u + 1013904223u;
    int c = static_cast<int>((state >> 8) % static_cast<uint32_t>(colors));
    f.rgb[i] = static_cast<uint8_t>(c * 37 % 256);
    f.rgb[i + 1] = static_cast<uint8_t>(c * 91 % 256);
    f.rgb[i + 2] = static_cast<uint8_t>(c);
  }
  return f;
}

inline double psnr(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double sse = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = static_cast<double>(a[i]) - b[i];
    sse += d * d;
  }
  if (sse == 0) return 99.0;
  return 10 * std::log10(255.0 * 255.0 * static_cast<double>(a.size()) / sse);
}

// Names of everything in `dir`, hidden files included (temporaries are hidden).
inline std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

inline bool have_ffprobe() { return run_command("command -v ffprobe").status == 0; }

// One value from ffprobe, e.g. ffprobe_value(path, "stream=nb_read_frames", true).
inline std::string ffprobe_value(const std::string& path, const std::string& entry, bool count = false) {
  CommandResult r = run_command("ffprobe -v error -select_streams v:0 " + std::string(count ? "-count_frames " : "") +
                                "-show_entries " + entry + " -of default=nw=1:nk=1 " + quote(path));
  std::string out = r.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace sdinterp::test
