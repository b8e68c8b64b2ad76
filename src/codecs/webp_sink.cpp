// Animated WebP through libwebp's WebPAnimEncoder, lossy or lossless. The encoder keeps each
// frame compressed (never the raw frames) and assembles the file in finish().
#include <webp/encode.h>
#include <webp/mux.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <string>

#include "codecs/codecs.h"
#include "io/atomic_output.h"
#include "sdinterp/errors.h"
#include "sdinterp/number_text.h"
#include "sinks/sink_common.h"

namespace sdinterp::sinks {
namespace {

constexpr int kMaxWebpSide = WEBP_MAX_DIMENSION;

class WebpSink : public FrameSink {
 public:
  WebpSink(const std::string& path, const FrameSinkOptions& options)
      : path_(path), options_(options), file_(path, options.overwrite) {}

  ~WebpSink() override { abort(); }

  void begin(int width, int height, int frame_count) override {
    check_begin(width, height, frame_count, kMaxWebpSide, "WebP");
    // libwebp's frame timestamps are int milliseconds.
    const int64_t end_ms = frame_start(frame_count, options_.fps, 1000);
    if (end_ms > std::numeric_limits<int>::max()) {
      throw ConfigError(count_text(frame_count, "frame") + " at --fps " + number_text(options_.fps) + " would last " +
                        number_text(static_cast<double>(end_ms) / 1000.0) +
                        " s; a WebP animation lasts at most 2147483.647 s (its timestamps are 31 bits of "
                        "milliseconds): raise --fps or write .mp4");
    }
    width_ = width;
    height_ = height;
    WebPAnimEncoderOptions anim;
    if (!WebPAnimEncoderOptionsInit(&anim)) throw IoError("libwebp version mismatch");
    anim.anim_params.loop_count = options_.loop;
    // Lossy frames may fall back to lossless where that is smaller (flat regions).
    anim.allow_mixed = options_.lossless ? 0 : 1;
    encoder_ = WebPAnimEncoderNew(width, height, &anim);
    if (encoder_ == nullptr) throw IoError("cannot start the WebP encoder for " + path_);
    if (!WebPConfigInit(&config_)) throw IoError("libwebp version mismatch");
    config_.lossless = options_.lossless ? 1 : 0;
    config_.quality = options_.lossless ? 75.f : static_cast<float>(options_.quality);
    config_.method = 4;
    config_.thread_level = 1;
    if (!WebPValidateConfig(&config_)) {
      throw ConfigError("invalid WebP settings (quality must be 0..100)");
    }
  }

  void add(const Frame& frame) override {
    check_frame(frame, width_, height_, count_);
    WebPPicture picture;
    if (!WebPPictureInit(&picture)) throw IoError("libwebp version mismatch");
    picture.width = width_;
    picture.height = height_;
    picture.use_argb = 1;
    bool ok = WebPPictureImportRGB(&picture, frame.rgb.data(), width_ * 3) != 0 &&
              WebPAnimEncoderAdd(encoder_, &picture, static_cast<int>(frame_start(count_, options_.fps, 1000)),
                                 &config_) != 0;
    WebPPictureFree(&picture);
    if (!ok) {
      throw IoError("cannot encode frame " + std::to_string(count_) + " of " + path_ + ": " +
                    WebPAnimEncoderGetError(encoder_));
    }
    ++count_;
  }

  void finish() override {
    if (finished_) return;
    if (encoder_ == nullptr) throw IoError("WebP " + path_ + " was finished before it was begun");
    // The end timestamp gives the last frame its duration.
    WebPData data;
    WebPDataInit(&data);
    bool ok = WebPAnimEncoderAdd(encoder_, nullptr, static_cast<int>(frame_start(count_, options_.fps, 1000)),
                                 nullptr) != 0 &&
              WebPAnimEncoderAssemble(encoder_, &data) != 0;
    if (!ok) {
      std::string why = WebPAnimEncoderGetError(encoder_);
      abort();
      throw IoError("cannot assemble " + path_ + ": " + why);
    }
    stored_frames_ = stored_frames(data);
    try {
      io::write_all(file_.fd(), data.bytes, data.size, path_);
    } catch (...) {
      WebPDataClear(&data);
      abort();
      throw;
    }
    WebPDataClear(&data);
    WebPAnimEncoderDelete(encoder_);
    encoder_ = nullptr;
    file_.commit();
    finished_ = true;
  }

  void abort() override {
    if (encoder_ != nullptr) {
      WebPAnimEncoderDelete(encoder_);
      encoder_ = nullptr;
    }
    file_.discard();
  }

  std::string description() const override {
    return std::string("WebP ") + path_ + " (" + count_text(count_, "frame") + ", " + std::to_string(width_) + "x" +
           std::to_string(height_) + (options_.lossless ? ", lossless" : ", lossy") + stored_note() + ")";
  }

 private:
  std::string path_;
  FrameSinkOptions options_;
  io::AtomicFile file_;
  WebPAnimEncoder* encoder_ = nullptr;
  WebPConfig config_{};
  int width_ = 0;
  int height_ = 0;
  long count_ = 0;
  long stored_frames_ = -1;  // frames in the file, known after finish()
  bool finished_ = false;

  // libwebp merges identical neighbouring frames into one longer frame, and stores a sequence of
  // identical frames as a still image: what the file holds, said in the result line.
  static long stored_frames(const WebPData& data) {
    WebPMux* mux = WebPMuxCreate(&data, 0);
    if (mux == nullptr) return -1;
    int frames = 0;
    const bool ok = WebPMuxNumChunks(mux, WEBP_CHUNK_ANMF, &frames) == WEBP_MUX_OK;
    WebPMuxDelete(mux);
    if (!ok) return -1;
    return frames == 0 ? 1 : frames;  // no ANMF chunk: a still image
  }
  std::string stored_note() const {
    if (stored_frames_ < 0 || stored_frames_ == count_) return "";
    if (stored_frames_ == 1) return "; the frames are identical: stored as one still image";
    return "; stored as " + std::to_string(stored_frames_) + " frames: identical neighbours merged, same timing";
  }
};

}  // namespace

std::unique_ptr<FrameSink> make_webp_sink(const std::string& path, const FrameSinkOptions& options) {
  check_fps(options.fps, kWebpFps);
  if (options.loop < 0 || options.loop > 65535) {
    throw ConfigError("--loop must be 0 (forever) or a play count up to 65535, got " + std::to_string(options.loop));
  }
  if (!(options.quality >= 0 && options.quality <= 100)) {
    throw ConfigError("--quality takes a number from 0 to 100, not " + number_text(options.quality));
  }
  return std::make_unique<WebpSink>(path, options);
}

}  // namespace sdinterp::sinks
