#include "sinks/sink_common.h"

#include "sdinterp/number_text.h"

#include <unistd.h>

#include <cmath>
#include <vector>

#include "io/atomic_output.h"
#include "sdinterp/errors.h"

namespace sdinterp::sinks {

void check_frame(const Frame& frame, int width, int height, long index) {
  if (frame.width != width || frame.height != height) {
    throw ConfigError("frame " + std::to_string(index) + " is " + std::to_string(frame.width) + "x" +
                      std::to_string(frame.height) + " but the animation is " + std::to_string(width) + "x" +
                      std::to_string(height) + "; all frames must have the same size");
  }
  if (frame.rgb.size() != static_cast<size_t>(width) * height * 3) {
    throw ConfigError("frame " + std::to_string(index) + " holds " + std::to_string(frame.rgb.size()) +
                      " bytes, expected width*height*3 = " + std::to_string(static_cast<size_t>(width) * height * 3));
  }
}

void check_begin(int width, int height, int frame_count, int max_side, const std::string& format) {
  if (width <= 0 || height <= 0 || width > max_side || height > max_side) {
    throw ConfigError("frame size " + std::to_string(width) + "x" + std::to_string(height) + " does not fit " + format +
                      ", which takes 1.." + std::to_string(max_side) + " pixels a side");
  }
  if (frame_count <= 0) throw ConfigError("an animation needs at least one frame");
}

const FpsLimits kGifFps = {
    "GIF", 50.0,
    "GIF delays are whole centiseconds and browsers slow down delays under 2 cs; use --fps 50 or less, or write "
    ".webp or .mp4",
    655.35, "a GIF frame lasts at most 655.35 s (its delay is 16 bits of centiseconds)"};
const FpsLimits kWebpFps = {"WebP", 1000.0, "WebP frame durations are whole milliseconds; use --fps 1000 or less",
                            16777.215,
                            "a WebP frame lasts at most 16777.215 s (its duration is 24 bits of milliseconds)"};
const FpsLimits kMp4Fps = {"MP4", 240.0, "use --fps 240 or less for MP4", 10000.0,
                           "an MP4 frame lasts at most 10000 s here (FFmpeg's MP4 muxer refuses H.264 frames "
                           "of about a day)"};

const std::vector<const FpsLimits*>& fps_limits() {
  static const std::vector<const FpsLimits*> all = {&kGifFps, &kWebpFps, &kMp4Fps};
  return all;
}

namespace {
// The lowest --fps the format takes, rounded up to two significant digits: what a message offers.
double lowest_fps_offered(const FpsLimits& limits) {
  const double lowest = 1.0 / limits.longest_frame_s;
  const double unit = std::pow(10.0, std::floor(std::log10(lowest)) - 1);
  return std::ceil(lowest / unit - 1e-9) * unit;
}
}  // namespace

void check_fps(double fps, const FpsLimits& limits) {
  if (!std::isfinite(fps) || fps <= 0.0) {
    throw ConfigError("--fps takes a number above 0, not " + number_text(fps));
  }
  if (fps > limits.max_fps) {
    throw ConfigError("--fps " + number_text(fps) + " is too high: " + limits.max_why);
  }
  if (fps * limits.longest_frame_s < 1.0) {
    throw ConfigError("--fps " + number_text(fps) + " is too low: " + limits.longest_why + "; use --fps " +
                      number_text(lowest_fps_offered(limits)) + " or more");
  }
}

int64_t frame_start(int64_t index, double fps, int64_t units_per_second) {
  return std::llround(static_cast<double>(index) * static_cast<double>(units_per_second) / fps);
}

namespace {

class BoomerangSink : public FrameSink {
 public:
  BoomerangSink(std::unique_ptr<FrameSink> inner, const std::string& output) : inner_(std::move(inner)) {
    const io::Temporary temp = io::create_temporary_beside(output, ".frames-", false);
    fd_ = temp.fd;
    // Unlinked at once: the space is returned however the process ends.
    ::unlink(temp.name.c_str());
  }
  ~BoomerangSink() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void begin(int width, int height, int frame_count) override {
    width_ = width;
    height_ = height;
    count_ = frame_count;
    inner_->begin(width, height, frame_count > 2 ? 2 * frame_count - 2 : frame_count);
  }

  void add(const Frame& frame) override {
    check_frame(frame, width_, height_, added_);
    inner_->add(frame);
    // The first and last frames are never replayed.
    if (added_ > 0 && added_ < count_ - 1) write_slot(frame.rgb, static_cast<off_t>(added_ - 1));
    ++added_;
  }

  void finish() override {
    Frame frame;
    frame.width = width_;
    frame.height = height_;
    frame.rgb.resize(static_cast<size_t>(width_) * height_ * 3);
    for (long i = added_ - 2; i >= 1; --i) {
      read_slot(frame.rgb, static_cast<off_t>(i - 1));
      inner_->add(frame);
    }
    inner_->finish();
  }

  void abort() override { inner_->abort(); }
  std::string description() const override { return inner_->description() + ", boomerang"; }

 private:
  void write_slot(const std::vector<uint8_t>& bytes, off_t slot) {
    io::write_all_at(fd_, bytes.data(), bytes.size(), slot * static_cast<off_t>(bytes.size()),
                     "cannot keep frames for --boomerang");
  }
  void read_slot(std::vector<uint8_t>& bytes, off_t slot) {
    io::read_all_at(fd_, bytes.data(), bytes.size(), slot * static_cast<off_t>(bytes.size()),
                    "cannot read back frames kept for --boomerang");
  }

  std::unique_ptr<FrameSink> inner_;
  int fd_ = -1;
  int width_ = 0;
  int height_ = 0;
  long count_ = 0;
  long added_ = 0;
};

}  // namespace

std::unique_ptr<FrameSink> make_boomerang_sink(std::unique_ptr<FrameSink> inner, const std::string& output) {
  return std::make_unique<BoomerangSink>(std::move(inner), output);
}

}  // namespace sdinterp::sinks
