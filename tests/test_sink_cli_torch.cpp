// `sdinterp encode` through the binary: exit statuses and one-line errors of the documented
// kinds, and no output left behind when it fails.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "io/png_io.h"
#include "sink_test_util.h"

namespace sdinterp {
namespace {

using test::quote;
using test::TempDir;

class EncodeCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::binary().empty()) GTEST_SKIP() << "the sdinterp binary is not built";
    for (int i = 0; i < 3; ++i) {
      frames_ += " " + quote(in_ / ("f" + std::to_string(i) + ".png"));
      io::write_png(in_ / ("f" + std::to_string(i) + ".png"), test::smooth_frame(33, 21, i));
    }
  }
  test::CommandResult encode(const std::string& args) {
    return test::run_command(quote(test::binary()) + " encode" + frames_ + " " + args);
  }
  TempDir in_;
  TempDir out_;
  std::string frames_;
};

TEST_F(EncodeCommand, WritesEachFormatAndReportsIt) {
  for (const char* name : {"a.gif", "a.webp", "a.mp4"}) {
    test::CommandResult r = encode("-o " + quote(out_ / name) + " --fps 8 --boomerang");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("wrote"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("4 frames"), std::string::npos) << r.output;  // 0 1 2 1
    EXPECT_TRUE(std::filesystem::exists(out_ / name));
  }
}

TEST_F(EncodeCommand, AFolderOfFramesIsEncodedAsItsFilesInOrder) {
  ASSERT_EQ(encode("-o " + quote(out_ / "listed.gif")).status, 0);
  test::CommandResult r =
      test::run_command(quote(test::binary()) + " encode " + quote(in_.str()) + " -o " + quote(out_ / "folder.gif"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(test::read_text(out_ / "folder.gif"), test::read_text(out_ / "listed.gif"));
}

TEST_F(EncodeCommand, DifferentSizesAreAUsageErrorAndWriteNothing) {
  io::write_png(in_ / "big.png", test::smooth_frame(40, 21, 0));
  frames_ += " " + quote(in_ / "big.png");
  test::CommandResult r = encode("-o " + quote(out_ / "a.gif"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("same size"), std::string::npos) << r.output;
  EXPECT_TRUE(test::list_dir(out_.str()).empty());
}

TEST_F(EncodeCommand, BadValuesAreUsageErrors) {
  EXPECT_EQ(encode("-o " + quote(out_ / "a.avi")).status, 2);
  test::CommandResult bare = encode("-o " + quote(out_ / ".mp4"));
  EXPECT_EQ(bare.status, 2);
  EXPECT_NE(bare.output.find("is an extension with no name before it; name the file, e.g. walk.mp4"), std::string::npos)
      << bare.output;
  EXPECT_EQ(encode("-o " + quote(out_ / "a.gif") + " --dither floyd").status, 2);
  EXPECT_EQ(encode("-o " + quote(out_ / "a.gif") + " --fps 0").status, 2);
  EXPECT_TRUE(test::list_dir(out_.str()).empty());
}

TEST_F(EncodeCommand, ExistingOutputIsAnIoErrorUnlessOverwrite) {
  ASSERT_EQ(encode("-o " + quote(out_ / "a.gif")).status, 0);
  test::CommandResult r = encode("-o " + quote(out_ / "a.gif"));
  EXPECT_EQ(r.status, 4) << r.output;
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos) << r.output;
  EXPECT_EQ(encode("-o " + quote(out_ / "a.gif") + " --overwrite").status, 0);
  EXPECT_EQ(test::list_dir(out_.str()).size(), 1u);
}

TEST_F(EncodeCommand, AFolderThatHoldsFramesIsRefusedBeforeEncodingUnlessOverwrite) {
  const std::string folder = quote(out_.str() + "/frames/");
  ASSERT_EQ(encode("-o " + folder).status, 0);
  test::CommandResult r = encode("-o " + folder);
  EXPECT_EQ(r.status, 4) << r.output;
  // Said of the folder and its first frame, as generate's --png-dir is, not of whichever frame the
  // publishing step met first after all the work.
  EXPECT_NE(r.output.find("frames/ already holds frames (" + out_.str() + "/frames/frame_0000.png)"), std::string::npos)
      << r.output;
  EXPECT_EQ(encode("-o " + folder + " --overwrite").status, 0);
  EXPECT_EQ(test::list_dir(out_.str() + "/frames").size(), 3u);
}

}  // namespace
}  // namespace sdinterp
