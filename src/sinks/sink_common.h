// Pieces every sink shares: frame checks, frame timing, the boomerang and background wrappers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sdinterp/frame_sink.h"

namespace sdinterp::sinks {

// Throws ConfigError unless `frame` is width x height with a full RGB buffer.
void check_frame(const Frame& frame, int width, int height, long index);

// Throws ConfigError unless begin() got a usable size and count.
void check_begin(int width, int height, int frame_count, int max_side, const std::string& format);

// One animated format's limits on --fps: its sink checks them, and --fps's help lists the highest.
struct FpsLimits {
  const char* format;       // "GIF", as the help names it
  double max_fps;           // --fps at most this
  const char* max_why;      // why, and what to do instead
  double longest_frame_s;   // a frame lasts at most this long: --fps at least 1 / longest_frame_s
  const char* longest_why;  // what sets that length
};
extern const FpsLimits kGifFps;
extern const FpsLimits kWebpFps;
extern const FpsLimits kMp4Fps;
// The three, in the order the help lists them.
const std::vector<const FpsLimits*>& fps_limits();

// Throws ConfigError unless fps is finite, above 0 and within the format's limits: one line
// naming the limit and the nearest --fps the format takes.
void check_fps(double fps, const FpsLimits& limits);

// Start time of frame `index` in units of 1/`units_per_second` s, rounded to nearest. Frame
// durations are differences of these, so rounding never accumulates: at 15 fps GIF delays go
// 7, 6, 7, 7, 6, 7 ... centiseconds and 15 frames last exactly one second.
int64_t frame_start(int64_t index, double fps, int64_t units_per_second);

// Plays the frames forward then back (0 1 ... n-1 n-2 ... 1) through `inner`. The frames are
// kept in an unlinked temporary file beside `output` (disk, not memory) until finish().
std::unique_ptr<FrameSink> make_boomerang_sink(std::unique_ptr<FrameSink> inner, const std::string& output);

// Runs `inner`'s add() calls, in order, on a thread of its own (a queue of 4 frames between):
// add() returns at once; the first error of the encoder is thrown by the next add() or finish().
std::unique_ptr<FrameSink> make_background_sink(std::unique_ptr<FrameSink> inner);

}  // namespace sdinterp::sinks
