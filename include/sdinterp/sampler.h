// Batched classifier-free-guided denoising of a chunk of frames.
#pragma once

#include <torch/types.h>

#include <functional>

#include "sdinterp/bundle.h"
#include "sdinterp/schedulers.h"

namespace sdinterp {

struct SamplerSettings {
  SchedulerKind scheduler = SchedulerKind::kLms;
  int steps = 15;
  double guidance = 8.0;  // <= 1: no guidance, the negative conditioning is not used (as diffusers)
  UnetEngine engine = UnetEngine::kAuto;
};

// Called after every model call with the call index (0-based), the number of calls, and the
// latents after that step. Throwing from it (e.g. on interrupt) stops the run.
using StepCallback = std::function<void(size_t call, size_t calls, const torch::Tensor& latents)>;

class Sampler {
 public:
  Sampler(Bundle& bundle, SamplerSettings settings);

  // noise [n, C, h, w] (unit variance, as drawn), positive/negative [n, L, hidden].
  // Returns the denoised latents [n, C, h, w], float32 on the bundle's device.
  torch::Tensor run(const torch::Tensor& noise, const torch::Tensor& positive, const torch::Tensor& negative,
                    const StepCallback& on_step = {}) const;

  // Model calls per run (PNDM makes one more than steps).
  size_t calls_per_run() const;

 private:
  Bundle& bundle_;
  SamplerSettings settings_;
};

}  // namespace sdinterp
