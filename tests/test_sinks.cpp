// What every sink promises: outputs appear whole or not at all, existing outputs are kept
// unless --overwrite, clear errors for bad extensions, sizes and values; PNG frames are
// lossless; --boomerang order.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/png_io.h"
#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sdinterp/number_text.h"
#include "sink_test_util.h"
#include "sinks/sink_common.h"

namespace sdinterp {
namespace {

using test::TempDir;

void write_frames(FrameSink& sink, const std::vector<Frame>& frames) {
  sink.begin(frames[0].width, frames[0].height, static_cast<int>(frames.size()));
  for (const Frame& f : frames) sink.add(f);
}

std::vector<Frame> frames(int count, int width = 24, int height = 16) {
  std::vector<Frame> out;
  for (int i = 0; i < count; ++i) out.push_back(test::smooth_frame(width, height, i));
  return out;
}

TEST(PngDirSink, WritesNumberedLosslessFramesAtFinishOnly) {
  TempDir dir;
  std::string out = dir / "frames";
  auto sink = make_png_dir_sink(out, {});
  std::vector<Frame> input = frames(3);
  write_frames(*sink, input);
  EXPECT_FALSE(std::filesystem::exists(out)) << "frames must appear only at finish()";
  sink->finish();
  std::vector<std::string> names = test::list_dir(out);
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names, (std::vector<std::string>{"frame_0000.png", "frame_0001.png", "frame_0002.png"}));
  for (int i = 0; i < 3; ++i) {
    Frame back = io::read_image_rgb(out + "/" + names[i]);
    EXPECT_EQ(back.width, 24);
    EXPECT_EQ(back.rgb, input[i].rgb);
  }
  EXPECT_EQ(test::list_dir(dir.str()), std::vector<std::string>{"frames"});  // no temporary left
}

TEST(Sinks, DescriptionsCountOneFrameInTheSingular) {
  EXPECT_EQ(count_text(1, "frame"), "1 frame");
  EXPECT_EQ(count_text(30, "frame"), "30 frames");
  TempDir dir;
  auto png = make_png_dir_sink(dir / "one", {});
  write_frames(*png, frames(1));
  png->finish();
  EXPECT_EQ(png->description(), "1 PNG frame in " + dir / "one");
  auto gif = make_file_sink(dir / "one.gif", {});
  write_frames(*gif, frames(1));
  gif->finish();
  EXPECT_EQ(gif->description().rfind("GIF " + dir / "one.gif" + " (1 frame, 24x16", 0), 0u) << gif->description();
}

TEST(PngDirSink, ManyFramesFromWorkerThreadsKeepTheirNumbers) {
  // More frames than the writer threads and their queue hold: each file has its own frame.
  TempDir dir;
  std::string out = dir / "frames";
  auto sink = make_png_dir_sink(out, {});
  std::vector<Frame> input = frames(40);
  write_frames(*sink, input);
  sink->finish();
  ASSERT_EQ(test::list_dir(out).size(), 40u);
  for (int i = 0; i < 40; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/frame_%04d.png", i);
    EXPECT_EQ(io::read_image_rgb(out + name).rgb, input[i].rgb) << name;
  }
}

TEST(PngDirSink, AWriteFailureOnAWorkerThreadFailsTheRunAndLeavesNothing) {
  TempDir dir;
  std::string out = dir / "frames";
  auto sink = make_png_dir_sink(out, {});
  std::vector<Frame> input = frames(12);
  sink->begin(input[0].width, input[0].height, 12);
  sink->add(input[0]);
  // The hidden temporary folder beside DIR disappears: the writers cannot put frames there.
  for (const std::string& name : test::list_dir(dir.str())) std::filesystem::remove_all(dir / name);
  bool thrown = false;
  try {
    for (size_t i = 1; i < input.size(); ++i) sink->add(input[i]);
    sink->finish();
  } catch (const IoError& e) {
    thrown = true;
    EXPECT_NE(std::string(e.what()).find("cannot write"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(thrown) << "a frame that could not be written must fail the run";
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(PngDirSink, NamesSortAsTheFramesPlayBeyondTenThousandFrames) {
  EXPECT_EQ(png_frame_digits(1), 4);
  EXPECT_EQ(png_frame_digits(10000), 4);   // frame_9999 last
  EXPECT_EQ(png_frame_digits(10001), 5);   // frame_10000 last
  EXPECT_EQ(png_frame_digits(199998), 6);  // --frames 100000 --boomerang
  EXPECT_EQ(png_frame_name(7, 4), "frame_0007.png");
  EXPECT_EQ(png_frame_name(7, 5), "frame_00007.png");
  // 10001 frames: frame_10000 would sort before frame_1001 beside 4-digit names (frame_*.png in a
  // shell, sdinterp encode DIR/frame_*.png); every name has 5 digits instead.
  TempDir dir;
  const std::string out = dir / "frames";
  const int count = 10001;
  auto sink = make_png_dir_sink(out, {});
  const Frame black = test::smooth_frame(1, 1, 0);
  sink->begin(1, 1, count);
  for (int i = 0; i < count; ++i) sink->add(black);
  sink->finish();
  std::vector<std::string> names = test::list_dir(out);
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names.size(), static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) ASSERT_EQ(names[static_cast<size_t>(i)], png_frame_name(i, 5)) << i;
}

TEST(PngDirSink, KeepsExistingFramesUnlessOverwriteThenRemovesStaleOnes) {
  TempDir dir;
  std::string out = dir / "frames";
  {
    auto sink = make_png_dir_sink(out, {});
    write_frames(*sink, frames(4));
    sink->finish();
  }
  EXPECT_THROW(make_png_dir_sink(out, {}), IoError);  // refused before any work
  EXPECT_EQ(test::list_dir(out).size(), 4u);
  {
    // Frames that appear while a sink works are not replaced when it publishes.
    std::string raced = dir / "raced";
    auto late = make_png_dir_sink(raced, {});
    auto early = make_png_dir_sink(raced, {});
    write_frames(*early, frames(3));
    early->finish();
    write_frames(*late, frames(2));
    EXPECT_THROW(late->finish(), IoError);
    EXPECT_EQ(test::list_dir(raced).size(), 3u);
    std::filesystem::remove_all(raced);
  }

  FrameSinkOptions overwrite;
  overwrite.overwrite = true;
  auto replace = make_png_dir_sink(out, overwrite);
  write_frames(*replace, frames(2));
  replace->finish();
  EXPECT_EQ(test::list_dir(out).size(), 2u);  // frame_0002/3 of the old run are gone
  EXPECT_EQ(test::list_dir(dir.str()).size(), 1u);
}

TEST(PngDirSink, AbortAndDestructionLeaveNothing) {
  TempDir dir;
  {
    auto sink = make_png_dir_sink(dir / "a", {});
    write_frames(*sink, frames(2));
    sink->abort();
  }
  {
    auto sink = make_png_dir_sink(dir / "b", {});
    write_frames(*sink, frames(2));
  }
  EXPECT_TRUE(test::list_dir(dir.str()).empty());
}

TEST(PngDirSink, BoomerangCopiesTheReturnFrames) {
  TempDir dir;
  FrameSinkOptions options;
  options.boomerang = true;
  auto sink = make_png_dir_sink(dir / "f", options);
  std::vector<Frame> input = frames(3);
  write_frames(*sink, input);
  sink->finish();
  ASSERT_EQ(test::list_dir(dir / "f").size(), 4u);  // 0 1 2 1
  EXPECT_EQ(io::read_image_rgb(dir / "f/frame_0003.png").rgb, input[1].rgb);
}

// Records what reaches it; throws on the frame numbered `fail_at`.
class RecordingSink : public FrameSink {
 public:
  explicit RecordingSink(long fail_at = -1) : fail_at_(fail_at) {}
  void begin(int, int, int) override { log.push_back("begin"); }
  void add(const Frame& frame) override {
    if (static_cast<long>(frames.size()) == fail_at_) throw IoError("disk full");
    frames.push_back(frame.rgb);
  }
  void finish() override { log.push_back("finish"); }
  void abort() override { log.push_back("abort"); }
  std::string description() const override { return "recording"; }
  std::vector<std::vector<uint8_t>> frames;
  std::vector<std::string> log;

 private:
  long fail_at_;
};

TEST(BackgroundSink, PassesEveryFrameInOrderThenFinishes) {
  auto recording = std::make_unique<RecordingSink>();
  RecordingSink* inner = recording.get();
  auto sink = sinks::make_background_sink(std::move(recording));
  std::vector<Frame> input = frames(20);
  write_frames(*sink, input);
  sink->finish();
  ASSERT_EQ(inner->frames.size(), 20u);
  for (size_t i = 0; i < input.size(); ++i) EXPECT_EQ(inner->frames[i], input[i].rgb) << i;
  EXPECT_EQ(inner->log, (std::vector<std::string>{"begin", "finish"}));
}

TEST(BackgroundSink, AnEncoderErrorReachesTheCallerAndNothingIsFinished) {
  auto recording = std::make_unique<RecordingSink>(2);
  RecordingSink* inner = recording.get();
  auto sink = sinks::make_background_sink(std::move(recording));
  std::vector<Frame> input = frames(12);
  bool thrown = false;
  try {
    write_frames(*sink, input);
    sink->finish();
  } catch (const IoError& e) {
    thrown = true;
    EXPECT_STREQ(e.what(), "disk full");
  }
  EXPECT_TRUE(thrown);
  sink->abort();
  EXPECT_EQ(inner->frames.size(), 2u);
  EXPECT_EQ(inner->log, (std::vector<std::string>{"begin", "abort"}));
}

TEST(BackgroundSink, AFrameOfAnotherSizeIsRefusedAtOnce) {
  auto sink = sinks::make_background_sink(std::make_unique<RecordingSink>());
  sink->begin(24, 16, 2);
  EXPECT_THROW(sink->add(test::smooth_frame(16, 16, 0)), ConfigError);
  sink->abort();
}

TEST(FileSink, UnknownExtensionListsTheSupportedOnes) {
  TempDir dir;
  try {
    make_file_sink(dir / "walk.avi", {});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(".gif"), std::string::npos) << what;
    EXPECT_NE(what.find(".webp"), std::string::npos) << what;
    EXPECT_NE(what.find(".mp4"), std::string::npos) << what;
  }
  EXPECT_THROW(make_file_sink(dir / "noext", {}), ConfigError);
  EXPECT_TRUE(test::list_dir(dir.str()).empty());
}

TEST(FileSink, AnExtensionWithoutANameIsCalledSo) {
  // '-o .gif': the file name has no extension of its own (it is all stem), which "cannot tell the
  // output format" and a suggestion of --png-dir .gif would only confuse.
  EXPECT_EQ(unknown_format_message("out/.GIF", " (for PNG frames use --png-dir out/.GIF)"),
            "output 'out/.GIF' is an extension with no name before it; name the file, e.g. walk.gif");
  EXPECT_EQ(unknown_format_message("walk.avi", ", or a folder"),
            "cannot tell the output format of 'walk.avi' from its extension; use .gif, .webp, .mp4, or a folder");
  TempDir dir;
  EXPECT_THROW(make_file_sink(dir / ".webp", {}), ConfigError);
  EXPECT_TRUE(test::list_dir(dir.str()).empty());
}

TEST(FrameFiles, AFolderStandsForItsPngFramesInNaturalOrder) {
  TempDir dir;
  std::filesystem::create_directory(dir / "frames");
  for (const char* name :
       {"frame_10.png", "frame_2.png", "frame_1.PNG", "frame_01.png", ".frame_0.png", "notes.txt", "frame_9.png"}) {
    std::ofstream(std::filesystem::path(dir / "frames") / name) << "x";
  }
  std::filesystem::create_directory(std::filesystem::path(dir / "frames") / "sub.png");
  const std::string folder = dir / "frames";
  std::vector<std::string> names;
  for (const std::string& path : io::frame_files({folder, "other.png"})) {
    names.push_back(path.rfind(folder + "/", 0) == 0 ? path.substr(folder.size() + 1) : path);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"frame_1.PNG", "frame_01.png", "frame_2.png", "frame_9.png",
                                             "frame_10.png", "other.png"}));
  std::filesystem::create_directory(dir / "none");
  EXPECT_THROW(io::frame_files({dir / "none"}), IoError);
  EXPECT_EQ(io::frame_files({"missing.png"}), std::vector<std::string>{"missing.png"});  // read later, named then
}

TEST(FileSink, ExtensionIsCaseInsensitive) {
  TempDir dir;
  auto sink = make_file_sink(dir / "A.GIF", {});
  write_frames(*sink, frames(2));
  sink->finish();
  EXPECT_TRUE(std::filesystem::exists(dir / "A.GIF"));
}

class EveryFormat : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryFormat, AppearsOnlyAtFinish) {
  TempDir dir;
  std::string out = dir / ("walk" + GetParam());
  auto sink = make_file_sink(out, {});
  write_frames(*sink, frames(3));
  EXPECT_FALSE(std::filesystem::exists(out));
  sink->finish();
  EXPECT_GT(std::filesystem::file_size(out), 0u);
  EXPECT_EQ(test::list_dir(dir.str()).size(), 1u);
  sink->abort();  // after finish: a no-op
  EXPECT_TRUE(std::filesystem::exists(out));
}

