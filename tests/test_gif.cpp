// The GIF sink, decoded with giflib: frame count, size, delays (centiseconds, rounding carried),
// the NETSCAPE2.0 loop block, disposal and transparency composited back into the frames, every
// dither mode's fidelity, lossless round trips (which also exercise LZW dictionary resets),
// --boomerang, and ffprobe's view of the same file.
#include <gif_lib.h>
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sink_test_util.h"

namespace sdinterp {
namespace {

using test::TempDir;

struct DecodedGif {
  int width = 0;
  int height = 0;
  std::vector<int> delays;                   // centiseconds
  std::vector<std::vector<uint8_t>> frames;  // composited RGB, as a viewer sees them
  int loop_block = -1;                       // NETSCAPE2.0 repeat count, -1 if absent
  bool all_keep_disposal = true;
};

DecodedGif decode_gif(const std::string& path) {
  int error = 0;
  GifFileType* gif = DGifOpenFileName(path.c_str(), &error);
  if (gif == nullptr) throw std::runtime_error("giflib cannot open " + path);
  if (DGifSlurp(gif) == GIF_ERROR) {
    DGifCloseFile(gif, &error);
    throw std::runtime_error("giflib cannot decode " + path);
  }
  DecodedGif out;
  out.width = gif->SWidth;
  out.height = gif->SHeight;
  std::vector<uint8_t> canvas(static_cast<size_t>(out.width) * out.height * 3, 0);
  for (int i = 0; i < gif->ImageCount; ++i) {
    const SavedImage& image = gif->SavedImages[i];
    for (int b = 0; b + 1 < image.ExtensionBlockCount; ++b) {
      const ExtensionBlock& block = image.ExtensionBlocks[b];
      if (block.Function == APPLICATION_EXT_FUNC_CODE && block.ByteCount == 11 &&
          std::string(reinterpret_cast<char*>(block.Bytes), 11) == "NETSCAPE2.0") {
        const ExtensionBlock& sub = image.ExtensionBlocks[b + 1];
        out.loop_block = sub.Bytes[1] | sub.Bytes[2] << 8;
      }
    }
    GraphicsControlBlock gcb;
    DGifSavedExtensionToGCB(gif, i, &gcb);
    out.delays.push_back(gcb.DelayTime);
    if (gcb.DisposalMode != DISPOSE_DO_NOT) out.all_keep_disposal = false;
    const ColorMapObject* map = image.ImageDesc.ColorMap ? image.ImageDesc.ColorMap : gif->SColorMap;
    const GifImageDesc& d = image.ImageDesc;
    for (int y = 0; y < d.Height; ++y) {
      for (int x = 0; x < d.Width; ++x) {
        int index = image.RasterBits[y * d.Width + x];
        if (index == gcb.TransparentColor) continue;
        uint8_t* p = &canvas[(static_cast<size_t>(y + d.Top) * out.width + x + d.Left) * 3];
        p[0] = map->Colors[index].Red;
        p[1] = map->Colors[index].Green;
        p[2] = map->Colors[index].Blue;
      }
    }
    out.frames.push_back(canvas);
  }
  DGifCloseFile(gif, &error);
  return out;
}

std::vector<Frame> write_gif(const std::string& path, const std::vector<Frame>& frames, FrameSinkOptions options) {
  auto sink = make_file_sink(path, options);
  sink->begin(frames[0].width, frames[0].height, static_cast<int>(frames.size()));
  for (const Frame& f : frames) sink->add(f);
  sink->finish();
  return frames;
}

std::vector<Frame> smooth_frames(int width, int height, int count) {
  std::vector<Frame> frames;
  for (int i = 0; i < count; ++i) frames.push_back(test::smooth_frame(width, height, i));
  return frames;
}

TEST(GifSink, FrameCountSizeAndCarriedCentisecondDelays) {
  TempDir dir;
  FrameSinkOptions options;
  options.fps = 15;  // 6.67 cs a frame: 7, 6, 7, 7, 6, 7 ...
  write_gif(dir / "a.gif", smooth_frames(40, 30, 15), options);
  DecodedGif gif = decode_gif(dir / "a.gif");
  EXPECT_EQ(gif.width, 40);
  EXPECT_EQ(gif.height, 30);
  ASSERT_EQ(gif.delays.size(), 15u);
  EXPECT_EQ(std::accumulate(gif.delays.begin(), gif.delays.end(), 0), 100);  // exactly 1 s
  for (int d : gif.delays) EXPECT_TRUE(d == 6 || d == 7) << d;
  EXPECT_EQ(gif.delays[0], 7);
  EXPECT_EQ(gif.delays[1], 6);
  EXPECT_TRUE(gif.all_keep_disposal);
}

TEST(GifSink, LoopBlockCountsRepeatsAfterTheFirstPlay) {
  TempDir dir;
  FrameSinkOptions options;
  options.loop = 0;
  write_gif(dir / "forever.gif", smooth_frames(8, 8, 3), options);
  EXPECT_EQ(decode_gif(dir / "forever.gif").loop_block, 0);
  options.loop = 3;
  write_gif(dir / "three.gif", smooth_frames(8, 8, 3), options);
  EXPECT_EQ(decode_gif(dir / "three.gif").loop_block, 2);
  options.loop = 1;
  write_gif(dir / "once.gif", smooth_frames(8, 8, 3), options);
  EXPECT_EQ(decode_gif(dir / "once.gif").loop_block, -1);
}

class GifDither : public ::testing::TestWithParam<Dither> {};

TEST_P(GifDither, CompositedFramesStayCloseToTheSource) {
  TempDir dir;
  FrameSinkOptions options;
  options.dither = GetParam();
  std::vector<Frame> frames = write_gif(dir / "a.gif", smooth_frames(96, 64, 8), options);
  DecodedGif gif = decode_gif(dir / "a.gif");
  ASSERT_EQ(gif.frames.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_GT(test::psnr(gif.frames[i], frames[i].rgb), 30.0) << "frame " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(AllModes, GifDither, ::testing::Values(Dither::kNone, Dither::kOrdered, Dither::kDiffusion));

TEST(GifSink, FewColoursRoundTripExactlyInEveryMode) {
  // 200 colours of noise: incompressible, so the LZW dictionary fills and is reset many times;
  // 300 rows are mapped in several bands on a multi-core machine, whose streams are joined.
  for (Dither dither : {Dither::kNone, Dither::kOrdered, Dither::kDiffusion}) {
    TempDir dir;
    FrameSinkOptions options;
    options.dither = dither;
    std::vector<Frame> frames;
    for (uint32_t i = 0; i < 4; ++i) frames.push_back(test::few_color_frame(173, 300, 200, i));
    frames.push_back(frames[2]);  // a held frame
    write_gif(dir / "a.gif", frames, options);
    DecodedGif gif = decode_gif(dir / "a.gif");
    ASSERT_EQ(gif.frames.size(), frames.size());
    for (size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(gif.frames[i], frames[i].rgb) << i;
  }
}

TEST(GifSink, TinyAndOddSizes) {
  for (auto [w, h] : {std::pair{1, 1}, std::pair{3, 5}, std::pair{257, 2}}) {
    TempDir dir;
    std::vector<Frame> frames = write_gif(dir / "a.gif", smooth_frames(w, h, 3), {});
    DecodedGif gif = decode_gif(dir / "a.gif");
    EXPECT_EQ(gif.width, w);
    EXPECT_EQ(gif.height, h);
    EXPECT_EQ(gif.frames.size(), 3u);
  }
}

TEST(GifSink, HeldFramesAddAlmostNothing) {
  TempDir dir;
  std::vector<Frame> moving = smooth_frames(64, 64, 2);
  std::vector<Frame> held = {moving[0], moving[1], moving[1], moving[1], moving[1]};
  write_gif(dir / "two.gif", moving, {});
  write_gif(dir / "held.gif", held, {});
  DecodedGif gif = decode_gif(dir / "held.gif");
  ASSERT_EQ(gif.frames.size(), 5u);
  for (size_t i = 2; i < 5; ++i) EXPECT_EQ(gif.frames[i], gif.frames[1]);
  EXPECT_LT(std::filesystem::file_size(dir / "held.gif"), std::filesystem::file_size(dir / "two.gif") + 200);
}

TEST(GifSink, BoomerangPlaysBackWithoutRepeatingTheEnds) {
  TempDir dir;
  FrameSinkOptions options;
  options.boomerang = true;
  std::vector<Frame> frames;
  for (uint32_t i = 0; i < 4; ++i) frames.push_back(test::few_color_frame(20, 10, 50, i));
  write_gif(dir / "a.gif", frames, options);
  DecodedGif gif = decode_gif(dir / "a.gif");
  ASSERT_EQ(gif.frames.size(), 6u);  // 0 1 2 3 2 1
  const int order[] = {0, 1, 2, 3, 2, 1};
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(gif.frames[i], frames[order[i]].rgb) << i;
  EXPECT_EQ(test::list_dir(dir.str()).size(), 1u);  // the kept frames are gone too
}

TEST(GifSink, RejectsFpsBrowsersCannotPlay) {
  TempDir dir;
  FrameSinkOptions options;
  options.fps = 60;
  EXPECT_THROW(make_file_sink(dir / "a.gif", options), ConfigError);
  options.fps = 0;
  EXPECT_THROW(make_file_sink(dir / "a.gif", options), ConfigError);
  EXPECT_TRUE(test::list_dir(dir.str()).empty());
}

// A GIF delay is 16 bits of centiseconds: the slowest --fps the sink takes plays each frame for the
// longest delay there is, and a slower one is refused rather than written with delays that wrap.
TEST(GifSink, SlowestFpsGivesTheLongestDelayAndSlowerIsRefused) {
  TempDir dir;
  FrameSinkOptions options;
  options.fps = 100.0 / 65535;
  write_gif(dir / "slow.gif", smooth_frames(8, 8, 3), options);
  EXPECT_EQ(decode_gif(dir / "slow.gif").delays, (std::vector<int>{65535, 65535, 65535}));
  options.fps = 0.001;  // 1000 s a frame: 100000 cs, which 16 bits would have written as 34464
  try {
    make_file_sink(dir / "slower.gif", options);
    ADD_FAILURE() << "--fps 0.001 was taken for a GIF";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "--fps 0.001 is too low: a GIF frame lasts at most 655.35 s (its delay is 16 bits of centiseconds); "
                 "use --fps 0.0016 or more");
  }
  EXPECT_EQ(test::list_dir(dir.str()), (std::vector<std::string>{"slow.gif"}));
}

TEST(GifSink, FfprobeSeesFramesSizeAndDuration) {
  if (!test::have_ffprobe()) GTEST_SKIP() << "ffprobe not installed (scripts/setup.sh installs it)";
  TempDir dir;
  FrameSinkOptions options;
  options.fps = 12;
  write_gif(dir / "a.gif", smooth_frames(50, 40, 18), options);
  EXPECT_EQ(test::ffprobe_value(dir / "a.gif", "stream=nb_read_frames", true), "18");
  EXPECT_EQ(test::ffprobe_value(dir / "a.gif", "stream=width"), "50");
  EXPECT_EQ(test::ffprobe_value(dir / "a.gif", "stream=height"), "40");
  EXPECT_NEAR(std::stod(test::ffprobe_value(dir / "a.gif", "format=duration")), 1.5, 1e-6);
}

}  // namespace
}  // namespace sdinterp
