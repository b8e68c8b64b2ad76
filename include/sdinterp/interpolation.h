// The interpolation plan: every frame of a walk, named before any denoising. A frame's latent
// and conditionings are weighted sums of two source tensors (the notebook's four walks all fit
// that form), so the plan stays small whatever the frame count and frames are built per chunk.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "sdinterp/config.h"

namespace sdinterp {

// w_a * sources[a] + w_b * sources[b] + offset.
struct Mix {
  int64_t a = 0;
  int64_t b = 0;
  double w_a = 1.0;
  double w_b = 0.0;
  double offset = 0.0;
};

struct FrameRecipe {
  Mix latent;
  Mix positive;
  Mix negative;
  // image-morph --adain: the latent renormalised, channel by channel, to the mean and standard
  // deviation interpolated linearly at this weight between its two sources; -1: not.
  double adain = -1.0;
};

// The notebook's slerp weights (DOT_THRESHOLD 0.9995: nearly parallel vectors are lerped).
Mix slerp_mix(const torch::Tensor& v0, const torch::Tensor& v1, double t, int64_t a, int64_t b,
              double dot_threshold = 0.9995);
Mix lerp_mix(double t, int64_t a, int64_t b);

// Latents exactly as PyTorch's torch.manual_seed(seed); torch.randn(shape) on the CPU.
torch::Tensor draw_latents(uint64_t seed, at::IntArrayRef shape);

struct FrameChunk {
  torch::Tensor latents;   // [n, C, h, w], initial noise, not yet scaled by init_noise_sigma
  torch::Tensor positive;  // [n, L, hidden]
  torch::Tensor negative;  // [n, L, hidden]
};

// Frames that move from one fixed point to another (a walk, a pair of prompts, a timeline
// segment): `frames` in order, their interpolation weights `t` from 0 (the first) to 1 (the
// last, which may be a frame of the next segment, or frame 0 for a loop). --pace even re-places
// the weights between the ends.
struct PaceSegment {
  std::vector<int64_t> frames;
  std::vector<double> t;
};

class InterpolationPlan {
 public:
  // latent_sources [K, C, h, w]; positive_sources [P, L, hidden]; negative_sources [Q, L, hidden]
  // (Q is 1 or P). Builds the recipe of every frame of `config`'s mode. `t_override` (one per
  // frame, NaN: keep) re-places frames' weights (--pace even); the others are as without it.
  InterpolationPlan(const RunConfig& config, torch::Tensor latent_sources, torch::Tensor positive_sources,
                    torch::Tensor negative_sources, const std::vector<double>& t_override = {});

  int64_t size() const { return static_cast<int64_t>(frames_.size()); }
  const std::vector<FrameRecipe>& frames() const { return frames_; }
  // The walk's segments, with the frames' weights as built.
  const std::vector<PaceSegment>& segments() const { return segments_; }
  const torch::Tensor& latent_sources() const { return latents_; }
  // Materialises frames [first, first + count) on the sources' device.
  FrameChunk chunk(int64_t first, int64_t count) const;
  // Materialises the frames of `indices`, in that order.
  FrameChunk chunk(const std::vector<int64_t>& indices) const;
  // For each frame, the first frame with the same recipe (itself if none): frames equal by
  // construction (a timeline's holds and repeated keyframes) are computed once.
  std::vector<int64_t> first_equal_frames() const;

 private:
  torch::Tensor latents_;
  torch::Tensor positive_;
  torch::Tensor negative_;
  std::vector<FrameRecipe> frames_;
  std::vector<PaceSegment> segments_;
};

// AdaIN (DiffMorpher's): `latent` [C, h, w] renormalised so that each channel has the mean and
// standard deviation (with Bessel's correction, as torch.std) interpolated at t between `a`'s and
// `b`'s channels: (x - mean(x)) / std(x) * ((1 - t) std_a + t std_b) + (1 - t) mean_a + t mean_b.
torch::Tensor adain(const torch::Tensor& latent, const torch::Tensor& a, const torch::Tensor& b, double t);

// Shape of the latents a mode draws from the seed: [2, C, h, w] for slerp-latent and circular
// (the notebook draws circular's as [2, 1, C, h, w]: the same numbers), [1, C, h, w] otherwise
// (a timeline draws [1, C, h, w] from each keyframe's seed).
std::vector<int64_t> latent_source_shape(WalkMode mode, int64_t channels, int64_t h, int64_t w);

}  // namespace sdinterp
