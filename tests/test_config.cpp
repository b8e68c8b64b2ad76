#include <gtest/gtest.h>

#include <functional>

#include "sdinterp/config.h"
#include "sdinterp/errors.h"
#include "sdinterp/linspace.h"
#include "sdinterp/manifest.h"
#include "sdinterp/pacing.h"
#include "test_support.h"

namespace sdinterp {
namespace {

RunConfig valid() {
  RunConfig c;
  c.bundle_dir = "b";
  c.prompts = {"a cat"};
  c.output = "x.gif";
  return c;
}

bool mentions(const std::vector<std::string>& problems, const std::string& needle) {
  for (const auto& p : problems) {
    if (p.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST(Config, DefaultsAreTheNotebooks) {
  RunConfig c;
  EXPECT_EQ(c.frames, 30);
  EXPECT_EQ(c.steps, 15);
  EXPECT_DOUBLE_EQ(c.guidance, 8.0);
  EXPECT_EQ(c.scheduler, SchedulerKind::kLms);
  EXPECT_EQ(c.mode, WalkMode::kSlerpLatent);
  EXPECT_TRUE(valid().problems().empty());
}

TEST(Config, EachProblemNamesItsOption) {
  RunConfig c = valid();
  c.frames = 1;
  EXPECT_TRUE(mentions(c.problems(), "--frames takes a whole number from 2 to 100000, not 1"));
  c = valid();
  c.prompts = {"a", "b"};
  EXPECT_TRUE(mentions(c.problems(), "needs exactly 1 --prompt (got 2)"));
  c = valid();
  c.mode = WalkMode::kMultiPrompt;
  EXPECT_TRUE(mentions(c.problems(), "needs at least 2 --prompt"));
  c.prompts = {"a", "b", "c"};
  c.negatives = {"x", "y"};
  EXPECT_TRUE(mentions(c.problems(), "--negative given 2 times"));
  c.negatives = {"x", "y", "z"};
  EXPECT_TRUE(c.problems().empty());
  c = valid();
  c.output = "";
  EXPECT_TRUE(mentions(c.problems(), "nothing to write"));
  c = valid();
  c.steps = 0;
  c.guidance = -1;
  EXPECT_EQ(c.problems().size(), 2u);
}

// --seamless-loop's refusals say why for the walks that stay still or keep a single frame, and
// take the loops that come back.
TEST(Config, SeamlessLoopSaysWhyAWalkCannotLoop) {
  RunConfig c = valid();
  c.seamless_loop = true;
  c.mode = WalkMode::kCircular;
  EXPECT_TRUE(c.problems().empty());
  c.frames = 2;
  EXPECT_TRUE(mentions(c.problems(), "a circular walk of --frames 2 would keep 1"));
  c.frames = 3;
  EXPECT_TRUE(c.problems().empty());
  c.mode = WalkMode::kMultiPrompt;
  c.prompts = {"a", "a"};
  EXPECT_TRUE(mentions(c.problems(), "between two equal prompts it stays on one picture"));
  c.negatives = {"x", "y"};  // then the ends differ
  EXPECT_TRUE(mentions(c.problems(), "this walk's ends differ"));
  c.negatives = {};
  c.prompts = {"a", "b", "a"};
  EXPECT_TRUE(c.problems().empty());
  c.prompts = {"a", "b"};
  EXPECT_TRUE(mentions(c.problems(), "this walk's ends differ"));
  c = valid();
  c.seamless_loop = true;
  c.mode = WalkMode::kImageMorph;
  c.images = {"a.png", "a.png"};
  EXPECT_TRUE(mentions(
      c.problems(),
      "between two equal images it stays on one picture; give an image between them (--image A --image B --image A)"));
  c.images = {"a.png", "b.png", "a.png"};
  EXPECT_FALSE(mentions(c.problems(), "--seamless-loop"));
  c.images = {"a.png", "b.png"};
  EXPECT_TRUE(mentions(c.problems(), "this walk's ends differ"));
}

// Every named option is read through its one table: each name gives its value back, and an
// unknown name gets the same line for every option.
TEST(Config, NamedOptionsReadTheirNamesWithOneErrorStyle) {
  auto refused = [](const std::function<void()>& parse, const std::string& expected) {
    try {
      parse();
      ADD_FAILURE() << "accepted: " << expected;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), expected);
    }
  };
  for (const std::string name : {"auto", "torchscript", "aoti"})
    EXPECT_EQ(unet_engine_name(parse_unet_engine(name)), name);
  refused([] { parse_unet_engine("tensorrt"); },
          "unknown --unet-engine \"tensorrt\"; choose one of: auto, torchscript, aoti");
  for (const std::string& name : scheduler_names()) EXPECT_EQ(scheduler_name(parse_scheduler_kind(name)), name);
  refused([] { parse_scheduler_kind("LMS"); },
          "unknown --scheduler \"LMS\"; choose one of: lms, lms_karras, euler, euler_karras, ddim, pndm, dpmpp_2m, "
          "dpmpp_2m_karras");
  for (const std::string name : {"diffusion", "ordered", "none"}) EXPECT_EQ(dither_name(parse_dither(name)), name);
  refused([] { parse_dither("fs"); }, "unknown --dither \"fs\"; choose one of: diffusion, ordered, none");
  refused([] { parse_walk_mode("walk"); },
          "unknown --mode \"walk\"; choose one of: prompt-walk, slerp-latent, multi-prompt, circular, timeline, "
          "image-morph");
  refused([] { parse_ease("bounce", "keyframe 2: ease"); },
          "unknown keyframe 2: ease \"bounce\"; choose one of: linear, sine, cubic, in, out, hold");
  for (const std::string name : {"auto", "cpu", "cuda", "cuda:0", "cuda:7", "cuda:12"})
    EXPECT_EQ(device_name(parse_device(name)), name);
  EXPECT_EQ(parse_device("cuda:3").index, 3);
  EXPECT_EQ(parse_device("cuda").index, -1);
  for (const std::string bad : {"mps", "cuda:", "cuda:x", "cuda:01", "cuda:-1", "CPU", "", "cuda:123456789"})
    refused([&] { parse_device(bad); }, "unknown --device \"" + bad + "\"; choose one of: auto, cpu, cuda, cuda:N");
}

TEST(Config, ValidateThrowsOneLineWithAllProblems) {
  RunConfig c = valid();
  c.frames = 0;
  c.steps = 0;
  try {
    c.validate();
    FAIL();
  } catch (const ConfigError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("--frames"), std::string::npos);
    EXPECT_NE(what.find("--steps"), std::string::npos);
    EXPECT_EQ(what.find('\n'), std::string::npos);
    EXPECT_EQ(e.code(), kExitUsage);
  }
}

TEST(Config, SizeMustBeAMultipleOfTheVaeFactor) {
  Manifest m = load_manifest(test::tiny_sd());
  RunConfig c = valid();
  c.height = 60;
  EXPECT_TRUE(mentions(c.problems_with(m), "--height 60 is not a multiple of 8"));
  c.height = 64;
  c.width = 96;
  EXPECT_TRUE(c.problems_with(m).empty());
  c.height = 40;
  c.width = 56;
  EXPECT_TRUE(c.problems_with(m).empty()) << "the exported tiny-sd takes every multiple of 8";
}

TEST(Config, SizeMustFitAUnetTracedForMultiples) {
  Manifest m = load_manifest(test::tiny_sd());
  m.unet.latent_multiple = 8;  // a UNet traced at multiples of SD 1.5's down factor: 64 px steps
  RunConfig c = valid();
  c.height = 64;
  c.width = 64 * 3;
  EXPECT_TRUE(c.problems_with(m).empty());
  c.width = 56;
  EXPECT_TRUE(mentions(c.problems_with(m), "--width 56: this bundle's UNet takes sizes in steps of 64 px"))
      << c.problems_with(m)[0];
  EXPECT_TRUE(mentions(c.problems_with(m), "try 64, or re-export"));
  c.width = 200;
  EXPECT_TRUE(mentions(c.problems_with(m), "try 192 or 256"));
}

TEST(Config, ModeAndInterpNames) {
  EXPECT_EQ(parse_walk_mode("circular"), WalkMode::kCircular);
  EXPECT_EQ(walk_mode_name(WalkMode::kPromptWalk), "prompt-walk");
  EXPECT_EQ(parse_interp("lerp"), InterpKind::kLerp);
  try {
    parse_walk_mode("spiral");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("prompt-walk, slerp-latent, multi-prompt, circular"), std::string::npos);
  }
}

TEST(Config, ImageMorphProblems) {
  RunConfig c = valid();
  c.mode = WalkMode::kImageMorph;
  EXPECT_TRUE(mentions(c.problems(), "--mode image-morph needs at least 2 --image (got 0)"));
  c.images = {"a.png", "b.jpg", "c.png"};
  EXPECT_TRUE(c.problems().empty());
  c.prompts = {"a", "b"};
  EXPECT_TRUE(mentions(c.problems(), "--prompt given 2 times; give it once (for all images) or once per --image (3)"));
  c.prompts = {"a", "", "c"};
  c.negatives = {"x", "y"};
  EXPECT_TRUE(mentions(c.problems(), "--negative given 2 times"));
  c.negatives = {"x", "y", "z"};
  EXPECT_TRUE(c.problems().empty());
  c.prompts.clear();
  EXPECT_TRUE(mentions(c.problems(), "--mode image-morph needs --prompt"));
  c = valid();
  c.mode = WalkMode::kImageMorph;
  c.images = {"a.png", "b.png"};
  for (double bad : {0.0, -0.5, 1.5}) {
    c.strength = bad;
    EXPECT_TRUE(mentions(c.problems(), "--strength takes a number above 0, up to 1")) << bad;
  }
  c.strength = 0.05;  // int(15 * 0.05) = 0 steps
  EXPECT_TRUE(mentions(c.problems(), "--strength 0.05 with 15 steps leaves no step to run"));
  c.steps = 1;
  c.strength = 0.5;
  EXPECT_TRUE(mentions(c.problems(), "--strength 0.5 with 1 step leaves no step to run"));  // not "1 steps"
  c.steps = 15;
  c.strength = 1.0 / 15.0;
  EXPECT_TRUE(c.problems().empty());
  c.inversion = Inversion::kDdim;
  EXPECT_TRUE(mentions(c.problems(), "--inversion ddim samples with DDIM: add --scheduler ddim"));
  c.scheduler = SchedulerKind::kDdim;
  EXPECT_TRUE(c.problems().empty());
  c = valid();
  c.images = {"a.png", "b.png"};
  EXPECT_TRUE(mentions(c.problems(), "--image is for --mode image-morph (this is --mode slerp-latent)"));
}

TEST(Config, AnotherWalksOptionIsRefusedUnlessItIsTheDefault) {
  // Run metadata records every key with its value: defaults must pass in every mode.
  for (WalkMode mode : {WalkMode::kSlerpLatent, WalkMode::kCircular, WalkMode::kPromptWalk}) {
    RunConfig c = valid();
    c.mode = mode;
    EXPECT_TRUE(c.problems().empty()) << walk_mode_name(mode);
  }
  struct Case {
    void (*set)(RunConfig&);
    const char* words;
  };
  const Case cases[] = {
      {[](RunConfig& c) { c.strength = 0.8; },
       "--strength 0.8 is for --mode image-morph (this is --mode slerp-latent)"},
      {[](RunConfig& c) { c.fit = Fit::kPad; }, "--fit pad is for --mode image-morph (this is --mode slerp-latent)"},
      {[](RunConfig& c) { c.inversion = Inversion::kDdim; }, "--inversion ddim is for --mode image-morph"},
      {[](RunConfig& c) { c.adain = true; }, "--adain is for --mode image-morph (this is --mode slerp-latent)"},
      {[](RunConfig& c) { c.step_size = 0.01; },
       "--step-size 0.01 is for --mode prompt-walk (this is --mode slerp-latent)"},
      {[](RunConfig& c) { c.ease = Ease::kSine; }, "--ease sine is for --mode timeline (this is --mode slerp-latent)"},
  };
  for (const Case& k : cases) {
    RunConfig c = valid();
    k.set(c);
    EXPECT_TRUE(mentions(c.problems(), k.words)) << k.words;
  }
  RunConfig walk = valid();
  walk.mode = WalkMode::kPromptWalk;
  walk.step_size = 0.01;
  EXPECT_TRUE(walk.problems().empty());
}

TEST(Config, ImageMorphFramesShareTheJoints) {
  RunConfig c = valid();
  c.mode = WalkMode::kImageMorph;
  c.images = {"a.png", "b.png", "c.png"};
  c.frames = 5;
  EXPECT_EQ(c.total_frames(), 9);  // 5 + 4: the frame at b is not repeated
  EXPECT_EQ(strength_steps(15, 0.6), 9);
  EXPECT_EQ(strength_steps(15, 1.0), 15);
  EXPECT_EQ(strength_steps(10, 0.3), 3);  // int(10 * 0.3) in double is 3 (0.3 * 10 = 3.0000000000000004)
  EXPECT_EQ(parse_fit("pad"), Fit::kPad);
  EXPECT_EQ(inversion_name(parse_inversion("ddim")), "ddim");
  EXPECT_THROW(parse_fit("cover"), ConfigError);
}

TEST(Config, MultiPromptTotalFrames) {
  RunConfig c = valid();
  c.mode = WalkMode::kMultiPrompt;
  c.prompts = {"a", "b", "c"};
  c.frames = 4;
  EXPECT_EQ(c.total_frames(), 8);
}

TEST(Pacing, EvenDistancesKeepTheirWeights) {
  const std::vector<double> t = {0, 0.25, 0.5, 0.75, 1};
  const std::vector<double> out = even_weights(t, {2, 2, 2, 2});
  for (size_t i = 0; i < t.size(); ++i) EXPECT_NEAR(out[i], t[i], 1e-12);
}

TEST(Pacing, InvertsTheCumulativeDistance) {
  // Cumulative distance 0, 3, 4, 5, 6 at t 0, 1/4, 1/2, 3/4, 1: equal steps of 1.5 land at
  // t = 1/8 (1.5 of the first 3), 1/4 (3) and 1/2 + 1/4 * 0.5 = 5/8 (4.5).
  const std::vector<double> out = even_weights({0, 0.25, 0.5, 0.75, 1}, {3, 1, 1, 1});
  ASSERT_EQ(out.size(), 5u);
  EXPECT_DOUBLE_EQ(out[0], 0);
  EXPECT_NEAR(out[1], 0.125, 1e-12);
  EXPECT_NEAR(out[2], 0.25, 1e-12);
  EXPECT_NEAR(out[3], 0.625, 1e-12);
  EXPECT_DOUBLE_EQ(out[4], 1);
}

TEST(Pacing, LeavesWhatDoesNotMoveAlone) {
  const std::vector<double> t = {0, 0.5, 1};
  EXPECT_EQ(even_weights(t, {0, 0}), t);
  EXPECT_EQ(even_weights({0, 0, 1}, {0, 1}), (std::vector<double>{0, 0, 1}));  // not increasing
  EXPECT_THROW(even_weights(t, {1}), std::invalid_argument);
}

TEST(Config, TimelineKeyframesResolveTheirDefaults) {
  RunConfig c = valid();
  c.mode = WalkMode::kTimeline;
  c.prompts.clear();
  c.seed = 7;
  c.negatives = {"blurry"};
  c.ease = Ease::kSine;
  Keyframe a{0, "fox", std::nullopt, std::nullopt, std::nullopt};
  Keyframe b{4, "owl", std::string("dark"), uint64_t{5}, Ease::kHold};
  Keyframe d{9, "fox", std::nullopt, uint64_t{7}, std::nullopt};
  c.keyframes = {a, b, d};
  EXPECT_TRUE(c.problems().empty()) << c.problems().front();
  const auto r = c.resolved_keyframes();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].seed, 7u);
  EXPECT_EQ(r[0].negative, "blurry");
  EXPECT_EQ(r[0].ease, Ease::kSine);
  EXPECT_EQ(r[1].seed, 5u);
  EXPECT_EQ(r[1].negative, "dark");
  EXPECT_EQ(r[1].ease, Ease::kHold);
  // The same seed, prompt and negative as keyframe 1: one source.
  EXPECT_EQ(r[2].source, r[0].source);
  EXPECT_EQ(r[1].source, 1);
  EXPECT_EQ(c.total_frames(), 10);
  c.cycle = true;
  c.frames = 12;
  EXPECT_EQ(c.total_frames(), 12);
  EXPECT_DOUBLE_EQ(ease_value(Ease::kCubic, 0.25), 3 * 0.0625 - 2 * 0.015625);
  EXPECT_DOUBLE_EQ(ease_value(Ease::kHold, 0.7), 0);
}

