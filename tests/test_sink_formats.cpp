// WebP (decoded with libwebp's WebPAnimDecoder: Debian's ffmpeg 5.1 cannot decode animated
// WebP) and MP4 (ffprobe/ffmpeg): frame count, size, timing, fidelity.
#include <gtest/gtest.h>
#include <webp/demux.h>

#include <string>
#include <vector>

#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sink_test_util.h"

namespace sdinterp {
namespace {

using test::TempDir;

std::vector<Frame> write(const std::string& path, int count, int width, int height, const FrameSinkOptions& options) {
  std::vector<Frame> frames;
  auto sink = make_file_sink(path, options);
  sink->begin(width, height, count);
  for (int i = 0; i < count; ++i) {
    frames.push_back(test::smooth_frame(width, height, i));
    sink->add(frames.back());
  }
  sink->finish();
  return frames;
}

struct DecodedWebp {
  int width = 0;
  int height = 0;
  int loop_count = -1;
  std::vector<int> timestamps;               // end time of each frame, ms
  std::vector<std::vector<uint8_t>> frames;  // RGB
};

DecodedWebp decode_webp(const std::string& path) {
  std::string bytes = test::read_text(path);
  WebPData data = {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
  WebPAnimDecoderOptions options;
  WebPAnimDecoderOptionsInit(&options);
  options.color_mode = MODE_RGBA;
  WebPAnimDecoder* decoder = WebPAnimDecoderNew(&data, &options);
  if (decoder == nullptr) throw std::runtime_error("libwebp cannot open " + path);
  WebPAnimInfo info;
  WebPAnimDecoderGetInfo(decoder, &info);
  DecodedWebp out;
  out.width = static_cast<int>(info.canvas_width);
  out.height = static_cast<int>(info.canvas_height);
  out.loop_count = static_cast<int>(info.loop_count);
  while (WebPAnimDecoderHasMoreFrames(decoder)) {
    uint8_t* rgba = nullptr;
    int timestamp = 0;
    if (!WebPAnimDecoderGetNext(decoder, &rgba, &timestamp)) break;
    std::vector<uint8_t> rgb;
    for (size_t i = 0; i < static_cast<size_t>(out.width) * out.height; ++i) {
      rgb.insert(rgb.end(), rgba + 4 * i, rgba + 4 * i + 3);
    }
    out.frames.push_back(std::move(rgb));
    out.timestamps.push_back(timestamp);
  }
  WebPAnimDecoderDelete(decoder);
  return out;
}

TEST(EveryFileFormat, ASizeBeyondItsLimitIsRefusedNamingTheFormat) {
  TempDir dir;
  struct Case {
    const char* name;
    const char* says;
  };
  for (const Case& c : {Case{"a.gif", "does not fit GIF, which takes 1..65535 pixels a side"},
                        Case{"a.webp", "does not fit WebP, which takes 1..16383 pixels a side"},
                        Case{"a.mp4", "does not fit MP4 (H.264), which takes 1..8192 pixels a side"}}) {
    const int side = std::stoi(std::string(c.says).substr(std::string(c.says).find("..") + 2)) + 1;
    auto sink = make_file_sink(dir / c.name, {});
    try {
      sink->begin(side, 8, 2);
      FAIL() << c.name << " took " << side << " pixels";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(side) + "x8 " + c.says), std::string::npos) << e.what();
    }
    sink->abort();
  }
  EXPECT_TRUE(test::list_dir(dir.str()).empty());
}

TEST(WebpSink, LosslessFramesRoundTripWithTiming) {
  TempDir dir;
  FrameSinkOptions options;
  options.lossless = true;
  options.fps = 12;
  options.loop = 3;
  std::vector<Frame> frames = write(dir / "a.webp", 6, 40, 24, options);
  DecodedWebp webp = decode_webp(dir / "a.webp");
  EXPECT_EQ(webp.width, 40);
  EXPECT_EQ(webp.height, 24);
  EXPECT_EQ(webp.loop_count, 3);
  ASSERT_EQ(webp.frames.size(), 6u);
  // Frame i ends at round((i + 1) * 1000 / 12) ms: 83, 167, 250, 333, 417, 500.
  EXPECT_EQ(webp.timestamps, (std::vector<int>{83, 167, 250, 333, 417, 500}));
  for (size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(webp.frames[i], frames[i].rgb) << i;
}

TEST(WebpSink, LossyFramesAreCloseAndLoopForever) {
  TempDir dir;
  FrameSinkOptions options;
  options.quality = 90;
  std::vector<Frame> frames = write(dir / "a.webp", 5, 64, 48, options);
  DecodedWebp webp = decode_webp(dir / "a.webp");
  EXPECT_EQ(webp.loop_count, 0);
  ASSERT_EQ(webp.frames.size(), 5u);
  EXPECT_EQ(webp.timestamps.back(), 500);  // 5 frames at the default 10 fps
  for (size_t i = 0; i < frames.size(); ++i) EXPECT_GT(test::psnr(webp.frames[i], frames[i].rgb), 30.0);
}

TEST(WebpSink, BadQualityIsAConfigError) {
  TempDir dir;
  FrameSinkOptions options;
  options.quality = 150;
  EXPECT_THROW(make_file_sink(dir / "a.webp", options), ConfigError);
}

// A WebP frame lasts at most 2^24 - 1 ms, and libwebp's timestamps are int milliseconds: an --fps
// below the first, or an animation longer than the second, is refused before anything is written.
TEST(WebpSink, FpsBeyondItsTimingIsRefused) {
  TempDir dir;
  FrameSinkOptions options;
  options.lossless = true;
  options.fps = 1000.0 / 16777215;
  write(dir / "slow.webp", 2, 8, 8, options);
  EXPECT_EQ(decode_webp(dir / "slow.webp").timestamps, (std::vector<int>{16777215, 33554430}));
  options.fps = 0.00005;
  EXPECT_THROW(make_file_sink(dir / "slower.webp", options), ConfigError);
  options.fps = 0.0001;  // 10000 s a frame: 215 frames pass the int's 2147483.647 s
  auto sink = make_file_sink(dir / "long.webp", options);
  sink->begin(8, 8, 214);
  sink->abort();
  sink = make_file_sink(dir / "long.webp", options);
  try {
    sink->begin(8, 8, 215);
    ADD_FAILURE() << "215 frames of 10000 s were taken for a WebP";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("215 frames at --fps 0.0001 would last 2150000 s; a WebP animation lasts "
                                         "at most 2147483.647 s"),
              std::string::npos)
        << e.what();
  }
  sink->abort();
  EXPECT_EQ(test::list_dir(dir.str()), (std::vector<std::string>{"slow.webp"}));
}

class Mp4Sink : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::have_ffprobe()) GTEST_SKIP() << "ffprobe not installed (scripts/setup.sh installs it)";
  }
};

