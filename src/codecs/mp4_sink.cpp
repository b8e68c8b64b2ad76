// MP4 (H.264, yuv420p, BT.709 tagged, moov atom first so browsers start playing at once)
// through libavcodec/libavformat. Frames stream straight into the encoder.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <memory>
#include <string>

#include "codecs/codecs.h"
#include "io/atomic_output.h"
#include "sdinterp/errors.h"
#include "sdinterp/number_text.h"
#include "sinks/sink_common.h"

namespace sdinterp::sinks {
namespace {

constexpr int kMaxH264Side = 8192;

std::string av_error(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, text, sizeof text);
  return text;
}

class Mp4Sink : public FrameSink {
 public:
  Mp4Sink(const std::string& path, const FrameSinkOptions& options)
      : path_(path), options_(options), file_(path, options.overwrite) {
    // libavformat opens the temporary by name; the descriptor is not needed.
    file_.close_fd();
    // libav's progress chatter would interleave with ours; its errors reach the user as
    // IoError text anyway.
    av_log_set_level(AV_LOG_ERROR);
  }

  ~Mp4Sink() override { abort(); }

  void begin(int width, int height, int frame_count) override {
    check_begin(width, height, frame_count, kMaxH264Side, "MP4 (H.264)");
    width_ = width;
    height_ = height;
    // 4:2:0 chroma needs even sides: an odd frame gets its last row/column repeated.
    coded_width_ = (width + 1) & ~1;
    coded_height_ = (height + 1) & ~1;

    const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
    if (codec == nullptr) codec = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (codec == nullptr) {
      throw IoError(
          "no H.264 encoder in this libavcodec; install Debian's libavcodec (with "
          "libx264) or write .gif/.webp");
    }
    check(avformat_alloc_output_context2(&format_, nullptr, "mp4", file_.temp_path().c_str()), "cannot start");
    stream_ = avformat_new_stream(format_, nullptr);
    codec_ = avcodec_alloc_context3(codec);
    if (stream_ == nullptr || codec_ == nullptr) throw IoError("out of memory starting " + path_);

    AVRational rate = av_d2q(options_.fps, 1000000);
    codec_->width = coded_width_;
    codec_->height = coded_height_;
    codec_->pix_fmt = AV_PIX_FMT_YUV420P;
    codec_->time_base = av_inv_q(rate);
    codec_->framerate = rate;
    codec_->gop_size = 250;
    codec_->colorspace = AVCOL_SPC_BT709;
    codec_->color_primaries = AVCOL_PRI_BT709;
    codec_->color_trc = AVCOL_TRC_IEC61966_2_1;  // the frames are sRGB
    codec_->color_range = AVCOL_RANGE_MPEG;
    if (format_->oformat->flags & AVFMT_GLOBALHEADER) codec_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_opt_set(codec_->priv_data, "crf", std::to_string(options_.crf).c_str(), 0);
    av_opt_set(codec_->priv_data, "preset", "medium", 0);
    // Browsers play the High profile; 4:4:4 or 10-bit profiles they may not. H.264 is lossless
    // only in High 4:4:4 Predictive: --crf 0 takes it (the colour conversion to 4:2:0 stays lossy).
    av_opt_set(codec_->priv_data, "profile", options_.crf == 0 ? "high444" : "high", 0);
    check(avcodec_open2(codec_, codec, nullptr), "cannot open the H.264 encoder for");
    check(avcodec_parameters_from_context(stream_->codecpar, codec_), "cannot set up");
    stream_->time_base = codec_->time_base;
    stream_->avg_frame_rate = rate;

    check(avio_open(&format_->pb, file_.temp_path().c_str(), AVIO_FLAG_WRITE), "cannot open");
    AVDictionary* muxer_options = nullptr;
    av_dict_set(&muxer_options, "movflags", "+faststart", 0);
    int rc = avformat_write_header(format_, &muxer_options);
    av_dict_free(&muxer_options);
    check(rc, "cannot write the header of");

    scaler_ =
        sws_getContext(coded_width_, coded_height_, AV_PIX_FMT_RGB24, coded_width_, coded_height_, AV_PIX_FMT_YUV420P,
                       SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr);
    if (scaler_ == nullptr) throw IoError("cannot set up the colour conversion for " + path_);
    // RGB (full range) in, BT.709 limited-range YUV out, matching the tags above.
    const int* bt709 = sws_getCoefficients(SWS_CS_ITU709);
    sws_setColorspaceDetails(scaler_, bt709, 1, bt709, 0, 0, 1 << 16, 1 << 16);
    frame_ = av_frame_alloc();
    packet_ = av_packet_alloc();
    if (frame_ == nullptr || packet_ == nullptr) throw IoError("out of memory starting " + path_);
    frame_->format = AV_PIX_FMT_YUV420P;
    frame_->width = coded_width_;
    frame_->height = coded_height_;
    check(av_frame_get_buffer(frame_, 0), "out of memory for");
    padded_.resize(static_cast<size_t>(coded_width_) * coded_height_ * 3);
  }

