// Animated GIF through giflib: a local palette per frame (see quantize.h for why), frames after
// the first cropped to what changed with unchanged pixels transparent, delays in centiseconds
// with the rounding carried, NETSCAPE2.0 looping.
#include <gif_lib.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "io/atomic_output.h"
#include "sdinterp/errors.h"
#include "sdinterp/number_text.h"
#include "sinks/bounded_queue.h"
#include "sinks/quantize.h"
#include "sinks/sink_common.h"
#include "sinks/sinks.h"

namespace sdinterp::sinks {
namespace {

constexpr int kMaxGifSide = 65535;

std::string gif_error(int code) {
  const char* text = GifErrorString(code);
  return text != nullptr ? text : "unknown giflib error";
}

// Threads besides the caller's: one builds each frame's palette, one per band of the frame
// (see FrameMapper) maps that band of every frame in turn, and one joins the bands and writes.
// A frame's palette depends only on the previous palette, and a band's mapping only on the
// same band of the previous frame, so no stage waits for a whole frame to be mapped before
// starting the next: with the caller decoding or generating the next frame all cores stay
// busy. Queues hold at most two frames each: memory stays flat however long the animation.
class GifSink : public FrameSink {
 public:
  GifSink(const std::string& path, const FrameSinkOptions& options)
      : path_(path), options_(options), file_(path, options.overwrite), palettes_(255) {}

  ~GifSink() override { abort(); }

  void begin(int width, int height, int frame_count) override {
    check_begin(width, height, frame_count, kMaxGifSide, "GIF");
    width_ = width;
    height_ = height;
    mapper_ = std::make_unique<FrameMapper>(width, height, options_.dither);
    for (int b = 0; b < mapper_->bands(); ++b) {
      band_queues_.push_back(std::make_unique<BoundedQueue<std::shared_ptr<Job>>>(2));
    }
    int error = 0;
    gif_ = EGifOpenFileHandle(file_.fd(), &error);
    if (gif_ == nullptr) fail("cannot start the GIF", error);
    // giflib owns the descriptor from here on and closes it in EGifCloseFile.
    file_.close_fd(false);
    EGifSetGifVersion(gif_, true);
    if (EGifPutScreenDesc(gif_, width, height, 8, 0, nullptr) == GIF_ERROR) {
      fail("cannot write the GIF header", gif_->Error);
    }
    write_loop_extension();
    palette_thread_ = std::thread([this] { guarded([this] { build_palettes(); }); });
    for (int b = 0; b < mapper_->bands(); ++b) {
      band_threads_.emplace_back([this, b] { guarded([this, b] { map_bands(b); }); });
    }
    writer_thread_ = std::thread([this] { guarded([this] { write_frames(); }); });
  }

  void add(const Frame& frame) override {
    check_frame(frame, width_, height_, count_);
    error_.rethrow();
    if (!frames_.push(frame)) error_.rethrow();
    ++count_;
  }

  void finish() override {
    if (finished_) return;
    if (gif_ == nullptr) throw IoError("GIF " + path_ + " was finished before it was begun");
    frames_.close();
    join();
    error_.rethrow();
    int error = 0;
    GifFileType* gif = gif_;
    gif_ = nullptr;
    if (EGifCloseFile(gif, &error) == GIF_ERROR) {
      file_.discard();
      throw IoError("cannot finish " + path_ + ": " + gif_error(error) + " (check free disk space)");
    }
    file_.commit();
    finished_ = true;
  }

  void abort() override {
    stop_all();
    join();
    if (gif_ != nullptr) {
      int error = 0;
      EGifCloseFile(gif_, &error);
      gif_ = nullptr;
    }
    file_.discard();
  }

  std::string description() const override {
    return "GIF " + path_ + " (" + count_text(count_, "frame") + ", " + std::to_string(width_) + "x" +
           std::to_string(height_) + ")";
  }

 private:
  [[noreturn]] void fail(const std::string& what, int error) {
    throw IoError(what + " " + path_ + ": " + gif_error(error) + " (check free disk space)");
  }

  // Runs a stage; its first error is kept for the caller and stops the whole pipeline.
  template <typename F>
  void guarded(F stage) {
    try {
      stage();
    } catch (...) {
      error_.keep(std::current_exception());
      stop_all();
    }
  }

  // Every queue closed with its items dropped, and a writer waiting for bands woken.
  void stop_all() {
    frames_.close(true);
    for (auto& queue : band_queues_) queue->close(true);
    jobs_.close(true);
    std::lock_guard<std::mutex> lock(done_mutex_);
    stopping_ = true;
    band_done_.notify_all();
  }

  void join() {
    if (palette_thread_.joinable()) palette_thread_.join();
    for (std::thread& t : band_threads_) {
      if (t.joinable()) t.join();
    }
    if (writer_thread_.joinable()) writer_thread_.join();
  }

  void build_palettes() {
    while (std::optional<Frame> frame = frames_.pop()) {
      Palette palette = palettes_.build(*frame);
      auto job = std::make_shared<Job>();
      job->work = mapper_->start(std::move(*frame), std::move(palette));
      // The writer's queue first: it is the one that bounds the frames in flight.
      if (!jobs_.push(job)) return;
      for (auto& queue : band_queues_) {
        if (!queue->push(job)) return;
      }
    }
    jobs_.close();
    for (auto& queue : band_queues_) queue->close();
  }

