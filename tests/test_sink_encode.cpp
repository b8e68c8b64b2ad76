// `sdinterp encode`'s work (sinks::encode_frames): PNG frames on disk to an animation, size
// checks before anything is written, nothing left behind on errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/png_io.h"
#include "sdinterp/errors.h"
#include "sink_test_util.h"
#include "sinks/encode_frames.h"

namespace sdinterp {
namespace {

using test::TempDir;

std::vector<std::string> write_pngs(const TempDir& dir, int count, int width, int height) {
  std::vector<std::string> paths;
  for (int i = 0; i < count; ++i) {
    paths.push_back(dir / ("in_" + std::to_string(i) + ".png"));
    io::write_png(paths.back(), test::smooth_frame(width, height, i));
  }
  return paths;
}

TEST(EncodeFrames, EveryFormatAtAnySize) {
  TempDir in;
  TempDir out;
  std::vector<std::string> frames = write_pngs(in, 4, 37, 23);
  for (const char* name : {"a.gif", "a.webp", "a.mp4"}) {
    std::string description = sinks::encode_frames(frames, out / name, {});
    EXPECT_NE(description.find("4 frames"), std::string::npos) << description;
    EXPECT_GT(std::filesystem::file_size(out / name), 0u);
  }
  sinks::encode_frames(frames, out / "png/", {});
  EXPECT_EQ(test::list_dir(out / "png").size(), 4u);
}

TEST(EncodeFrames, RejectsFramesOfDifferentSizesBeforeWriting) {
  TempDir in;
  TempDir out;
  std::vector<std::string> frames = write_pngs(in, 3, 32, 24);
  io::write_png(in / "odd.png", test::smooth_frame(24, 32, 0));
  frames.insert(frames.begin() + 2, in / "odd.png");
  try {
    sinks::encode_frames(frames, out / "a.gif", {});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("odd.png"), std::string::npos) << what;
    EXPECT_NE(what.find("24x32"), std::string::npos) << what;
  }
  EXPECT_TRUE(test::list_dir(out.str()).empty());
}

TEST(EncodeFrames, UnreadableFrameLeavesNothing) {
  TempDir in;
  TempDir out;
  std::vector<std::string> frames = write_pngs(in, 2, 16, 16);
  { std::ofstream(in / "broken.png") << "not a png"; }
  frames.push_back(in / "broken.png");
  // Each says which: a file that is not a PNG, or one that is not there (stb's "can't fopen" before).
  const auto message = [&] {
    try {
      sinks::encode_frames(frames, out / "a.gif", {});
    } catch (const IoError& e) {
      return std::string(e.what());
    }
    return std::string("no IoError");
  };
  EXPECT_NE(message().find("broken.png: not a PNG, or its data is corrupt or truncated"), std::string::npos)
      << message();
  frames.back() = in / "missing.png";
  EXPECT_NE(message().find("missing.png: No such file or directory"), std::string::npos) << message();
  frames.back() = in.str();  // a folder: stb read it as an unknown image type
  try {
    sinks::encode_frames(frames, out / "a.gif", {});
    FAIL() << "a folder was encoded as a frame";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("a folder, not an image"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(test::list_dir(out.str()).empty());
}

TEST(EncodeFrames, StopRequestRemovesTheTemporary) {
  TempDir in;
  TempDir out;
  std::vector<std::string> frames = write_pngs(in, 3, 16, 16);
  int asked = 0;
  EXPECT_THROW(sinks::encode_frames(frames, out / "a.gif", {}, [&asked] { return ++asked == 2; }), InterruptedError);
  EXPECT_TRUE(test::list_dir(out.str()).empty());
}

TEST(EncodeFrames, NoFramesIsAConfigError) {
  TempDir out;
  EXPECT_THROW(sinks::encode_frames({}, out / "a.gif", {}), ConfigError);
}

}  // namespace
}  // namespace sdinterp
