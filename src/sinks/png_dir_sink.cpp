// PNG frames: DIR/frame_0000.png ... written into a hidden temporary folder beside DIR and
// moved in by finish(), so DIR never shows a partial set.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sinks/atomic_output.h"
#include "sinks/png_io.h"
#include "sinks/sink_common.h"

namespace sdinterp {
namespace {

constexpr int kMaxPngSide = 1 << 20;

class PngDirSink : public FrameSink {
 public:
  PngDirSink(const std::string& dir, const FrameSinkOptions& options)
      : dir_(dir), temp_(dir, options.overwrite) {}

  void begin(int width, int height, int frame_count) override {
    sinks::check_begin(width, height, frame_count, kMaxPngSide);
    width_ = width;
    height_ = height;
  }

  void add(const Frame& frame) override {
    sinks::check_frame(frame, width_, height_, count_);
    char name[32];
    std::snprintf(name, sizeof name, "frame_%04ld.png", count_);
    sinks::write_png((std::filesystem::path(temp_.temp_dir()) / name).string(), frame);
    ++count_;
  }

  void finish() override {
    if (finished_) return;
    temp_.commit("frame_");
    finished_ = true;
  }

  void abort() override { temp_.discard(); }

  std::string description() const override {
    return std::to_string(count_) + " PNG frames in " + dir_;
  }

 private:
  std::string dir_;
  sinks::AtomicDir temp_;
  int width_ = 0;
  int height_ = 0;
  long count_ = 0;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<FrameSink> make_png_dir_sink(const std::string& dir,
                                             const FrameSinkOptions& options) {
  std::unique_ptr<FrameSink> sink = std::make_unique<PngDirSink>(dir, options);
  if (options.boomerang) sink = sinks::make_boomerang_sink(std::move(sink), dir);
  return sink;
}

}  // namespace sdinterp
