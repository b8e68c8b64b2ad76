#include <array>
#include <cmath>
#include <map>

#include "sdinterp/errors.h"
#include "sdinterp/interpolation.h"
#include "sdinterp/linspace.h"

namespace sdinterp {

Mix lerp_mix(double t, int64_t a, int64_t b) { return Mix{a, b, 1.0 - t, t, 0.0}; }

Mix slerp_mix(const torch::Tensor& v0, const torch::Tensor& v1, double t, int64_t a, int64_t b, double dot_threshold) {
  torch::Tensor x = v0.to(torch::kFloat64).flatten();
  torch::Tensor y = v1.to(torch::kFloat64).flatten();
  const double denom = (x.norm() * y.norm()).item<double>();
  const double dot = denom > 0 ? (x * y).sum().item<double>() / denom : 1.0;
  if (std::abs(dot) > dot_threshold) return lerp_mix(t, a, b);
  const double theta_0 = std::acos(dot);
  const double sin_theta_0 = std::sin(theta_0);
  const double theta_t = theta_0 * t;
  return Mix{a, b, std::sin(theta_0 - theta_t) / sin_theta_0, std::sin(theta_t) / sin_theta_0, 0.0};
}

torch::Tensor draw_latents(uint64_t seed, at::IntArrayRef shape) {
  // A private generator: the same stream as torch.manual_seed(seed) + torch.randn, without
  // touching the global generator other code may use.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32));
}

std::vector<int64_t> latent_source_shape(WalkMode mode, int64_t channels, int64_t h, int64_t w) {
  const int64_t count = (mode == WalkMode::kSlerpLatent || mode == WalkMode::kCircular) ? 2 : 1;
  return {count, channels, h, w};
}

torch::Tensor adain(const torch::Tensor& latent, const torch::Tensor& a, const torch::Tensor& b, double t) {
  const std::vector<int64_t> spatial{-2, -1};
  auto mean = [&](const torch::Tensor& x) { return x.mean(spatial, true); };
  auto stdev = [&](const torch::Tensor& x) { return x.std(spatial, /*unbiased=*/true, /*keepdim=*/true); };
  const torch::Tensor target_mean = mean(a) * (1.0 - t) + mean(b) * t;
  const torch::Tensor target_std = stdev(a) * (1.0 - t) + stdev(b) * t;
  return (latent - mean(latent)) / stdev(latent) * target_std + target_mean;
}

namespace {

Mix pair_mix(InterpKind kind, const torch::Tensor& sources, int64_t a, int64_t b, double t) {
  return kind == InterpKind::kSlerp ? slerp_mix(sources[a], sources[b], t, a, b) : lerp_mix(t, a, b);
}

Mix constant(int64_t index, double offset = 0.0) { return Mix{index, index, 1.0, 0.0, offset}; }

torch::Tensor apply(const torch::Tensor& sources, const Mix& mix) {
  torch::Tensor out = sources[mix.a] * mix.w_a;
  if (mix.w_b != 0.0) out = out + sources[mix.b] * mix.w_b;
  if (mix.offset != 0.0) out = out + mix.offset;
  return out;
}

// The frames and pacing segments of a plan as its constructor pushes them, with the weights
// --pace even re-placed (`t_override`, one per frame, NaN: keep).
struct PlanBuilder {
  const std::vector<double>& t_override;
  std::vector<FrameRecipe>& frames;
  std::vector<PaceSegment>& segments;