  void add(const Frame& frame) override {
    check_frame(frame, width_, height_, count_);
    check(av_frame_make_writable(frame_), "out of memory for");
    const uint8_t* rgb = frame.rgb.data();
    int stride = width_ * 3;
    if (coded_width_ != width_ || coded_height_ != height_) {
      for (int y = 0; y < coded_height_; ++y) {
        const uint8_t* src = frame.rgb.data() + static_cast<size_t>(std::min(y, height_ - 1)) * stride;
        uint8_t* dst = padded_.data() + static_cast<size_t>(y) * coded_width_ * 3;
        std::copy(src, src + stride, dst);
        if (coded_width_ != width_) std::copy(src + stride - 3, src + stride, dst + stride);
      }
      rgb = padded_.data();
      stride = coded_width_ * 3;
    }
    const uint8_t* planes[1] = {rgb};
    int strides[1] = {stride};
    sws_scale(scaler_, planes, strides, 0, coded_height_, frame_->data, frame_->linesize);
    frame_->pts = count_;
    check(avcodec_send_frame(codec_, frame_), "cannot encode a frame of");
    drain();
    ++count_;
  }

  void finish() override {
    if (finished_) return;
    if (format_ == nullptr) throw IoError("MP4 " + path_ + " was finished before it was begun");
    check(avcodec_send_frame(codec_, nullptr), "cannot finish");
    drain();
    check(av_write_trailer(format_), "cannot finish");
    check(avio_closep(&format_->pb), "cannot finish");
    release();
    file_.commit();
    finished_ = true;
  }

  void abort() override {
    if (format_ != nullptr && format_->pb != nullptr) avio_closep(&format_->pb);
    release();
    file_.discard();
  }

  std::string description() const override {
    std::string text = "MP4 " + path_ + " (H.264, " + count_text(count_, "frame") + ", " + std::to_string(width_) +
                       "x" + std::to_string(height_);
    if (coded_width_ != width_ || coded_height_ != height_) {
      text += ", padded to " + std::to_string(coded_width_) + "x" + std::to_string(coded_height_);
    }
    return text + ")";
  }

 private:
  void check(int rc, const std::string& what) {
    if (rc >= 0) return;
    abort();
    throw IoError(what + " " + path_ + ": " + av_error(rc));
  }

  // Moves every packet the encoder has ready into the file.
  void drain() {
    while (true) {
      int rc = avcodec_receive_packet(codec_, packet_);
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check(rc, "cannot encode a frame of");
      // Each frame lasts one tick of 1/fps; the muxer needs it for the last frame's length.
      packet_->duration = 1;
      av_packet_rescale_ts(packet_, codec_->time_base, stream_->time_base);
      packet_->stream_index = stream_->index;
      check(av_interleaved_write_frame(format_, packet_), "cannot write");
    }
  }

  void release() {
    sws_freeContext(scaler_);
    scaler_ = nullptr;
    av_frame_free(&frame_);
    av_packet_free(&packet_);
    avcodec_free_context(&codec_);
    if (format_ != nullptr) {
      avformat_free_context(format_);
      format_ = nullptr;
    }
  }

  std::string path_;
  FrameSinkOptions options_;
  io::AtomicFile file_;
  AVFormatContext* format_ = nullptr;
  AVStream* stream_ = nullptr;
  AVCodecContext* codec_ = nullptr;
  SwsContext* scaler_ = nullptr;
  AVFrame* frame_ = nullptr;
  AVPacket* packet_ = nullptr;
  std::vector<uint8_t> padded_;
  int width_ = 0;
  int height_ = 0;
  int coded_width_ = 0;
  int coded_height_ = 0;
  long count_ = 0;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<FrameSink> make_mp4_sink(const std::string& path, const FrameSinkOptions& options) {
  check_fps(options.fps, kMp4Fps);
  if (options.crf < 0 || options.crf > 51) {
    throw ConfigError("--crf must be between 0 and 51 (lower is better), got " + std::to_string(options.crf));
  }
  return std::make_unique<Mp4Sink>(path, options);
}

}  // namespace sdinterp::sinks