TEST(Linspace, NumpyAndTorchFormulas) {
  EXPECT_TRUE(numpy_linspace(0.0, 1.0, 0).empty());
  EXPECT_EQ(numpy_linspace(2.0, 5.0, 1), std::vector<double>({2.0}));
  EXPECT_EQ(numpy_linspace(0.0, 1.0, 5), std::vector<double>({0.0, 0.25, 0.5, 0.75, 1.0}));
  // numpy's k * step + start leaves 0.1 * 3 as 0.30000000000000004; the last value is exact.
  const std::vector<double> tenths = numpy_linspace(0.0, 1.0, 11);
  EXPECT_EQ(tenths[3], 3 * 0.1);
  EXPECT_EQ(tenths.back(), 1.0);
  // torch fills the upper half back from the end: end - step * (num - 1 - i).
  const std::vector<double> from_end = torch_linspace(0.0, 1.0, 11);
  EXPECT_EQ(from_end[3], 3 * 0.1);
  EXPECT_EQ(from_end[7], 1.0 - 0.1 * 3);
  EXPECT_NE(from_end[7], tenths[7]);
  EXPECT_EQ(torch_linspace(0.0, 1.0, 2), std::vector<double>({0.0, 1.0}));
}

}  // namespace
}  // namespace sdinterp