TEST_P(EveryFormat, AbortOrDestructionLeavesNothing) {
  TempDir dir;
  {
    auto sink = make_file_sink(dir / ("a" + GetParam()), {});
    write_frames(*sink, frames(2));
    sink->abort();
  }
  {
    auto sink = make_file_sink(dir / ("b" + GetParam()), {});
    write_frames(*sink, frames(2));
  }
  {
    auto sink = make_file_sink(dir / ("c" + GetParam()), {});  // never begun
  }
  EXPECT_TRUE(test::list_dir(dir.str()).empty());
}

TEST_P(EveryFormat, KeepsAnExistingFileUnlessOverwrite) {
  TempDir dir;
  std::string out = dir / ("walk" + GetParam());
  { std::ofstream(out) << "precious"; }
  EXPECT_THROW(make_file_sink(out, {}), IoError);
  EXPECT_EQ(test::read_text(out), "precious");

  FrameSinkOptions overwrite;
  overwrite.overwrite = true;
  auto sink = make_file_sink(out, overwrite);
  write_frames(*sink, frames(2));
  sink->finish();
  EXPECT_NE(test::read_text(out), "precious");
  EXPECT_EQ(test::list_dir(dir.str()).size(), 1u);
}

TEST_P(EveryFormat, AFolderInTheOutputsPlaceIsRefusedWithOrWithoutOverwrite) {
  // --overwrite replaces a file, never a folder: the message says to give a file name, not to pass
  // --overwrite (which would only lead to this same error).
  TempDir dir;
  std::string out = dir / ("walk" + GetParam());
  std::filesystem::create_directory(out);
  for (bool overwrite : {false, true}) {
    FrameSinkOptions options;
    options.overwrite = overwrite;
    try {
      make_file_sink(out, options);
      ADD_FAILURE() << "a folder was accepted as the output (overwrite " << overwrite << ")";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("is a folder; give a file name"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(std::filesystem::is_directory(out));
  }
}

TEST_P(EveryFormat, RejectsAFrameOfAnotherSize) {
  TempDir dir;
  auto sink = make_file_sink(dir / ("a" + GetParam()), {});
  sink->begin(24, 16, 2);
  sink->add(test::smooth_frame(24, 16, 0));
  EXPECT_THROW(sink->add(test::smooth_frame(16, 24, 1)), ConfigError);
  sink->abort();
  EXPECT_TRUE(test::list_dir(dir.str()).empty());
}

TEST_P(EveryFormat, RejectsBadValuesBeforeWritingAnything) {
  TempDir dir;
  FrameSinkOptions options;
  options.fps = -1;
  EXPECT_THROW(make_file_sink(dir / ("a" + GetParam()), options), ConfigError);
  options = {};
  options.loop = -2;
  if (GetParam() != ".mp4") {  // MP4 has no loop count
    EXPECT_THROW(make_file_sink(dir / ("a" + GetParam()), options), ConfigError);
  }
  EXPECT_TRUE(test::list_dir(dir.str()).empty());
}

TEST_P(EveryFormat, CreatesMissingParentFolders) {
  TempDir dir;
  std::string out = dir / ("x/y/walk" + GetParam());
  auto sink = make_file_sink(out, {});
  write_frames(*sink, frames(2));
  sink->finish();
  EXPECT_TRUE(std::filesystem::exists(out));
}

INSTANTIATE_TEST_SUITE_P(Formats, EveryFormat, ::testing::Values(".gif", ".webp", ".mp4"),
                         [](const auto& format) { return format.param.substr(1); });

TEST(ParseDither, NamesAndError) {
  EXPECT_EQ(parse_dither("none"), Dither::kNone);
  EXPECT_EQ(parse_dither("ordered"), Dither::kOrdered);
  EXPECT_EQ(parse_dither("diffusion"), Dither::kDiffusion);
  EXPECT_THROW(parse_dither("floyd"), ConfigError);
}

}  // namespace
}  // namespace sdinterp
