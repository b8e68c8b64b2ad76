// make_background_sink: a sink whose encoder must see the frames in order on one thread (WebP's
// animation encoder, FFmpeg's) runs on a thread of its own, so that add() returns at once and the
// GPU's next decode or chunk overlaps the encoding.
#include <exception>
#include <memory>
#include <thread>

#include "sinks/bounded_queue.h"
#include "sinks/sink_common.h"

namespace sdinterp::sinks {
namespace {

class BackgroundSink : public FrameSink {
 public:
  explicit BackgroundSink(std::unique_ptr<FrameSink> inner) : inner_(std::move(inner)), queue_(4) {}

  ~BackgroundSink() override { stop(); }

  void begin(int width, int height, int frame_count) override {
    inner_->begin(width, height, frame_count);
    width_ = width;
    height_ = height;
    worker_ = std::thread([this] { encode_frames(); });
  }

  void add(const Frame& frame) override {
    check_frame(frame, width_, height_, count_);  // a bad frame is the caller's error, reported at once
    error_.rethrow();
    if (!queue_.push(std::make_shared<const Frame>(frame))) error_.rethrow();
    ++count_;
  }

  void finish() override {
    queue_.close();
    join();
    error_.rethrow();
    inner_->finish();
  }

  void abort() override {
    stop();
    inner_->abort();
  }

  std::string description() const override { return inner_->description(); }

 private:
  void encode_frames() {
    while (auto frame = queue_.pop()) {
      try {
        inner_->add(**frame);
      } catch (...) {
        error_.keep(std::current_exception());
        queue_.close(true);  // the output is lost: stop taking frames
        return;
      }
    }
  }

  void join() {
    if (worker_.joinable()) worker_.join();
  }

  void stop() {
    queue_.close(true);
    join();
  }

  std::unique_ptr<FrameSink> inner_;
  BoundedQueue<std::shared_ptr<const Frame>> queue_;
  std::thread worker_;
  WorkerError error_;
  int width_ = 0;
  int height_ = 0;
  long count_ = 0;
};

}  // namespace

std::unique_ptr<FrameSink> make_background_sink(std::unique_ptr<FrameSink> inner) {
  return std::make_unique<BackgroundSink>(std::move(inner));
}

}  // namespace sdinterp::sinks