  // Whether the frame about to be pushed was re-placed.
  bool paced() const { return frames.size() < t_override.size() && !std::isnan(t_override[frames.size()]); }
  // The weight of the frame about to be pushed: `fallback` unless re-placed.
  double weight(double fallback) const { return paced() ? t_override[frames.size()] : fallback; }
  // One segment of frames from `first` on, with their weights; its end (t = 1) is `end`.
  void segment(int64_t first, const std::vector<double>& ts, int64_t end) {
    PaceSegment seg;
    for (size_t k = 0; k < ts.size(); ++k) {
      seg.frames.push_back(first + static_cast<int64_t>(k));
      seg.t.push_back(ts[k]);
    }
    if (seg.frames.back() != end) {
      seg.frames.push_back(end);
      seg.t.push_back(1.0);
    }
    segments.push_back(std::move(seg));
  }
};

// Segment i runs from keyframe i (at frame a) to keyframe i + 1 (at b), the last one back to
// keyframe 0 at index `frames` with cycle; frame f has t = ease((f - a) / (b - a)).
void timeline_frames(PlanBuilder& plan, const RunConfig& config, const torch::Tensor& latents,
                     const torch::Tensor& positive, const torch::Tensor& negative) {
  const auto keys = config.resolved_keyframes();
  auto mix = [&](const torch::Tensor& sources, int64_t x, int64_t y, double w) {
    return w == 0.0 || x == y ? constant(x) : pair_mix(config.interp, sources, x, y, w);
  };
  for (size_t i = 0; i < keys.size(); ++i) {
    const bool closing = i + 1 == keys.size();
    const int64_t x = keys[i].source;
    if (closing && !config.cycle) {
      plan.frames.push_back({constant(x), constant(x), constant(x)});  // the last keyframe
      break;
    }
    const int64_t y = keys[closing ? 0 : i + 1].source;
    const int a = keys[i].frame, b = closing ? config.frames : keys[i + 1].frame;
    std::vector<double> ts;
    for (int f = a; f < b; ++f) {
      ts.push_back(ease_value(keys[i].ease, static_cast<double>(f - a) / (b - a)));
      const double w = plan.weight(ts.back());
      plan.frames.push_back({mix(latents, x, y, w), mix(positive, x, y, w), mix(negative, x, y, w)});
    }
    // A hold does not move: nothing to pace.
    if (keys[i].ease != Ease::kHold && x != y) plan.segment(a, ts, closing ? 0 : b);
  }
}

// Pairs of images like multi-prompt's pairs of prompts, the frame at each inner image shared by
// the pairs it joins: pair p's frames are p (n - 1) ... p (n - 1) + n - 1.
void image_morph_frames(PlanBuilder& plan, const RunConfig& config, const std::vector<double>& t,
                        const torch::Tensor& latents, const torch::Tensor& positive, const torch::Tensor& negative) {
  const int n = config.frames;
  const int64_t images = latents.size(0);
  const bool prompt_per_image = positive.size(0) == images;
  const bool negative_per_image = negative.size(0) == images;
  for (int64_t p = 0; p + 1 < images; ++p) {
    for (int i = p == 0 ? 0 : 1; i < n; ++i) {
      const double ti = plan.weight(t[static_cast<size_t>(i)]);
      FrameRecipe f{pair_mix(config.interp, latents, p, p + 1, ti),
                    prompt_per_image ? pair_mix(config.interp, positive, p, p + 1, ti) : constant(0),
                    negative_per_image ? pair_mix(config.interp, negative, p, p + 1, ti) : constant(0)};
      if (config.adain && ti > 0.0 && ti < 1.0) f.adain = ti;
      plan.frames.push_back(f);
    }
    plan.segment(p * (n - 1), t, p * (n - 1) + n - 1);
  }
}

// The notebook computes the angles in float32: a = linspace(0, 2, n) * pi, then cos and sin.
void circular_frames(PlanBuilder& plan, int n, const std::vector<double>& t) {
  torch::Tensor angle = torch::linspace(0, 2, n, torch::kFloat32) * static_cast<float>(M_PI);
  torch::Tensor c = torch::cos(angle), s = torch::sin(angle);
  for (int i = 0; i < n; ++i) {
    float cos_a = c[i].item<float>(), sin_a = s[i].item<float>();
    if (plan.paced()) {
      const float a = static_cast<float>(2 * plan.weight(0)) * static_cast<float>(M_PI);
      cos_a = std::cos(a);
      sin_a = std::sin(a);
    }
    plan.frames.push_back({Mix{0, 1, cos_a, sin_a, 0.0}, constant(0), constant(0)});
  }
  plan.segment(0, t, n - 1);
}

}  // namespace

InterpolationPlan::InterpolationPlan(const RunConfig& config, torch::Tensor latent_sources,
                                     torch::Tensor positive_sources, torch::Tensor negative_sources,
                                     const std::vector<double>& t_override)
    : latents_(std::move(latent_sources)),
      positive_(std::move(positive_sources)),
      negative_(std::move(negative_sources)) {
  const int n = config.frames;
  const auto t = numpy_linspace(0.0, 1.0, n);
  const bool negative_per_prompt = negative_.size(0) == positive_.size(0) && positive_.size(0) > 1;
  PlanBuilder plan{t_override, frames_, segments_};
  switch (config.mode) {
    case WalkMode::kPromptWalk:
      for (int i = 0; i < n; ++i) {
        // Re-placed: the offset at weight t of the walk's whole offset, step-size * (frames - 1).
        const double offset = plan.paced() ? config.step_size * (n - 1) * plan.weight(0) : config.step_size * i;
        frames_.push_back({constant(0), constant(0, offset), constant(0, offset)});
      }
      plan.segment(0, t, n - 1);
      break;
    case WalkMode::kSlerpLatent:
      for (int i = 0; i < n; ++i) {
        frames_.push_back({pair_mix(config.interp, latents_, 0, 1, plan.weight(t[static_cast<size_t>(i)])), constant(0),
                           constant(0)});
      }
      plan.segment(0, t, n - 1);
      break;
    case WalkMode::kMultiPrompt:
      for (int64_t p = 0; p + 1 < positive_.size(0); ++p) {
        for (int i = 0; i < n; ++i) {
          const double ti = plan.weight(t[static_cast<size_t>(i)]);
          // One negative prompt for all: the notebook slerps its embedding with itself, which is the
          // lerp (1 - t) v + t v, equal to v only up to float32 rounding; done the same way, the
          // frames are diffusers' bit for bit.
          Mix negative = negative_per_prompt ? pair_mix(config.interp, negative_, p, p + 1, ti) : lerp_mix(ti, 0, 0);
          frames_.push_back({constant(0), pair_mix(config.interp, positive_, p, p + 1, ti), negative});
        }
        plan.segment(p * n, t, p * n + n - 1);
      }
      break;
    case WalkMode::kTimeline:
      timeline_frames(plan, config, latents_, positive_, negative_);
      break;
    case WalkMode::kImageMorph:
      image_morph_frames(plan, config, t, latents_, positive_, negative_);
      break;
    case WalkMode::kCircular:
      circular_frames(plan, n, t);
      break;
  }
  // The last frame repeats the first: left out for a seamless loop (the walk's end is then frame 0).
  if (config.seamless_loop && frames_.size() > 1) {
    frames_.pop_back();
    const int64_t gone = size();
    for (PaceSegment& seg : segments_) {
      if (seg.frames.back() == gone) seg.frames.back() = 0;
    }
  }
}

FrameChunk InterpolationPlan::chunk(int64_t first, int64_t count) const {
  if (first < 0 || count < 1 || first + count > size()) throw std::out_of_range("InterpolationPlan::chunk");
  std::vector<int64_t> indices;
  for (int64_t i = first; i < first + count; ++i) indices.push_back(i);
  return chunk(indices);
}

std::vector<int64_t> InterpolationPlan::first_equal_frames() const {
  using Key = std::array<double, 16>;
  auto key = [](const FrameRecipe& f) {
    Key k{};
    size_t n = 0;
    for (const Mix* m : {&f.latent, &f.positive, &f.negative}) {
      for (double v : {static_cast<double>(m->a), static_cast<double>(m->b), m->w_a, m->w_b, m->offset}) k[n++] = v;
    }
    k[n] = f.adain;
    return k;
  };
  std::map<Key, int64_t> first;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < size(); ++i)
    out.push_back(first.emplace(key(frames_[static_cast<size_t>(i)]), i).first->second);
  return out;
}

FrameChunk InterpolationPlan::chunk(const std::vector<int64_t>& indices) const {
  if (indices.empty()) throw std::out_of_range("InterpolationPlan::chunk");
  std::vector<torch::Tensor> latents, positive, negative;
  for (int64_t i : indices) {
    if (i < 0 || i >= size()) throw std::out_of_range("InterpolationPlan::chunk");
    const FrameRecipe& f = frames_[static_cast<size_t>(i)];
    torch::Tensor latent = apply(latents_, f.latent);
    if (f.adain >= 0.0) latent = adain(latent, latents_[f.latent.a], latents_[f.latent.b], f.adain);
    latents.push_back(latent);
    positive.push_back(apply(positive_, f.positive));
    negative.push_back(apply(negative_, f.negative));
  }
  return {torch::stack(latents), torch::stack(positive), torch::stack(negative)};
}

}  // namespace sdinterp