  void map_bands(int band) {
    while (std::optional<std::shared_ptr<Job>> job = band_queues_[band]->pop()) {
      mapper_->map_band(*(*job)->work, band);
      std::lock_guard<std::mutex> lock(done_mutex_);
      ++(*job)->bands_done;
      band_done_.notify_all();
    }
  }

  void write_frames() {
    long index = 0;
    int bands = mapper_->bands();
    while (std::optional<std::shared_ptr<Job>> job = jobs_.pop()) {
      {
        std::unique_lock<std::mutex> lock(done_mutex_);
        band_done_.wait(lock, [&] { return stopping_ || (*job)->bands_done == bands; });
        if ((*job)->bands_done != bands) return;
      }
      MappedFrame mapped = mapper_->finish(*(*job)->work);
      write_frame(mapped, index++);
    }
  }

  void write_loop_extension() {
    // --loop N plays N times; NETSCAPE2.0 counts repeats after the first play (0 = forever).
    // A single play needs no extension at all.
    if (options_.loop == 1) return;
    int repeats = options_.loop == 0 ? 0 : options_.loop - 1;
    unsigned char app[] = {'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0'};
    unsigned char sub[] = {1, static_cast<unsigned char>(repeats & 0xff),
                           static_cast<unsigned char>((repeats >> 8) & 0xff)};
    if (EGifPutExtensionLeader(gif_, APPLICATION_EXT_FUNC_CODE) == GIF_ERROR ||
        EGifPutExtensionBlock(gif_, sizeof app, app) == GIF_ERROR ||
        EGifPutExtensionBlock(gif_, sizeof sub, sub) == GIF_ERROR || EGifPutExtensionTrailer(gif_) == GIF_ERROR) {
      fail("cannot write the loop block of", gif_->Error);
    }
  }

  void write_frame(const MappedFrame& mapped, long index) {
    GraphicsControlBlock gcb;
    // Each frame draws over the previous one: transparent pixels show what was there.
    gcb.DisposalMode = DISPOSE_DO_NOT;
    gcb.UserInputFlag = false;
    gcb.DelayTime = static_cast<int>(frame_start(index + 1, options_.fps, 100) - frame_start(index, options_.fps, 100));
    gcb.TransparentColor = mapped.transparent < 0 ? NO_TRANSPARENT_COLOR : mapped.transparent;
    GifByteType extension[4];
    size_t length = EGifGCBToExtension(&gcb, extension);
    if (EGifPutExtension(gif_, GRAPHICS_EXT_FUNC_CODE, static_cast<int>(length), extension) == GIF_ERROR) {
      fail("cannot write a frame of", gif_->Error);
    }

    std::vector<GifColorType> colors(mapped.palette.size());
    for (size_t i = 0; i < colors.size(); ++i) {
      colors[i] = {mapped.palette[i][0], mapped.palette[i][1], mapped.palette[i][2]};
    }
    ColorMapObject* map = GifMakeMapObject(static_cast<int>(colors.size()), colors.data());
    if (map == nullptr) throw IoError("out of memory writing " + path_);
    int rc = EGifPutImageDesc(gif_, mapped.left, mapped.top, mapped.width, mapped.height, false, map);
    GifFreeMapObject(map);
    if (rc == GIF_ERROR) fail("cannot write a frame of", gif_->Error);
    // giflib wrote the minimum code size (the table's bits) with the descriptor; the code
    // stream follows in sub-blocks of at most 255 bytes, each led by its length.
    GifByteType block[256];
    for (size_t at = 0; at < mapped.lzw.size(); at += 255) {
      size_t n = std::min<size_t>(255, mapped.lzw.size() - at);
      block[0] = static_cast<GifByteType>(n);
      std::copy(mapped.lzw.begin() + at, mapped.lzw.begin() + at + n, block + 1);
      if (EGifPutCodeNext(gif_, block) == GIF_ERROR) fail("cannot write a frame of", gif_->Error);
    }
    if (EGifPutCodeNext(gif_, nullptr) == GIF_ERROR) fail("cannot write a frame of", gif_->Error);
  }

  std::string path_;
  FrameSinkOptions options_;
  io::AtomicFile file_;
  PaletteBuilder palettes_;
  std::unique_ptr<FrameMapper> mapper_;
  // A frame on its way from the palette stage through the band mappers to the writer.
  struct Job {
    std::shared_ptr<FrameMapper::Work> work;
    int bands_done = 0;  // guarded by done_mutex_
  };
  BoundedQueue<Frame> frames_{2};
  std::vector<std::unique_ptr<BoundedQueue<std::shared_ptr<Job>>>> band_queues_;
  BoundedQueue<std::shared_ptr<Job>> jobs_{2};
  std::mutex done_mutex_;
  std::condition_variable band_done_;
  bool stopping_ = false;  // guarded by done_mutex_
  std::thread palette_thread_;
  std::vector<std::thread> band_threads_;
  std::thread writer_thread_;
  WorkerError error_;
  GifFileType* gif_ = nullptr;
  int width_ = 0;
  int height_ = 0;
  long count_ = 0;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<FrameSink> make_gif_sink(const std::string& path, const FrameSinkOptions& options) {
  check_fps(options.fps, kGifFps);
  if (options.loop < 0 || options.loop > 65536) {
    throw ConfigError("--loop must be 0 (forever) or a play count up to 65536, got " + std::to_string(options.loop));
  }
  return std::make_unique<GifSink>(path, options);
}

}  // namespace sdinterp::sinks
