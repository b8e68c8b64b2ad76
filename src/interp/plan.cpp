#include <array>
#include <cmath>
#include <map>

#include "sdinterp/errors.h"
#include "sdinterp/interpolation.h"

namespace sdinterp {

std::vector<double> linspace(double first, double last, int n) {
  std::vector<double> out(static_cast<size_t>(std::max(n, 0)));
  if (n == 1) out[0] = first;
  // numpy: step = (last - first) / (n - 1), values first + i * step, the last one set exactly.
  for (int i = 0; i < n && n > 1; ++i) out[static_cast<size_t>(i)] = first + i * ((last - first) / (n - 1));
  if (n > 1) out.back() = last;
  return out;
}

Mix lerp_mix(double t, int64_t a, int64_t b) { return Mix{a, b, 1.0 - t, t, 0.0}; }

Mix slerp_mix(const torch::Tensor& v0, const torch::Tensor& v1, double t, int64_t a, int64_t b,
              double dot_threshold) {
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

}  // namespace

InterpolationPlan::InterpolationPlan(const RunConfig& config, torch::Tensor latent_sources,
                                     torch::Tensor positive_sources, torch::Tensor negative_sources)
    : latents_(std::move(latent_sources)), positive_(std::move(positive_sources)), negative_(std::move(negative_sources)) {
  const int n = config.frames;
  const auto t = linspace(0.0, 1.0, n);
  const bool negative_per_prompt = negative_.size(0) == positive_.size(0) && positive_.size(0) > 1;
  switch (config.mode) {
    case WalkMode::kPromptWalk:
      for (int i = 0; i < n; ++i) {
        const double offset = config.step_size * i;
        frames_.push_back({constant(0), constant(0, offset), constant(0, offset)});
      }
      break;
    case WalkMode::kSlerpLatent:
      for (int i = 0; i < n; ++i) {
        frames_.push_back({pair_mix(config.interp, latents_, 0, 1, t[static_cast<size_t>(i)]), constant(0), constant(0)});
      }
      break;
    case WalkMode::kMultiPrompt:
      for (int64_t p = 0; p + 1 < positive_.size(0); ++p) {
        for (int i = 0; i < n; ++i) {
          const double ti = t[static_cast<size_t>(i)];
          Mix negative = negative_per_prompt ? pair_mix(config.interp, negative_, p, p + 1, ti) : constant(0);
          frames_.push_back({constant(0), pair_mix(config.interp, positive_, p, p + 1, ti), negative});
        }
      }
      break;
    case WalkMode::kTimeline: {
      // Segment i runs from keyframe i (at frame a) to keyframe i + 1 (at b), the last one back to
      // keyframe 0 at index `frames` with cycle; frame f has t = ease((f - a) / (b - a)).
      const auto keys = config.resolved_keyframes();
      auto mix = [&](const torch::Tensor& sources, int64_t x, int64_t y, double weight) {
        return weight == 0.0 || x == y ? constant(x) : pair_mix(config.interp, sources, x, y, weight);
      };
      for (size_t i = 0; i < keys.size(); ++i) {
        const bool closing = i + 1 == keys.size();
        const int64_t x = keys[i].source;
        if (closing && !config.cycle) {
          frames_.push_back({constant(x), constant(x), constant(x)});  // the last keyframe
          break;
        }
        const int64_t y = keys[closing ? 0 : i + 1].source;
        const int a = keys[i].frame, b = closing ? config.frames : keys[i + 1].frame;
        for (int f = a; f < b; ++f) {
          const double w = ease_value(keys[i].ease, static_cast<double>(f - a) / (b - a));
          frames_.push_back({mix(latents_, x, y, w), mix(positive_, x, y, w), mix(negative_, x, y, w)});
        }
      }
      break;
    }
    case WalkMode::kCircular: {
      // The notebook computes the angles in float32: a = linspace(0, 2, n) * pi, then cos and sin.
      torch::Tensor angle = torch::linspace(0, 2, n, torch::kFloat32) * static_cast<float>(M_PI);
      torch::Tensor c = torch::cos(angle), s = torch::sin(angle);
      for (int i = 0; i < n; ++i) {
        Mix latent{0, 1, c[i].item<float>(), s[i].item<float>(), 0.0};
        frames_.push_back({latent, constant(0), constant(0)});
      }
      break;
    }
  }
  // The last frame repeats the first: left out for a seamless loop.
  if (config.seamless_loop && frames_.size() > 1) frames_.pop_back();
}

FrameChunk InterpolationPlan::chunk(int64_t first, int64_t count) const {
  if (first < 0 || count < 1 || first + count > size()) throw std::out_of_range("InterpolationPlan::chunk");
  std::vector<int64_t> indices;
  for (int64_t i = first; i < first + count; ++i) indices.push_back(i);
  return chunk(indices);
}

std::vector<int64_t> InterpolationPlan::first_equal_frames() const {
  using Key = std::array<double, 15>;
  auto key = [](const FrameRecipe& f) {
    Key k{};
    size_t n = 0;
    for (const Mix* m : {&f.latent, &f.positive, &f.negative}) {
      for (double v : {static_cast<double>(m->a), static_cast<double>(m->b), m->w_a, m->w_b, m->offset}) k[n++] = v;
    }
    return k;
  };
  std::map<Key, int64_t> first;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < size(); ++i) out.push_back(first.emplace(key(frames_[static_cast<size_t>(i)]), i).first->second);
  return out;
}

FrameChunk InterpolationPlan::chunk(const std::vector<int64_t>& indices) const {
  if (indices.empty()) throw std::out_of_range("InterpolationPlan::chunk");
  std::vector<torch::Tensor> latents, positive, negative;
  for (int64_t i : indices) {
    if (i < 0 || i >= size()) throw std::out_of_range("InterpolationPlan::chunk");
    const FrameRecipe& f = frames_[static_cast<size_t>(i)];
    latents.push_back(apply(latents_, f.latent));
    positive.push_back(apply(positive_, f.positive));
    negative.push_back(apply(negative_, f.negative));
  }
  return {torch::stack(latents), torch::stack(positive), torch::stack(negative)};
}

}  // namespace sdinterp
