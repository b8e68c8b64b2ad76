// PNG frames: DIR/frame_0000.png ... (png_frame_name) written into a hidden temporary folder beside DIR and
// moved in by finish(), so DIR never shows a partial set. Frames are compressed on worker threads
// (a 512x512 frame takes about 40 ms): add() hands the frame over and returns, so the GPU's next
// decode or chunk overlaps the encoding.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "io/atomic_output.h"
#include "io/png_io.h"
#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sdinterp/number_text.h"
#include "sinks/bounded_queue.h"
#include "sinks/sink_common.h"

namespace sdinterp {
namespace {

constexpr int kMaxPngSide = 1 << 20;

class PngDirSink : public FrameSink {
 public:
  PngDirSink(const std::string& dir, const FrameSinkOptions& options)
      : dir_(dir), temp_(dir, options.overwrite), workers_(worker_count()), queue_(2 * workers_) {}

  ~PngDirSink() override { stop(); }

  void begin(int width, int height, int frame_count) override {
    sinks::check_begin(width, height, frame_count, kMaxPngSide, "PNG");
    width_ = width;
    height_ = height;
    digits_ = png_frame_digits(frame_count);
    for (size_t i = 0; i < workers_; ++i) threads_.emplace_back([this] { write_frames(); });
  }

  void add(const Frame& frame) override {
    sinks::check_frame(frame, width_, height_, count_);
    error_.rethrow();
    if (!queue_.push({count_, std::make_shared<Frame>(frame)})) error_.rethrow();
    ++count_;
  }

  void finish() override {
    if (finished_) return;
    queue_.close();
    join();
    error_.rethrow();
    temp_.commit(kPngFramePrefix);
    finished_ = true;
  }

  void abort() override {
    stop();
    temp_.discard();
  }

  std::string description() const override { return count_text(count_, "PNG frame") + " in " + dir_; }

 private:
  using Item = std::pair<long, std::shared_ptr<const Frame>>;

  static size_t worker_count() { return std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8); }

  void write_frames() {
    while (auto item = queue_.pop()) {
      try {
        const std::string name = png_frame_name(item->first, digits_);
        try {
          io::write_png((std::filesystem::path(temp_.temp_dir()) / name).string(), *item->second);
        } catch (const IoError& e) {
          // Named as the user knows it, not by its hidden temporary folder.
          std::string what = e.what();
          const std::string temp = temp_.temp_dir();
          if (auto at = what.find(temp); at != std::string::npos) what.replace(at, temp.size(), dir_);
          throw IoError(what);
        }
      } catch (...) {
        error_.keep(std::current_exception());
        queue_.close(true);  // the set is lost: stop taking frames
        return;
      }
    }
  }

  void join() {
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

  void stop() {
    queue_.close(true);
    join();
  }

  std::string dir_;
  io::AtomicDir temp_;
  size_t workers_;
  sinks::BoundedQueue<Item> queue_;
  std::vector<std::thread> threads_;
  sinks::WorkerError error_;
  int width_ = 0;
  int height_ = 0;
  int digits_ = 0;
  long count_ = 0;
  bool finished_ = false;
};

}  // namespace

int png_frame_digits(long frame_count) {
  int digits = 1;
  for (long last = frame_count - 1; last >= 10; last /= 10) ++digits;
  return std::max(4, digits);
}

std::string png_frame_name(long index, int digits) {
  char number[32];
  std::snprintf(number, sizeof number, "%0*ld", digits, index);
  return kPngFramePrefix + std::string(number) + ".png";
}

void refuse_folder_of_frames(const std::string& dir, bool overwrite, const std::string& named) {
  if (overwrite) return;
  std::error_code ec;
  std::string first;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kPngFramePrefix, 0) == 0 && (first.empty() || name < first)) first = name;
  }
  if (first.empty()) return;
  throw IoError(named + " already holds frames (" + (std::filesystem::path(dir) / first).string() +
                "); pass --overwrite to replace them, or give another folder");
}

std::unique_ptr<FrameSink> make_png_dir_sink(const std::string& dir, const FrameSinkOptions& options) {
  refuse_folder_of_frames(dir, options.overwrite, "output folder " + dir);
  std::unique_ptr<FrameSink> sink = std::make_unique<PngDirSink>(dir, options);
  if (options.boomerang) sink = sinks::make_boomerang_sink(std::move(sink), dir);
  return sink;
}

}  // namespace sdinterp
