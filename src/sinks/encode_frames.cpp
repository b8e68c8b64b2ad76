#include "sinks/encode_frames.h"

#include <filesystem>
#include <future>
#include <memory>

#include "io/png_io.h"
#include "sdinterp/errors.h"

namespace sdinterp::sinks {

std::string encode_frames(const std::vector<std::string>& frames, const std::string& output,
                          const FrameSinkOptions& options, const std::function<bool()>& stop_requested) {
  if (frames.empty()) throw ConfigError("no frames given; pass the PNG frames to encode");
  int width = 0;
  int height = 0;
  io::read_image_size(frames[0], width, height);
  for (size_t i = 1; i < frames.size(); ++i) {
    int w = 0;
    int h = 0;
    io::read_image_size(frames[i], w, h);
    if (w != width || h != height) {
      throw ConfigError("frame " + frames[i] + " is " + std::to_string(w) + "x" + std::to_string(h) + " but " +
                        frames[0] + " is " + std::to_string(width) + "x" + std::to_string(height) +
                        "; all frames must have the same size");
    }
  }

  std::error_code ec;
  bool to_folder = (!output.empty() && output.back() == '/') || std::filesystem::is_directory(output, ec);
  if (!to_folder && !known_file_extension(output)) {
    throw ConfigError(unknown_format_message(output, ", or a folder ending in / for PNG frames"));
  }
  std::unique_ptr<FrameSink> sink = to_folder ? make_png_dir_sink(output, options) : make_file_sink(output, options);
  try {
    sink->begin(width, height, static_cast<int>(frames.size()));
    // The next frame is decoded while the current one is encoded.
    std::future<Frame> next = std::async(std::launch::async, io::read_image_rgb, frames[0]);
    for (size_t i = 0; i < frames.size(); ++i) {
      Frame frame = next.get();
      if (stop_requested && stop_requested()) throw InterruptedError();
      if (i + 1 < frames.size()) next = std::async(std::launch::async, io::read_image_rgb, frames[i + 1]);
      sink->add(frame);
    }
    sink->finish();
  } catch (...) {
    sink->abort();
    throw;
  }
  return sink->description();
}

}  // namespace sdinterp::sinks