TEST_F(Mp4Sink, H264Yuv420pWithFrameCountSizeAndTiming) {
  TempDir dir;
  FrameSinkOptions options;
  options.fps = 24;
  std::vector<Frame> frames = write(dir / "a.mp4", 36, 64, 48, options);
  std::string out = dir / "a.mp4";
  EXPECT_EQ(test::ffprobe_value(out, "stream=codec_name"), "h264");
  EXPECT_EQ(test::ffprobe_value(out, "stream=pix_fmt"), "yuv420p");
  EXPECT_EQ(test::ffprobe_value(out, "stream=width"), "64");
  EXPECT_EQ(test::ffprobe_value(out, "stream=height"), "48");
  EXPECT_EQ(test::ffprobe_value(out, "stream=avg_frame_rate"), "24/1");
  EXPECT_EQ(test::ffprobe_value(out, "stream=nb_read_frames", true), "36");
  EXPECT_NEAR(std::stod(test::ffprobe_value(out, "format=duration")), 1.5, 1e-3);

  // Decoded back to RGB, the frames are close to what went in.
  test::CommandResult raw =
      test::run_command("ffmpeg -v error -i " + test::quote(out) + " -f rawvideo -pix_fmt rgb24 - 2>/dev/null");
  ASSERT_EQ(raw.output.size(), frames.size() * 64 * 48 * 3);
  for (size_t i = 0; i < frames.size(); ++i) {
    std::vector<uint8_t> got(raw.output.begin() + i * 64 * 48 * 3, raw.output.begin() + (i + 1) * 64 * 48 * 3);
    EXPECT_GT(test::psnr(got, frames[i].rgb), 30.0) << "frame " << i;
  }
}

TEST_F(Mp4Sink, OddSizesArePaddedToEven) {
  TempDir dir;
  write(dir / "a.mp4", 3, 31, 17, {});
  EXPECT_EQ(test::ffprobe_value(dir / "a.mp4", "stream=width"), "32");
  EXPECT_EQ(test::ffprobe_value(dir / "a.mp4", "stream=height"), "18");
  EXPECT_EQ(test::ffprobe_value(dir / "a.mp4", "stream=nb_read_frames", true), "3");
}

// FFmpeg's MP4 muxer fails on frames of about a day ("Not yet implemented in FFmpeg"): the sink
// takes frames of up to 10000 s and says so for longer ones.
TEST_F(Mp4Sink, SlowestFpsIsWrittenAndSlowerIsRefused) {
  TempDir dir;
  FrameSinkOptions options;
  options.fps = 0.0001;
  write(dir / "slow.mp4", 3, 16, 16, options);
  EXPECT_NEAR(std::stod(test::ffprobe_value(dir / "slow.mp4", "format=duration")), 30000.0, 1e-3);
  for (double fps : {0.00009, 0.00001}) {
    options.fps = fps;
    EXPECT_THROW(make_file_sink(dir / "slower.mp4", options), ConfigError) << fps;
  }
  EXPECT_EQ(test::list_dir(dir.str()), (std::vector<std::string>{"slow.mp4"}));
}

TEST_F(Mp4Sink, MoovAtomComesFirstForBrowsers) {
  TempDir dir;
  write(dir / "a.mp4", 3, 32, 32, {});
  std::string bytes = test::read_text(dir / "a.mp4");
  EXPECT_LT(bytes.find("moov"), bytes.find("mdat"));
}

}  // namespace
}  // namespace sdinterp
