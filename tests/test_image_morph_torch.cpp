// image-morph's plan without a model: which sources each frame mixes, with what weights, and
// AdaIN against its definition computed here by hand.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "sdinterp/interpolation.h"

namespace sdinterp {
namespace {

RunConfig morph(int images, int frames) {
  RunConfig c;
  c.mode = WalkMode::kImageMorph;
  c.frames = frames;
  for (int i = 0; i < images; ++i) c.images.push_back("image" + std::to_string(i) + ".png");
  c.prompts = {"a"};
  return c;
}

TEST(ImageMorphPlan, PairsShareTheirJointFrame) {
  torch::manual_seed(1);
  const RunConfig c = morph(3, 4);
  const InterpolationPlan plan(c, torch::randn({3, 4, 2, 2}), torch::randn({1, 5, 3}), torch::randn({1, 5, 3}));
  ASSERT_EQ(plan.size(), c.total_frames());
  ASSERT_EQ(plan.size(), 7);
  const auto& f = plan.frames();
  // Frame 0 is image 0 alone, frame 3 image 1 alone (once), frame 6 image 2 alone.
  EXPECT_EQ(f[0].latent.a, 0);
  EXPECT_DOUBLE_EQ(f[0].latent.w_a, 1.0);
  EXPECT_DOUBLE_EQ(f[0].latent.w_b, 0.0);
  EXPECT_EQ(f[3].latent.b, 1);
  EXPECT_NEAR(f[3].latent.w_b, 1.0, 1e-12);
  EXPECT_EQ(f[4].latent.a, 1);
  EXPECT_EQ(f[4].latent.b, 2);
  EXPECT_EQ(f[6].latent.b, 2);
  EXPECT_NEAR(f[6].latent.w_b, 1.0, 1e-12);
  // One prompt for all: the conditioning never moves.
  for (const FrameRecipe& r : f) {
    EXPECT_EQ(r.positive.a, 0);
    EXPECT_DOUBLE_EQ(r.positive.w_b, 0.0);
    EXPECT_LT(r.adain, 0.0);
  }
  ASSERT_EQ(plan.segments().size(), 2u);
  EXPECT_EQ(plan.segments()[1].frames.front(), 3);
  EXPECT_EQ(plan.segments()[1].frames.back(), 6);
}

TEST(ImageMorphPlan, PromptsPerImageAreInterpolated) {
  torch::manual_seed(2);
  RunConfig c = morph(2, 5);
  c.prompts = {"a", "b"};
  c.negatives = {"x", "y"};
  c.interp = InterpKind::kLerp;
  const InterpolationPlan plan(c, torch::randn({2, 4, 2, 2}), torch::randn({2, 5, 3}), torch::randn({2, 5, 3}));
  const FrameRecipe& middle = plan.frames()[2];
  EXPECT_DOUBLE_EQ(middle.positive.w_a, 0.5);
  EXPECT_DOUBLE_EQ(middle.positive.w_b, 0.5);
  EXPECT_DOUBLE_EQ(middle.negative.w_b, 0.5);
  EXPECT_DOUBLE_EQ(middle.latent.w_b, 0.5);
}

TEST(ImageMorphPlan, AdainRenormalisesInBetweenFramesOnly) {
  torch::manual_seed(3);
  RunConfig c = morph(2, 5);
  c.adain = true;
  const torch::Tensor sources = torch::randn({2, 4, 3, 3}) * torch::tensor({1.0f, 2.0f}).view({2, 1, 1, 1}) +
                                torch::tensor({0.0f, 3.0f}).view({2, 1, 1, 1});
  const InterpolationPlan plan(c, sources, torch::randn({1, 5, 3}), torch::randn({1, 5, 3}));
  EXPECT_LT(plan.frames().front().adain, 0.0);
  EXPECT_LT(plan.frames().back().adain, 0.0);
  EXPECT_DOUBLE_EQ(plan.frames()[1].adain, 0.25);
  // The ends are the sources themselves.
  EXPECT_TRUE(torch::equal(plan.chunk(0, 1).latents[0], sources[0]));
  // Frame 1: the slerp at 0.25, then each channel moved to the interpolated statistics.
  const torch::Tensor x = plan.chunk(1, 1).latents[0];
  const Mix& m = plan.frames()[1].latent;
  const torch::Tensor mixed = sources[0] * m.w_a + sources[1] * m.w_b;
  for (int64_t ch = 0; ch < 4; ++ch) {
    const double mean = 0.75 * sources[0][ch].mean().item<double>() + 0.25 * sources[1][ch].mean().item<double>();
    const double sd = 0.75 * sources[0][ch].std().item<double>() + 0.25 * sources[1][ch].std().item<double>();
    EXPECT_NEAR(x[ch].mean().item<double>(), mean, 1e-5) << ch;
    EXPECT_NEAR(x[ch].std().item<double>(), sd, 1e-5) << ch;
    // The pattern is the slerped latent's: a per-channel affine map of it.
    const torch::Tensor z = (mixed[ch] - mixed[ch].mean()) / mixed[ch].std();
    EXPECT_LE((x[ch] - (z * sd + mean)).abs().max().item<double>(), 1e-5) << ch;
  }
}

TEST(ImageMorphPlan, PaceOverridesMoveWeightsBetweenFixedEnds) {
  torch::manual_seed(4);
  const RunConfig c = morph(2, 4);
  std::vector<double> t_override(4, std::nan(""));
  t_override[1] = 0.1;
  const torch::Tensor sources = torch::randn({2, 4, 2, 2});
  const torch::Tensor text = torch::randn({1, 5, 3});
  const InterpolationPlan plan(c, sources, text, text, t_override);
  const InterpolationPlan uniform(c, sources, text, text);
  EXPECT_LT(plan.frames()[1].latent.w_b, uniform.frames()[1].latent.w_b);
  EXPECT_DOUBLE_EQ(plan.frames()[0].latent.w_b, 0.0);
}

}  // namespace
}  // namespace sdinterp
