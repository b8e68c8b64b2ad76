// Where finished frames go: PNG files, GIF, ... Frames arrive in order, one at a time, as they
// are decoded. No torch. A sink writes its output whole or not at all: it writes to a temporary
// name in the destination folder and renames in finish(); abort() (or destruction without
// finish()) removes the temporary.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sdinterp {

struct Frame {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // 8-bit RGB, row-major, width * height * 3 bytes
};

struct FrameSinkOptions {
  double fps = 10.0;
  int loop = 0;             // GIF/WebP loop count, 0 = forever
  bool overwrite = false;   // replace an existing output
};

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // Called once before the first frame with the animation's size and frame count.
  virtual void begin(int width, int height, int frame_count) = 0;
  virtual void add(const Frame& frame) = 0;
  // Completes the output (atomic rename). Throws IoError on failure, leaving nothing behind.
  virtual void finish() = 0;
  // Gives up: removes any temporary. Safe to call at any time, also after finish() (no-op then).
  virtual void abort() = 0;
  // What finish() produced (for the result line and metadata).
  virtual std::string description() const = 0;
};

// Writes DIR/frame_0000.png, DIR/frame_0001.png, ... (lossless). The folder is created if
// needed; frames go to a hidden temporary folder beside it and are moved in at finish().
std::unique_ptr<FrameSink> make_png_dir_sink(const std::string& dir, const FrameSinkOptions& options);

// Chooses the sink from the file extension (.gif). Throws ConfigError listing supported ones.
std::unique_ptr<FrameSink> make_file_sink(const std::string& path, const FrameSinkOptions& options);

}  // namespace sdinterp
